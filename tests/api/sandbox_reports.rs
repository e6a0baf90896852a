//! The SANDBOX provider's delivery reports: a sent sandbox message is reported DELIVERED (or
//! UNDELIVERED) after its `delivery_delay_ms`, through the callback status path, with its
//! event on the bus and its webhook, and a restart in between loses nothing.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    DEV_TENANT, TestApp, json, nats_url, spawn_app_with, spawn_on, token, with_nats,
};
use crate::messages::{send, sender, sms};

const DELIVERED: &str = "eventzr.cpaas.communication.delivered.v1";

async fn message(app: &TestApp, id: &str) -> Value {
    let (status, body) = json(
        app.get(&format!("/cpaas/v1/messages/{id}"), &sender("professional"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

async fn last_event(stream: &str, subject: &str) -> Value {
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream(stream).await.unwrap();
    let raw = stream
        .get_last_raw_message_by_subject(subject)
        .await
        .unwrap();
    serde_json::from_slice(&raw.payload).unwrap()
}

fn env_for(stream: &str, prefix: &str, env: &mut std::collections::HashMap<String, String>) {
    env.insert("NATS_URL".into(), nats_url());
    env.insert("NATS_STREAM".into(), stream.to_owned());
    env.insert("NATS_SUBJECT_PREFIX".into(), prefix.to_owned());
    env.insert("ALLOW_INSECURE_WEBHOOK_URLS".into(), "true".into());
}

#[actix_web::test]
async fn a_seeded_sandbox_sms_reaches_delivered_across_a_restart_with_its_event_and_webhook() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let (mut stream, mut prefix) = (String::new(), String::new());
    let app = spawn_app_with(|env| {
        (stream, prefix) = with_nats(env);
        env.insert("ALLOW_INSECURE_WEBHOOK_URLS".into(), "true".into());
    })
    .await;
    let developer = token(DEV_TENANT, &["developer"], "professional");
    let (status, hook) = json(
        app.post(
            "/cpaas/v1/webhooks",
            &developer,
            &json!({ "url": format!("{}/hooks", receiver.uri()), "events": [DELIVERED] }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{hook}");

    let (status, sent) = send(&app, &sender("professional"), &sms("+14155552671")).await;
    assert_eq!(status, 202, "{sent}");
    let id = sent["data"]["id"].as_str().unwrap().to_owned();
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    assert_eq!(message(&app, &id).await["status"], "SENT");

    // The process stops between the send and its report; a new one picks the report up.
    app.stop().await;
    let (s, p) = (stream.clone(), prefix.clone());
    let app = spawn_on(&app.db_name, &app.database_url, move |env| {
        env_for(&s, &p, env)
    })
    .await;
    // The seeded sandbox reports 500 ms after the send.
    let mut report = Value::Null;
    for _ in 0..50 {
        report = app.internal_post("/cpaas/v1/jobs/sandbox-reports").await;
        if report["counts"]["delivered"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(report["counts"]["delivered"], 1, "{report}");
    let delivered = message(&app, &id).await;
    assert_eq!(delivered["status"], "DELIVERED", "{delivered}");
    assert!(delivered["delivered_at"].is_string());

    let again = app.internal_post("/cpaas/v1/jobs/sandbox-reports").await;
    assert_eq!(
        again["counts"]["due"], 0,
        "a delivered message is not reported twice"
    );

    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    let event = last_event(&stream, &format!("{prefix}{DELIVERED}")).await;
    assert_eq!(event["type"], DELIVERED);
    assert_eq!(event["data"]["messageId"], id);
    assert_eq!(event["data"]["status"], "DELIVERED");

    let counts = app.internal_post("/cpaas/v1/jobs/deliver-webhooks").await;
    assert_eq!(counts["counts"]["delivered"], 1, "{counts}");
    let received = receiver.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["type"], DELIVERED);
    assert_eq!(body["data"]["messageId"], id);
}

#[actix_web::test]
async fn a_sandbox_report_waits_for_its_delay_and_undelivered_rate_gives_undelivered() {
    let app = spawn_app_with(|_| {}).await;
    let tenant = uuid::Uuid::now_v7();
    let admin = token(tenant, &["admin"], "professional");
    let (status, body) = json(
        app.post(
            "/cpaas/v1/providers",
            &admin,
            &json!({ "name": "slow sandbox", "kind": "SANDBOX",
                     "config": { "delivery_delay_ms": 3_600_000, "undelivered_rate": 1.0 } }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let provider = body["data"]["id"].as_str().unwrap().to_owned();
    let developer = token(tenant, &["developer"], "professional");
    let (status, sent) = send(&app, &developer, &sms("+14155552671")).await;
    assert_eq!(status, 202, "{sent}");
    let id = sent["data"]["id"].as_str().unwrap().to_owned();
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    let report = app.internal_post("/cpaas/v1/jobs/sandbox-reports").await;
    assert_eq!(
        report["counts"]["due"], 0,
        "an hour has not passed: {report}"
    );

    let res = app
        .patch(
            &format!("/cpaas/v1/providers/{provider}"),
            &admin,
            &json!({ "config": { "delivery_delay_ms": 0, "undelivered_rate": 1.0,
                                 "undelivered_code": "ABSENT_SUBSCRIBER" } }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let report = app.internal_post("/cpaas/v1/jobs/sandbox-reports").await;
    assert_eq!(report["counts"]["undelivered"], 1, "{report}");
    let (_, body) = json(
        app.get(&format!("/cpaas/v1/messages/{id}"), &developer)
            .await,
    )
    .await;
    assert_eq!(body["data"]["status"], "UNDELIVERED", "{body}");
    assert_eq!(body["data"]["error"]["code"], "ABSENT_SUBSCRIBER", "{body}");
}

#[actix_web::test]
async fn a_sandbox_undelivered_rate_outside_zero_to_one_is_refused() {
    let app = spawn_app_with(|_| {}).await;
    let admin = token(uuid::Uuid::now_v7(), &["admin"], "professional");
    let res = app
        .post(
            "/cpaas/v1/providers",
            &admin,
            &json!({ "name": "bad", "kind": "SANDBOX", "config": { "undelivered_rate": 2 } }),
        )
        .await;
    let (status, body) = json(res).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "ERR_CPAAS_INVALID_PROVIDER_CONFIG");
}
