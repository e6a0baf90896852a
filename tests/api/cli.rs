//! The command line, run as the operator runs it: the built binary as a child process, against
//! a database of its own.

use std::process::{Command, Output};

use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rsa::pkcs8::DecodePrivateKey;
use serde_json::json;

use crate::helpers::db::{admin_url, database_url};
use crate::helpers::{json, spawn_on};

/// A new, empty database (no migrations); returns its name.
async fn empty_database() -> String {
    let name = format!("cpaas_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = AsyncPgConnection::establish(&admin_url()).await.unwrap();
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    name
}

fn cpaas(db: &str, keys: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cpaas"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url(db))
        .env("APP_ENV", "development")
        .env("DEV_KEYS_DIR", keys)
        .env("CPAAS_ENCRYPTION_KEY", crate::helpers::ENCRYPTION_KEY)
        .env("CPAAS_USER_PASSWORD", "Correct-Horse-9")
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn count(db: &str, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = AsyncPgConnection::establish(&database_url(db))
        .await
        .unwrap();
    diesel::sql_query(sql)
        .get_result::<N>(&mut conn)
        .await
        .unwrap()
        .n
}

#[actix_web::test]
async fn migrate_seed_tenant_add_and_user_add_prepare_a_database_the_service_logs_into() {
    let db = empty_database().await;
    let keys = std::env::temp_dir().join(format!("cpaas-cli-{db}"));
    ok(&cpaas(&db, &keys, &["migrate"]));
    let migrations = "SELECT count(*) AS n FROM __diesel_schema_migrations";
    let applied = count(&db, migrations).await;
    let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count() as i64;
    assert_eq!(applied, on_disk);
    ok(&cpaas(&db, &keys, &["migrate"]));
    assert_eq!(
        count(&db, migrations).await,
        on_disk,
        "migrate twice is a no-op"
    );

    ok(&cpaas(&db, &keys, &["seed"]));
    ok(&cpaas(&db, &keys, &["seed"]));
    assert_eq!(count(&db, "SELECT count(*) AS n FROM users").await, 2);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM providers WHERE kind = 'SANDBOX'"
        )
        .await,
        1,
        "seeding twice adds nothing"
    );

    let tenant = ok(&cpaas(
        &db,
        &keys,
        &[
            "tenant",
            "add",
            "--name",
            "Acme Events",
            "--plan-tier",
            "business",
        ],
    ));
    let tenant = tenant.trim().to_owned();
    uuid::Uuid::parse_str(&tenant).expect("tenant add prints the new id");
    let tier = format!(
        "SELECT count(*) AS n FROM tenants WHERE id = '{tenant}' AND plan_tier = 'business'"
    );
    assert_eq!(count(&db, &tier).await, 1);
    let refused = cpaas(
        &db,
        &keys,
        &["tenant", "add", "--name", "X", "--plan-tier", "gold"],
    );
    assert!(!refused.status.success(), "an unknown plan tier is refused");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("gold"));

    let added = ok(&cpaas(
        &db,
        &keys,
        &[
            "user",
            "add",
            "--tenant-id",
            &tenant,
            "--email",
            "Ops@Acme.example",
            "--roles",
            "organizer,admin",
        ],
    ));
    assert!(
        added.contains("ops@acme.example") || added.contains("Ops@Acme.example"),
        "{added}"
    );
    let again = cpaas(
        &db,
        &keys,
        &[
            "user",
            "add",
            "--tenant-id",
            &tenant,
            "--email",
            "ops@acme.example",
        ],
    );
    assert!(!again.status.success(), "the same e-mail twice is refused");

    let app = spawn_on(&db, &database_url(&db), |_| {}).await;
    let (status, body) = json(app.login("ops@acme.example", "Correct-Horse-9").await).await;
    assert_eq!(status, 200, "{body}");
    let token = body["data"]["accessToken"].as_str().unwrap();
    let (status, me) = json(app.get("/auth/v1/me", token).await).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["tenantId"], tenant);
    assert_eq!(me["data"]["planTier"], "business");
    assert_eq!(me["data"]["roles"], json!(["organizer", "admin"]));
    std::fs::remove_dir_all(&keys).ok();
}

#[actix_web::test]
async fn keys_generate_writes_keys_the_service_starts_with_and_never_overwrites_them() {
    let dir = std::env::temp_dir().join(format!("cpaas-keys-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem_path = dir.join("jwt.pem");
    let db = crate::helpers::db::create_test_database();
    let out = ok(&cpaas(
        &db,
        &dir,
        &["keys", "generate", "--out", pem_path.to_str().unwrap()],
    ));
    assert!(
        out.contains(&format!("JWT_PRIVATE_KEY_PATH={}", pem_path.display())),
        "{out}"
    );
    let encryption_key = out
        .lines()
        .find_map(|l| l.strip_prefix("CPAAS_ENCRYPTION_KEY="))
        .expect("an encryption key")
        .to_owned();
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&encryption_key)
        .unwrap();
    assert_eq!(raw.len(), 32);
    let pem = std::fs::read_to_string(&pem_path).unwrap();
    rsa::RsaPrivateKey::from_pkcs8_pem(&pem).expect("a PKCS#8 RSA key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&pem_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = cpaas(
        &db,
        &dir,
        &["keys", "generate", "--out", pem_path.to_str().unwrap()],
    );
    assert!(
        !again.status.success(),
        "an existing key is not overwritten"
    );
    assert_eq!(std::fs::read_to_string(&pem_path).unwrap(), pem);

    let path = pem_path.display().to_string();
    let app = spawn_on(&db, &database_url(&db), move |env| {
        env.insert("APP_ENV".into(), "production".into());
        env.insert("JWT_PRIVATE_KEY_PATH".into(), path);
        env.insert("CPAAS_ENCRYPTION_KEY".into(), encryption_key);
    })
    .await;
    let (status, jwks) = json(
        app.client
            .get(app.url("/auth/v1/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{jwks}");
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    std::fs::remove_dir_all(&dir).ok();
}

#[actix_web::test]
async fn seeds_refuse_production_and_an_unset_app_env_is_announced() {
    let db = crate::helpers::db::create_test_database();
    let keys = std::env::temp_dir().join(format!("cpaas-cli-{db}"));
    let refused = Command::new(env!("CARGO_BIN_EXE_cpaas"))
        .arg("seed")
        .env_clear()
        .env("DATABASE_URL", database_url(&db))
        .env("APP_ENV", "production")
        .env("CPAAS_ENCRYPTION_KEY", crate::helpers::ENCRYPTION_KEY)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("production"));
    assert_eq!(count(&db, "SELECT count(*) AS n FROM users").await, 0);

    let unset = Command::new(env!("CARGO_BIN_EXE_cpaas"))
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", database_url(&db))
        .env("DEV_KEYS_DIR", &keys)
        .env("RUST_LOG", "warn")
        .env("LOG_FORMAT", "json")
        .output()
        .unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&unset.stdout),
        String::from_utf8_lossy(&unset.stderr)
    );
    assert!(unset.status.success(), "{logs}");
    assert!(logs.contains("APP_ENV is not set"), "{logs}");
}
