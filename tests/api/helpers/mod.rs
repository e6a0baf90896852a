//! Test harness: a fresh database per test (cloned from a migrated template), the app on
//! port 0, tokens minted with the test key, and small HTTP helpers.

pub mod db;
pub mod kafka;
pub mod proxy;

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use cpaas::auth::{Claims, SigningKeys};
use cpaas::config::Settings;
use cpaas::db::DbPool;
use cpaas::startup::Application;
use reqwest::{Method, Response};
use serde_json::Value;
use uuid::Uuid;

pub const INTERNAL_KEY: &str = "test-internal-key";
pub const ENCRYPTION_KEY: &str = "izWRGxwRpUs4W7fIv88MfMM7ZB3b7bg+i+kQgavXeJo=";
pub const ISSUER: &str = "cpaas-orchestrator";
pub const AUDIENCE: &str = "eventzr";
pub const DEV_TENANT: Uuid = cpaas::seed::DEV_TENANT_ID;

pub fn key_path() -> String {
    format!(
        "{}/tests/fixtures/jwt_test_key.pem",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The keys the test app signs with, to mint tokens directly.
pub fn test_keys() -> Arc<SigningKeys> {
    static KEYS: std::sync::OnceLock<Arc<SigningKeys>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let pem = std::fs::read_to_string(key_path()).expect("test key");
        Arc::new(SigningKeys::from_private_pem(&pem, ISSUER, AUDIENCE).expect("keys"))
    })
    .clone()
}

/// A running app on its own database.
pub struct TestApp {
    pub address: String,
    pub db_name: String,
    pub database_url: String,
    pub pool: DbPool,
    pub client: reqwest::Client,
    pub settings: Settings,
    /// The app's shared state (its outbox, jobs and pool), for driving it directly.
    pub state: cpaas::state::AppState,
    handle: ServerHandle,
}

/// The settings every test app starts from.
pub fn base_env(database_url: &str) -> HashMap<String, String> {
    let dev_keys = std::env::temp_dir().join("cpaas-test-keys");
    [
        ("DATABASE_URL", database_url.to_owned()),
        ("DATABASE_POOL_SIZE", "6".into()),
        ("DATABASE_POOL_TIMEOUT_MS", "1500".into()),
        ("DATABASE_CONNECT_TIMEOUT_MS", "1500".into()),
        ("LISTEN_ADDR", "127.0.0.1:0".into()),
        ("HTTP_WORKERS", "2".into()),
        ("APP_ENV", "development".into()),
        ("JWT_PRIVATE_KEY_PATH", key_path()),
        ("CPAAS_ENCRYPTION_KEY", ENCRYPTION_KEY.into()),
        ("INTERNAL_API_KEY", INTERNAL_KEY.into()),
        ("DEV_KEYS_DIR", dev_keys.display().to_string()),
        ("SEED_ON_START", "false".into()),
        ("PUBLIC_BASE_URL", "http://127.0.0.1:9".into()),
        ("OUTBOX_ENABLED", "false".into()),
        ("SCHEDULER_ENABLED", "false".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The NATS server of the tests.
pub fn nats_url() -> String {
    std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// Points the app at the test NATS server with a stream and subject prefix of its own.
pub fn with_nats(env: &mut HashMap<String, String>) -> (String, String) {
    let id = Uuid::new_v4().simple().to_string();
    let stream = format!("T_{id}");
    let prefix = format!("t{id}.");
    env.insert("NATS_URL".into(), nats_url());
    env.insert("NATS_STREAM".into(), stream.clone());
    env.insert("NATS_SUBJECT_PREFIX".into(), prefix.clone());
    (stream, prefix)
}

/// Messages held by a JetStream stream.
pub async fn stream_messages(stream: &str) -> u64 {
    let client = async_nats::connect(nats_url()).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    let mut s = js.get_stream(stream).await.expect("stream");
    s.info().await.expect("info").state.messages
}

/// Spawns the app on a fresh, seeded database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns the app on a fresh, seeded database, after `configure` adjusts its environment.
pub async fn spawn_app_with(configure: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    let db_name = db::create_test_database();
    let url = db::database_url(&db_name);
    let app = spawn_on(&db_name, &url, configure).await;
    let mut conn = app.pool.get().await.expect("connection");
    let cipher = cpaas::startup::load_cipher(&app.settings).expect("cipher");
    cpaas::seed::run(&mut conn, &cipher).await.expect("seeds");
    app
}

/// Spawns another app process-alike on an existing database (a restart, or a second replica).
pub async fn spawn_on(
    db_name: &str,
    database_url: &str,
    configure: impl FnOnce(&mut HashMap<String, String>),
) -> TestApp {
    let mut env = base_env(database_url);
    configure(&mut env);
    let settings = Settings::from_map(&env).expect("settings");
    let app = Application::build(settings.clone())
        .await
        .expect("app builds");
    let port = app.port();
    let pool = app.state().pool.clone();
    let state = app.state().clone();
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        db_name: db_name.to_owned(),
        database_url: database_url.to_owned(),
        pool,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        settings,
        state,
        handle,
    }
}

/// Claims for a token minted by the test, valid for an hour.
pub fn claims(tenant: Uuid, roles: &[&str], tier: &str) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: Uuid::now_v7().to_string(),
        tenant_id: tenant,
        email: "someone@example.com".into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        plan_tier: tier.into(),
        iat: now,
        exp: now + 3600,
        nbf: None,
        iss: Some(ISSUER.into()),
        aud: Some(AUDIENCE.into()),
        jti: Some(Uuid::new_v4().to_string()),
    }
}

/// A signed access token.
pub fn token(tenant: Uuid, roles: &[&str], tier: &str) -> String {
    test_keys()
        .sign(&claims(tenant, roles, tier))
        .expect("sign")
}

/// An admin token for the dev tenant.
pub fn admin_token() -> String {
    token(DEV_TENANT, &["admin"], "professional")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Stops the server gracefully.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    /// POSTs to an operator endpoint with the internal key, no body and no Idempotency-Key;
    /// asserts 200 and returns `data`.
    pub async fn internal_post(&self, path: &str) -> Value {
        let res = self
            .client
            .post(self.url(path))
            .header("x-internal-api-key", INTERNAL_KEY)
            .send()
            .await
            .expect("request");
        let (status, body) = json(res).await;
        assert_eq!(status, 200, "{path}: {body}");
        body["data"].clone()
    }

    /// `internal_post` on a task of its own, for calls that run while the test does more.
    pub fn internal_post_in_background(
        &self,
        path: &str,
    ) -> actix_web::rt::task::JoinHandle<Value> {
        let client = self.client.clone();
        let url = self.url(path);
        actix_web::rt::spawn(async move {
            let res = client
                .post(url)
                .header("x-internal-api-key", INTERNAL_KEY)
                .send()
                .await
                .expect("request");
            let (status, body) = json(res).await;
            assert_eq!(status, 200, "{body}");
            body["data"].clone()
        })
    }

    /// A request with an optional bearer token and JSON body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        req.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Response {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: &Value) -> Response {
        self.request(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    /// Drains the outbox until a drain claims nothing (events beget events: a failure its
    /// chain's next step, a send its `sent` event).
    pub async fn drain_until_dry(&self) {
        for _ in 0..10 {
            let report = self
                .internal_post("/cpaas/v1/_internal/process-outbox")
                .await;
            if report["claimed"] == 0 {
                return;
            }
        }
        panic!("the outbox never ran dry");
    }

    /// The `data` of `GET /cpaas/v1/messages/{id}`.
    pub async fn message(&self, token: &str, id: &str) -> Value {
        json(self.get(&format!("/cpaas/v1/messages/{id}"), token).await)
            .await
            .1["data"]
            .clone()
    }

    /// The `data` of `GET /cpaas/v1/_internal/readyz`, whatever its status.
    pub async fn readyz(&self) -> Value {
        let res = self
            .client
            .get(self.url("/cpaas/v1/_internal/readyz"))
            .send()
            .await
            .expect("readyz");
        json(res).await.1["data"].clone()
    }

    /// Logs in and returns the `data` of the answer.
    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.client
            .post(self.url("/auth/v1/login"))
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("login sent")
    }
}

/// Status and parsed body of a response.
pub async fn json(res: Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, body)
}

/// The `error.code` of an envelope.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// Starts the real binary (`cpaas serve`) on the test's database with the outbox actor on and
/// the scheduler and consumers off; `extra` adds or overrides settings.
pub fn serve_binary(app: &TestApp, extra: &[(&str, String)]) -> std::process::Child {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cpaas"));
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &app.database_url)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("APP_ENV", "development")
        .env("SEED_ON_START", "false")
        .env("JWT_PRIVATE_KEY_PATH", key_path())
        .env("CPAAS_ENCRYPTION_KEY", ENCRYPTION_KEY)
        .env("OUTBOX_ENABLED", "true")
        .env("SCHEDULER_ENABLED", "false")
        .env("CONSUMERS_ENABLED", "false")
        .env("OUTBOX_BATCH_SIZE", "100")
        .env("DATABASE_POOL_SIZE", "8")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (name, value) in extra {
        command.env(name, value);
    }
    command.spawn().expect("the binary starts")
}

/// A port nothing listens on (yet), below the ephemeral range: no other test's listener on
/// port 0 can take it meanwhile, and the client's own retries cannot connect to themselves
/// (an outgoing socket whose ephemeral source port is the port it dials).
pub fn free_port() -> u16 {
    loop {
        let port = 20_000 + (rand::random::<u16>() % 10_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A child process that is killed when the test ends, passed or not.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}
