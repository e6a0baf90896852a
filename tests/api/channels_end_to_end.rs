//! Channels that had only adapter-level tests, sent through `POST /cpaas/v1/messages` and the
//! drain against the mock providers' real wire formats: VOICE through Twilio's Calls API, SMS
//! through AWS SNS, PUSH through FCM; then `GET /cpaas/v1/usage` sums what they cost.

use std::net::TcpListener;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, json, spawn_app, token};
use crate::messages::send;

fn mock_providers() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    actix_web::rt::spawn(cpaas::mock_providers::mock_server(listener).unwrap());
    format!("http://127.0.0.1:{port}")
}

async fn provider(app: &TestApp, admin: &str, body: Value) -> String {
    let (status, created) = json(app.post("/cpaas/v1/providers", admin, &body).await).await;
    assert_eq!(status, 201, "{created}");
    created["data"]["id"].as_str().unwrap().to_owned()
}

async fn mock_get(mock: &str, path: &str) -> Value {
    reqwest::get(format!("{mock}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn message(app: &TestApp, t: &str, id: &str) -> Value {
    json(app.get(&format!("/cpaas/v1/messages/{id}"), t).await)
        .await
        .1["data"]
        .clone()
}

#[actix_web::test]
async fn voice_sns_and_fcm_sends_go_out_on_their_wire_formats_and_usage_sums_their_cost() {
    let mock = mock_providers();
    let app = spawn_app().await;
    let tenant = Uuid::now_v7();
    let admin = token(tenant, &["admin"], "enterprise");
    provider(
        &app,
        &admin,
        json!({ "name": "twilio", "kind": "TWILIO", "channels": ["SMS", "VOICE"], "priority": 1,
                "config": { "from": "+15005550006", "base_url": mock },
                "credentials": { "account_sid": "AC0123456789abcdef0123456789abcdef",
                                 "auth_token": "secret" } }),
    )
    .await;
    let sns = provider(
        &app,
        &admin,
        json!({ "name": "sns", "kind": "AWS_SNS", "channels": ["SMS"], "priority": 2,
                "config": { "region": "eu-west-1", "sender_id": "ACME", "base_url": mock },
                "credentials": { "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                                 "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" } }),
    )
    .await;
    let pem = std::fs::read_to_string(crate::helpers::key_path()).unwrap();
    provider(
        &app,
        &admin,
        json!({ "name": "fcm", "kind": "FCM", "channels": ["PUSH"],
                "config": { "project_id": "acme-push", "base_url": mock },
                "credentials": { "service_account": {
                    "type": "service_account",
                    "client_email": "svc@acme-push.iam.gserviceaccount.com",
                    "private_key": pem, "token_uri": format!("{mock}/token") } } }),
    )
    .await;
    let t = token(tenant, &["developer"], "enterprise");
    let mut ids = Vec::new();
    for body in [
        json!({ "channel": "VOICE", "recipient": "+14155552671",
                "message_body": "Your code is 1 2 3 4" }),
        json!({ "channel": "SMS", "recipient": "+447911123456", "message_body": "Gates open",
                "provider_id": sns }),
        json!({ "channel": "PUSH", "recipient": "device-token-1", "message_body": "Doors open" }),
    ] {
        let (status, sent) = send(&app, &t, &body).await;
        assert_eq!(status, 202, "{sent}");
        ids.push(sent["data"]["id"].as_str().unwrap().to_owned());
    }
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    // No provider reports a price here: the built-in price table's, the SMS by its +44 row.
    let expected = [("TWILIO", 0.013), ("AWS_SNS", 0.04), ("FCM", 0.0)];
    for (id, (kind, cost)) in ids.iter().zip(expected) {
        let m = message(&app, &t, id).await;
        assert_eq!(m["status"], "SENT", "{m}");
        assert_eq!(m["provider"], kind, "{m}");
        assert_eq!(m["cost_usd"], cost, "{m}");
        assert!(m["provider_message_id"].is_string(), "{m}");
    }

    let requests = mock_get(&mock, "/_mock/requests").await;
    let paths: Vec<String> = requests["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["kind"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("twilio ") && p.ends_with("/Calls.json")),
        "the VOICE send is a call: {paths:?}"
    );
    assert!(paths.iter().any(|p| p.starts_with("aws_sns ")), "{paths:?}");
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("fcm ") && p.contains("/projects/acme-push/messages:send")),
        "{paths:?}"
    );
    let stats = mock_get(&mock, "/_mock/stats").await;
    for kind in ["twilio", "aws_sns", "fcm", "fcm_token"] {
        assert_eq!(stats["kinds"][kind]["requests"], 1, "{kind}: {stats}");
    }

    let (status, usage) = json(app.get("/cpaas/v1/usage?group_by=provider", &admin).await).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["data"]["total"], 3);
    let total = usage["data"]["cost_usd"].as_f64().unwrap();
    assert!((total - 0.053).abs() < 1e-9, "{usage}");
    let groups = usage["data"]["groups"].as_array().unwrap();
    for (kind, cost) in expected {
        let group = groups
            .iter()
            .find(|g| g["key"] == kind)
            .unwrap_or_else(|| panic!("no {kind} group: {usage}"));
        assert_eq!(group["total"], 1, "{usage}");
        assert_eq!(group["by_status"]["SENT"], 1, "{usage}");
        assert!(
            (group["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-9,
            "{usage}"
        );
    }
}
