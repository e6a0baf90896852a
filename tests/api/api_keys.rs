//! Tenant API keys: created by an admin, shown once, stored as a hash, accepted as a bearer
//! token with their roles and tenancy, revoked at once.

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::helpers::{DEV_TENANT, TestApp, admin_token, code, json, spawn_app, token};
use crate::messages::{count, sms};

async fn create(app: &TestApp, admin: &str, body: Value) -> (u16, Value) {
    json(app.post("/cpaas/v1/api-keys", admin, &body).await).await
}

async fn new_key(app: &TestApp, roles: &[&str]) -> (String, String) {
    let (status, body) = create(
        app,
        &admin_token(),
        json!({ "name": format!("{roles:?} key"), "roles": roles }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let data = &body["data"];
    (
        data["id"].as_str().unwrap().to_owned(),
        data["key"].as_str().unwrap().to_owned(),
    )
}

#[actix_web::test]
async fn an_api_key_sends_a_message_and_only_its_hash_is_kept() {
    let app = spawn_app().await;
    let (status, body) = create(
        &app,
        &admin_token(),
        json!({ "name": "  ticketing back-end ", "roles": ["developer", "DEVELOPER"] }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let data = &body["data"];
    let key = data["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("cpk_") && key.len() == 47, "{key}");
    assert_eq!(data["name"], "ticketing back-end");
    assert_eq!(data["roles"], json!(["developer"]));
    assert_eq!(data["prefix"], &key[..12]);
    assert!(data["id"].as_str().unwrap().starts_with("apk_"));
    assert!(data["last_used_at"].is_null());

    let (status, sent) = json(
        app.post("/cpaas/v1/messages", &key, &sms("+14155552671"))
            .await,
    )
    .await;
    assert_eq!(status, 202, "the key sends: {sent}");
    let message_id = sent["data"]["id"].as_str().unwrap();
    let (status, read) = json(
        app.get(&format!("/cpaas/v1/messages/{message_id}"), &key)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{read}");
    let (_, me) = json(app.get("/auth/v1/me", &key).await).await;
    assert_eq!(me["data"]["tenantId"], DEV_TENANT.to_string());
    assert_eq!(me["data"]["sub"], data["id"]);

    let (status, list) = json(app.get("/cpaas/v1/api-keys", &admin_token()).await).await;
    assert_eq!(status, 200, "{list}");
    let listed = &list["data"][0];
    assert_eq!(listed["id"], data["id"]);
    assert!(
        listed.get("key").is_none(),
        "a list never shows the key: {listed}"
    );
    assert!(
        listed["last_used_at"].is_string(),
        "the use is recorded: {listed}"
    );

    let hex = hex::encode(Sha256::digest(key.as_bytes()));
    let by_hash =
        format!("SELECT count(*) AS n FROM api_keys WHERE key_hash = decode('{hex}', 'hex')");
    assert_eq!(count(&app, &by_hash).await, 1);
    let anywhere = format!(
        "SELECT count(*) AS n FROM api_keys t WHERE strpos(to_jsonb(t)::text, '{}') > 0",
        &key[12..]
    );
    assert_eq!(
        count(&app, &anywhere).await,
        0,
        "the key itself is stored nowhere"
    );
}

#[actix_web::test]
async fn a_user_role_key_reads_but_cannot_send_and_a_revoked_key_is_refused_at_once() {
    let app = spawn_app().await;
    let (_, reader) = new_key(&app, &["user"]).await;
    let (status, body) = json(app.get("/cpaas/v1/messages", &reader).await).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = json(
        app.post("/cpaas/v1/messages", &reader, &sms("+14155552671"))
            .await,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (403, "ERR_CPAAS_FORBIDDEN"),
        "{body}"
    );
    let (status, body) = create(&app, &reader, json!({ "name": "x", "roles": ["admin"] })).await;
    assert_eq!(status, 403, "only an admin makes keys: {body}");

    let (id, sender) = new_key(&app, &["developer"]).await;
    let before = count(&app, "SELECT count(*) AS n FROM messages").await;
    assert_eq!(
        app.post("/cpaas/v1/messages", &sender, &sms("+14155552671"))
            .await
            .status(),
        202
    );
    let (status, body) = json(
        app.delete(&format!("/cpaas/v1/api-keys/{id}"), &admin_token())
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = json(
        app.post("/cpaas/v1/messages", &sender, &sms("+14155552671"))
            .await,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (401, "ERR_CPAAS_UNAUTHORIZED"),
        "{body}"
    );
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM messages").await,
        before + 1
    );
    let (status, _) = json(
        app.delete(&format!("/cpaas/v1/api-keys/{id}"), &admin_token())
            .await,
    )
    .await;
    assert_eq!(status, 404, "revoked once");
    let (_, list) = json(app.get("/cpaas/v1/api-keys", &admin_token()).await).await;
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["id"] != id.as_str()),
        "a revoked key is not listed"
    );

    let forged = format!("cpk_{}", "A".repeat(43));
    let (status, _) = json(app.get("/cpaas/v1/messages", &forged).await).await;
    assert_eq!(status, 401);
}

#[actix_web::test]
async fn a_key_sees_only_its_tenant_and_expires() {
    let app = spawn_app().await;
    let other = Uuid::now_v7();
    let other_admin = token(other, &["admin"], "enterprise");
    let (status, body) = create(
        &app,
        &other_admin,
        json!({ "name": "b", "roles": ["admin"] }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let other_key = body["data"]["key"].as_str().unwrap().to_owned();
    let other_id = body["data"]["id"].as_str().unwrap().to_owned();

    let (_, mine) = new_key(&app, &["admin"]).await;
    let (status, sent) = json(
        app.post("/cpaas/v1/messages", &mine, &sms("+14155552671"))
            .await,
    )
    .await;
    assert_eq!(status, 202, "{sent}");
    let message = sent["data"]["id"].as_str().unwrap();
    let (status, body) = json(
        app.get(&format!("/cpaas/v1/messages/{message}"), &other_key)
            .await,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (404, "ERR_CPAAS_NOT_FOUND"),
        "{body}"
    );
    let (status, body) = json(
        app.delete(&format!("/cpaas/v1/api-keys/{other_id}"), &mine)
            .await,
    )
    .await;
    assert_eq!(
        status, 404,
        "another tenant's key is not mine to revoke: {body}"
    );
    let (_, list) = json(app.get("/cpaas/v1/api-keys", &mine).await).await;
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["id"] != other_id.as_str())
    );
    let res = app
        .client
        .get(app.url("/cpaas/v1/messages"))
        .bearer_auth(&mine)
        .header("x-tenant-id", other.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "x-tenant-id must match the key's tenant");

    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let (status, body) = create(
        &app,
        &admin_token(),
        json!({ "name": "short-lived", "roles": ["user"], "expires_at": soon.to_rfc3339() }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let short = body["data"]["key"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/cpaas/v1/messages", &short).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(
        app.get("/cpaas/v1/messages", &short).await.status(),
        401,
        "expired"
    );
}

#[actix_web::test]
async fn a_key_request_that_could_never_work_is_a_400_naming_the_field() {
    let app = spawn_app().await;
    let admin = admin_token();
    let past = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    for (body, field) in [
        (json!({ "name": " ", "roles": ["user"] }), "name"),
        (
            json!({ "name": "x".repeat(101), "roles": ["user"] }),
            "name",
        ),
        (json!({ "name": "k", "roles": [] }), "roles"),
        (json!({ "name": "k", "roles": ["owner"] }), "roles"),
        (
            json!({ "name": "k", "roles": ["user"], "expires_at": past }),
            "expires_at",
        ),
    ] {
        let (status, answer) = create(&app, &admin, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(code(&answer), "ERR_CPAAS_VALIDATION_FAILED");
        assert_eq!(answer["error"]["details"][0]["field"], field, "{answer}");
    }
    let (status, answer) = create(
        &app,
        &admin,
        json!({ "name": "k", "roles": ["user"], "scope": "*" }),
    )
    .await;
    assert_eq!(status, 400, "unknown fields are refused: {answer}");
    assert_eq!(count(&app, "SELECT count(*) AS n FROM api_keys").await, 0);
}
