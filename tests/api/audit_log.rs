//! The audit log: every configuration change recorded in the change's transaction, with its
//! actor and request, and never a secret.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, admin_token, code, json, spawn_app, token};
use crate::messages::count;

async fn log(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    let (status, body) = json(app.get(&format!("/cpaas/v1/audit-log{query}"), admin).await).await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

#[actix_web::test]
async fn a_provider_credential_change_is_logged_without_the_secret_and_only_for_its_tenant() {
    let app = spawn_app().await;
    let admin = admin_token();
    let (status, created) = json(
        app.post(
            "/cpaas/v1/providers",
            &admin,
            &json!({
                "name": "twilio-main", "kind": "TWILIO", "channels": ["SMS"], "priority": 10,
                "config": { "from": "+15005550006" },
                "credentials": { "account_sid": "AC0123456789abcdef", "auth_token": "first-secret-token" }
            }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let provider = created["data"]["id"].as_str().unwrap().to_owned();
    let res = app
        .patch(
            &format!("/cpaas/v1/providers/{provider}"),
            &admin,
            &json!({ "priority": 7, "credentials": { "auth_token": "second-secret-token" } }),
        )
        .await;
    let (status, updated) = json(res).await;
    assert_eq!(status, 200, "{updated}");
    let (status, conflict) = json(
        app.post(
            "/cpaas/v1/providers",
            &admin,
            &json!({
                "name": "twilio-main", "kind": "TWILIO", "config": { "from": "+15005550006" },
                "credentials": { "account_sid": "AC1", "auth_token": "third-secret-token" }
            }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 409, "{conflict}");

    let entries = log(&app, &admin, "?resource_type=provider").await;
    assert_eq!(
        entries.len(),
        2,
        "the refused create wrote nothing: {entries:?}"
    );
    let (last, first) = (&entries[0], &entries[1]);
    assert_eq!(last["action"], "updated");
    assert_eq!(last["resource_id"], provider.as_str());
    assert_eq!(last["changes"]["priority"], json!({ "from": 10, "to": 7 }));
    assert_eq!(
        last["changes"]["credentials_changed"],
        json!(["auth_token"])
    );
    assert_eq!(last["request_id"], updated["meta"]["request_id"]);
    let (_, me) = json(app.get("/auth/v1/me", &admin).await).await;
    assert_eq!(
        last["actor"],
        json!({ "type": "user", "id": me["data"]["sub"] })
    );
    assert_eq!(first["action"], "created");
    assert_eq!(first["changes"]["name"]["to"], "twilio-main");
    assert!(last["id"].as_str().unwrap().starts_with("aud_"));

    let text = serde_json::to_string(&entries).unwrap();
    for secret in [
        "first-secret-token",
        "second-secret-token",
        "third-secret-token",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
        let stored = format!(
            "SELECT count(*) AS n FROM audit_log t WHERE strpos(to_jsonb(t)::text, '{secret}') > 0"
        );
        assert_eq!(count(&app, &stored).await, 0);
    }
    assert_eq!(
        log(&app, &admin, &format!("?resource_id={provider}"))
            .await
            .len(),
        2
    );

    let other = token(Uuid::now_v7(), &["admin"], "enterprise");
    assert!(
        log(&app, &other, "").await.is_empty(),
        "another tenant sees none of it"
    );
    assert!(
        log(&app, &other, &format!("?resource_id={provider}"))
            .await
            .is_empty(),
        "not even by id"
    );
}

#[actix_web::test]
async fn a_change_made_with_an_api_key_names_the_key_and_the_log_filters() {
    let app = spawn_app().await;
    let admin = admin_token();
    let (status, body) = json(
        app.post(
            "/cpaas/v1/api-keys",
            &admin,
            &json!({ "name": "ops", "roles": ["admin"] }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let key = body["data"]["key"].as_str().unwrap().to_owned();
    let key_id = body["data"]["id"].as_str().unwrap().to_owned();
    let (status, hook) = json(
        app.post(
            "/cpaas/v1/webhooks",
            &key,
            &json!({ "url": "https://hooks.example.com/ops", "events": ["*"] }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let secret = hook["data"]["secret"].as_str().unwrap().to_owned();
    let webhook = hook["data"]["id"].as_str().unwrap().to_owned();
    let res = app
        .post(
            &format!("/cpaas/v1/webhooks/{webhook}/rotate-secret"),
            &key,
            &json!({}),
        )
        .await;
    let (status, rotated) = json(res).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["data"]["secret"].as_str().unwrap().to_owned();

    let by_key = log(&app, &admin, &format!("?actor={key_id}")).await;
    let actions: Vec<(&str, &str)> = by_key
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["resource_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [("secret_rotated", "webhook"), ("created", "webhook")]
    );
    assert_eq!(
        by_key[0]["actor"],
        json!({ "type": "api_key", "id": key_id })
    );
    let text = serde_json::to_string(&by_key).unwrap();
    assert!(
        !text.contains(&secret) && !text.contains(&new_secret),
        "{text}"
    );
    assert!(!text.contains(&key[12..]), "nor the key");

    let keys = log(&app, &admin, "?resource_type=api_key").await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["resource_id"], key_id.as_str());
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let query = format!("?from={}", urlencode(&future));
    assert!(
        log(&app, &admin, &query).await.is_empty(),
        "nothing in the future"
    );
    let (status, body) = json(
        app.get("/cpaas/v1/audit-log?resource_type=planet", &admin)
            .await,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (400, "ERR_CPAAS_VALIDATION_FAILED"),
        "{body}"
    );
    let (status, _) = json(app.get("/cpaas/v1/audit-log", &key).await).await;
    assert_eq!(status, 200, "an admin key reads the log");
    let reader = token(crate::helpers::DEV_TENANT, &["developer"], "professional");
    let (status, _) = json(app.get("/cpaas/v1/audit-log", &reader).await).await;
    assert_eq!(status, 403, "only admins read the log");
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
