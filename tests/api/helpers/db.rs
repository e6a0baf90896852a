//! Test databases: one migrated template per migration set, cloned for every test.

use std::sync::OnceLock;

use diesel::Connection;
use diesel::RunQueryDsl;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use sha2::{Digest, Sha256};

type SyncConn = AsyncConnectionWrapper<AsyncPgConnection>;

/// The server all test databases live on (its maintenance database).
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The URL of one database on the test server.
pub fn database_url(name: &str) -> String {
    let admin = admin_url();
    match admin.rfind('/') {
        Some(i) => format!("{}/{}", &admin[..i], name),
        None => format!("{admin}/{name}"),
    }
}

fn migrations_fingerprint() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<_> = walk(&dir);
    files.sort();
    let mut hash = Sha256::new();
    for f in files {
        hash.update(f.to_string_lossy().as_bytes());
        hash.update(std::fs::read(&f).unwrap_or_default());
    }
    hex::encode(&hash.finalize()[..6])
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Runs blocking database work off the test's runtime.
fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().expect("database setup thread")
}

/// The migrated template, created once per migration set (under an advisory lock, so
/// concurrent test processes agree).
pub fn template() -> String {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        blocking(|| {
            // The test script rebuilds TEST_TEMPLATE_DB on every run; without it, the name
            // carries a fingerprint of the migrations so an edited migration gets a new template.
            let name = std::env::var("TEST_TEMPLATE_DB")
                .unwrap_or_else(|_| format!("cpaas_tpl_{}", migrations_fingerprint()));
            let mut admin = SyncConn::establish(&admin_url()).expect("connect to the test server");
            diesel::sql_query("SELECT pg_advisory_lock(727274)")
                .execute(&mut admin)
                .expect("lock");
            let exists: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(
                &format!("EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}')"),
            ))
            .get_result(&mut admin)
            .expect("query");
            if !exists {
                let building = format!("{name}_building");
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {building}"))
                    .execute(&mut admin)
                    .expect("drop");
                diesel::sql_query(format!("CREATE DATABASE {building}"))
                    .execute(&mut admin)
                    .expect("create");
                cpaas::db::run_migrations(&database_url(&building)).expect("migrate template");
                diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {name}"))
                    .execute(&mut admin)
                    .expect("rename");
            }
            diesel::sql_query("SELECT pg_advisory_unlock(727274)")
                .execute(&mut admin)
                .expect("unlock");
            name
        })
    })
    .clone()
}

/// A fresh database cloned from the template; returns its name.
pub fn create_test_database() -> String {
    let template = template();
    blocking(move || {
        let name = format!("cpaas_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = SyncConn::establish(&admin_url()).expect("connect to the test server");
        diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .execute(&mut admin)
            .expect("create test database");
        name
    })
}

/// `host:port` of the test server.
pub fn server_authority() -> String {
    let admin = admin_url();
    let rest = admin.split_once("://").map(|(_, r)| r).unwrap_or(&admin);
    let rest = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
    rest.split('/')
        .next()
        .unwrap_or("127.0.0.1:5432")
        .to_owned()
}

/// The URL of database `name` reached through `authority` instead of the server's own address.
pub fn database_url_via(authority: &str, name: &str) -> String {
    database_url(name).replacen(&server_authority(), authority, 1)
}
