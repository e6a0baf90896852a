//! Webhook subscriptions: the https rule, topics, the secret shown once and sealed at rest,
//! rotation, roles and tenant isolation.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use crate::helpers::{DEV_TENANT, TestApp, code, json, spawn_app, spawn_app_with, token};

const DELIVERED: &str = "eventzr.cpaas.communication.delivered.v1";
const FAILED: &str = "eventzr.cpaas.communication.failed.v1";

fn developer() -> String {
    token(DEV_TENANT, &["developer"], "professional")
}

fn hook(url: &str) -> Value {
    json!({ "url": url, "events": [DELIVERED, FAILED], "description": "CRM sync" })
}

async fn create(app: &TestApp, body: &Value) -> (u16, Value) {
    json(app.post("/cpaas/v1/webhooks", &developer(), body).await).await
}

async fn create_ok(app: &TestApp) -> (String, String) {
    let (status, body) = create(app, &hook("https://hooks.example.com/cpaas")).await;
    assert_eq!(status, 201, "{body}");
    (
        body["data"]["id"].as_str().unwrap().to_owned(),
        body["data"]["secret"].as_str().unwrap().to_owned(),
    )
}

async fn sealed_secret(app: &TestApp, id: &str) -> (uuid::Uuid, Vec<u8>) {
    use cpaas::db::schema::webhooks::dsl;
    let uuid = uuid::Uuid::parse_str(id.trim_start_matches("whk_")).unwrap();
    let mut conn = app.pool.get().await.unwrap();
    let sealed = dsl::webhooks
        .filter(dsl::id.eq(uuid))
        .select(dsl::secret_encrypted)
        .first(&mut conn)
        .await
        .unwrap();
    (uuid, sealed)
}

#[actix_web::test]
async fn the_secret_is_shown_on_creation_only_and_sealed_at_rest() {
    let app = spawn_app().await;
    let (status, body) = create(&app, &hook("https://hooks.example.com/cpaas")).await;
    assert_eq!(status, 201, "{body}");
    let created = &body["data"];
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("whk_"));
    assert_eq!(created["url"], "https://hooks.example.com/cpaas");
    assert_eq!(created["events"], json!([DELIVERED, FAILED]));
    assert_eq!(created["is_active"], true);
    assert_eq!(created["description"], "CRM sync");
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));
    let secret = created["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 49,
        "{secret}"
    );

    let (status, fetched) = json(
        app.get(&format!("/cpaas/v1/webhooks/{id}"), &developer())
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(fetched["data"].get("secret").is_none(), "{fetched}");
    assert!(!fetched.to_string().contains(secret));
    let (_, list) = json(app.get("/cpaas/v1/webhooks", &developer()).await).await;
    assert_eq!(list["data"][0]["id"], id);
    assert!(list["data"][0].get("secret").is_none());
    assert!(!list.to_string().contains(secret));

    let (uuid, sealed) = sealed_secret(&app, id).await;
    assert!(!sealed.windows(10).any(|w| w == &secret.as_bytes()[6..16]));
    let cipher = cpaas::startup::load_cipher(&app.settings).unwrap();
    let opened =
        cpaas::db::webhooks::open_webhook_secret(&cipher, DEV_TENANT, uuid, &sealed).unwrap();
    assert_eq!(opened, secret);
    assert!(
        cpaas::db::webhooks::open_webhook_secret(&cipher, uuid::Uuid::now_v7(), uuid, &sealed)
            .is_err(),
        "the secret is bound to its tenant"
    );
}

#[actix_web::test]
async fn only_https_urls_are_accepted_by_default() {
    let app = spawn_app().await;
    for url in [
        "http://hooks.example.com/cpaas",
        "ftp://hooks.example.com/cpaas",
        "hooks.example.com/cpaas",
        "https://user:secret@hooks.example.com/cpaas",
        "https://127.0.0.1/cpaas",
        "https://localhost:8443/cpaas",
    ] {
        let (status, body) = create(&app, &hook(url)).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(code(&body), "ERR_CPAAS_INVALID_WEBHOOK_URL", "{url}");
    }
    let long = format!("https://hooks.example.com/{}", "a".repeat(2048));
    let (status, body) = create(&app, &hook(&long)).await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "ERR_CPAAS_INVALID_WEBHOOK_URL");

    let (id, _) = create_ok(&app).await;
    let (status, body) = json(
        app.patch(
            &format!("/cpaas/v1/webhooks/{id}"),
            &developer(),
            &json!({ "url": "http://hooks.example.com/x" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "ERR_CPAAS_INVALID_WEBHOOK_URL");
}

#[actix_web::test]
async fn plain_http_is_accepted_when_the_configuration_allows_it() {
    let app = spawn_app_with(|env| {
        env.insert("ALLOW_INSECURE_WEBHOOK_URLS".into(), "true".into());
    })
    .await;
    let (status, body) = create(&app, &hook("http://127.0.0.1:9000/hook")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["url"], "http://127.0.0.1:9000/hook");
    let (status, body) = create(&app, &hook("http://user:pw@127.0.0.1:9000/hook")).await;
    assert_eq!(status, 400, "credentials are refused all the same");
    assert_eq!(code(&body), "ERR_CPAAS_INVALID_WEBHOOK_URL");
}

#[actix_web::test]
async fn events_must_be_published_topics_or_the_wildcard() {
    let app = spawn_app().await;
    let (status, body) = create(
        &app,
        &json!({ "url": "https://h.example.com/x", "events": [DELIVERED, "eventzr.cpaas.message.exploded.v1"] }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(code(&body), "ERR_CPAAS_VALIDATION_FAILED");
    assert_eq!(body["error"]["details"][0]["field"], "events");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("eventzr.cpaas.message.exploded.v1")
    );
    for events in [json!([]), json!(["*", DELIVERED])] {
        let (status, body) = create(
            &app,
            &json!({ "url": "https://h.example.com/x", "events": events }),
        )
        .await;
        assert_eq!(status, 400, "{events}");
        assert_eq!(code(&body), "ERR_CPAAS_VALIDATION_FAILED");
    }
    let (status, body) = create(
        &app,
        &json!({ "url": "https://h.example.com/x", "events": ["*"], "secret": "mine" }),
    )
    .await;
    assert_eq!(
        status, 400,
        "the secret is never chosen by the caller: {body}"
    );
    let (status, body) = create(
        &app,
        &json!({ "url": "https://h.example.com/x", "events": ["*"] }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["events"], json!(["*"]));
    assert_eq!(body["data"]["description"], Value::Null);
}

#[actix_web::test]
async fn an_update_changes_what_it_names_and_keeps_the_rest() {
    let app = spawn_app().await;
    let (id, _) = create_ok(&app).await;
    let path = format!("/cpaas/v1/webhooks/{id}");
    let (status, body) = json(
        app.patch(
            &path,
            &developer(),
            &json!({ "events": ["*"], "is_active": false, "description": "" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["events"], json!(["*"]));
    assert_eq!(body["data"]["is_active"], false);
    assert_eq!(body["data"]["description"], Value::Null);
    assert_eq!(body["data"]["url"], "https://hooks.example.com/cpaas");
    assert!(body["data"].get("secret").is_none());

    let (_, body) = json(
        app.patch(
            &path,
            &developer(),
            &json!({ "url": "https://other.example.com/in" }),
        )
        .await,
    )
    .await;
    assert_eq!(body["data"]["url"], "https://other.example.com/in");
    assert_eq!(body["data"]["events"], json!(["*"]));
}

#[actix_web::test]
async fn rotating_the_secret_shows_a_new_one_once() {
    let app = spawn_app().await;
    let (id, old) = create_ok(&app).await;
    let (status, body) = json(
        app.post(
            &format!("/cpaas/v1/webhooks/{id}/rotate-secret"),
            &developer(),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let new = body["data"]["secret"].as_str().unwrap();
    assert!(new.starts_with("whsec_"));
    assert_ne!(new, old);
    assert_eq!(body["data"]["id"], id.as_str());
    let (uuid, sealed) = sealed_secret(&app, &id).await;
    let cipher = cpaas::startup::load_cipher(&app.settings).unwrap();
    assert_eq!(
        cpaas::db::webhooks::open_webhook_secret(&cipher, DEV_TENANT, uuid, &sealed).unwrap(),
        new
    );
    let (_, fetched) = json(
        app.get(&format!("/cpaas/v1/webhooks/{id}"), &developer())
            .await,
    )
    .await;
    assert!(fetched["data"].get("secret").is_none());
}

#[actix_web::test]
async fn a_deleted_webhook_is_gone_and_receives_nothing() {
    let app = spawn_app().await;
    let (id, _) = create_ok(&app).await;
    let mut conn = app.pool.get().await.unwrap();
    let subscribed =
        cpaas::db::webhooks::find_subscribed_webhooks(&mut conn, DEV_TENANT, DELIVERED)
            .await
            .unwrap();
    assert_eq!(subscribed.len(), 1);
    let other_topic = cpaas::db::webhooks::find_subscribed_webhooks(
        &mut conn,
        DEV_TENANT,
        "eventzr.cpaas.sms.inbound.v1",
    )
    .await
    .unwrap();
    assert!(other_topic.is_empty());

    let path = format!("/cpaas/v1/webhooks/{id}");
    let (status, body) = json(app.delete(&path, &developer()).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!({ "id": id, "deleted": true }));
    assert_eq!(app.get(&path, &developer()).await.status(), 404);
    assert_eq!(app.delete(&path, &developer()).await.status(), 404);
    let (_, list) = json(app.get("/cpaas/v1/webhooks", &developer()).await).await;
    assert_eq!(list["data"], json!([]));
    assert!(
        cpaas::db::webhooks::find_subscribed_webhooks(&mut conn, DEV_TENANT, DELIVERED)
            .await
            .unwrap()
            .is_empty()
    );
}

#[actix_web::test]
async fn a_user_cannot_see_or_manage_webhooks() {
    let app = spawn_app().await;
    let (id, _) = create_ok(&app).await;
    let user = token(DEV_TENANT, &["user"], "professional");
    let path = format!("/cpaas/v1/webhooks/{id}");
    for res in [
        app.get("/cpaas/v1/webhooks", &user).await,
        app.post(
            "/cpaas/v1/webhooks",
            &user,
            &hook("https://h.example.com/x"),
        )
        .await,
        app.get(&path, &user).await,
        app.patch(&path, &user, &json!({ "is_active": false }))
            .await,
        app.delete(&path, &user).await,
        app.post(&format!("{path}/rotate-secret"), &user, &json!({}))
            .await,
    ] {
        let (status, body) = json(res).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(code(&body), "ERR_CPAAS_FORBIDDEN");
    }
}

#[actix_web::test]
async fn another_tenants_webhook_is_not_found_on_every_route() {
    let app = spawn_app().await;
    let (id, secret) = create_ok(&app).await;
    let other = token(uuid::Uuid::now_v7(), &["admin"], "enterprise");
    let path = format!("/cpaas/v1/webhooks/{id}");
    let answers = [
        app.get(&path, &other).await,
        app.patch(
            &path,
            &other,
            &json!({ "url": "https://evil.example.com/x" }),
        )
        .await,
        app.delete(&path, &other).await,
        app.post(&format!("{path}/rotate-secret"), &other, &json!({}))
            .await,
    ];
    for res in answers {
        let (status, body) = json(res).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(code(&body), "ERR_CPAAS_NOT_FOUND");
        assert_eq!(body["error"]["message"], "webhook not found");
        assert!(!body.to_string().contains("whsec_"));
    }
    let (_, list) = json(app.get("/cpaas/v1/webhooks", &other).await).await;
    assert_eq!(list["data"], json!([]));
    let (status, mine) = json(app.get(&path, &developer()).await).await;
    assert_eq!(status, 200);
    assert_eq!(mine["data"]["url"], "https://hooks.example.com/cpaas");
    let (uuid, sealed) = sealed_secret(&app, &id).await;
    let cipher = cpaas::startup::load_cipher(&app.settings).unwrap();
    assert_eq!(
        cpaas::db::webhooks::open_webhook_secret(&cipher, DEV_TENANT, uuid, &sealed).unwrap(),
        secret,
        "the other tenant did not rotate it"
    );
    for bad in ["123", "opt_0192f0c1a2b37c4d8e9f00112233aabb"] {
        let (status, body) = json(
            app.get(&format!("/cpaas/v1/webhooks/{bad}"), &developer())
                .await,
        )
        .await;
        assert_eq!(status, 404);
        assert_eq!(code(&body), "ERR_CPAAS_NOT_FOUND");
    }
}

#[actix_web::test]
async fn nat64_6to4_and_other_special_addresses_are_refused_as_webhook_hosts() {
    let app = crate::helpers::spawn_app().await;
    let t = crate::helpers::token(crate::helpers::DEV_TENANT, &["developer"], "professional");
    for url in [
        "https://[64:ff9b::7f00:1]/hook",
        "https://[2002:7f00:1::]/hook",
        "https://[::127.0.0.1]/hook",
        "https://[fec0::1]/hook",
        "https://192.0.0.8/hook",
        "https://198.18.0.1/hook",
        "https://240.0.0.1/hook",
        "https://[ff02::1]/hook",
    ] {
        let (status, body) = crate::helpers::json(
            app.post(
                "/cpaas/v1/webhooks",
                &t,
                &serde_json::json!({ "url": url, "events": ["*"] }),
            )
            .await,
        )
        .await;
        assert_eq!(status, 400, "{url}: {body}");
    }
}

#[test]
fn the_development_switches_are_refused_in_production() {
    use std::collections::HashMap;
    let base = |extra: &[(&str, &str)]| {
        let mut env: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://localhost/x"),
            ("APP_ENV", "production"),
            ("JWT_PRIVATE_KEY_PATH", "/nonexistent.pem"),
            ("CPAAS_ENCRYPTION_KEY", crate::helpers::ENCRYPTION_KEY),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        cpaas::config::Settings::from_map(&env)
    };
    assert!(base(&[]).is_ok());
    for name in [
        "WEBHOOK_ALLOW_HTTP",
        "WEBHOOK_ALLOW_INTERNAL_HOSTS",
        "ALLOW_INSECURE_WEBHOOK_URLS",
        "SEED_ON_START",
    ] {
        let err = base(&[(name, "true")]).unwrap_err();
        assert!(err.to_string().contains("production"), "{name}: {err}");
    }
    let dev = cpaas::config::Settings::from_map(
        &[
            ("DATABASE_URL", "postgres://localhost/x"),
            ("WEBHOOK_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    )
    .unwrap();
    assert!(dev.webhook_allow_http && !dev.webhook_allow_internal_hosts);
    assert!(dev.app_env_defaulted);
}

#[actix_web::test]
async fn a_stored_idempotent_answer_with_a_webhook_secret_is_sealed_and_replays_whole() {
    use diesel::QueryableByName;
    use diesel_async::RunQueryDsl;
    let app = crate::helpers::spawn_app().await;
    let t = crate::helpers::token(crate::helpers::DEV_TENANT, &["developer"], "professional");
    let create = || {
        app.client
            .post(app.url("/cpaas/v1/webhooks"))
            .bearer_auth(&t)
            .header("idempotency-key", "create-hook-1")
            .json(&serde_json::json!({ "url": "https://hooks.example.com/x", "events": ["*"] }))
            .send()
    };
    let first = create().await.unwrap();
    assert_eq!(first.status(), 201);
    let first = first.bytes().await.unwrap();
    let secret = serde_json::from_slice::<serde_json::Value>(&first).unwrap()["data"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("whsec_"));

    #[derive(QueryableByName)]
    struct Stored {
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        response_body: Vec<u8>,
    }
    let mut conn = app.pool.get().await.unwrap();
    let stored: Stored =
        diesel::sql_query("SELECT response_body FROM idempotency_keys WHERE key = 'create-hook-1'")
            .get_result(&mut conn)
            .await
            .unwrap();
    let text = String::from_utf8_lossy(&stored.response_body);
    assert!(
        !text.contains(&secret),
        "the stored answer shows the secret"
    );
    assert!(!text.contains("whsec_"));

    let replay = create().await.unwrap();
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(
        replay.bytes().await.unwrap(),
        first,
        "replayed byte for byte"
    );
}
