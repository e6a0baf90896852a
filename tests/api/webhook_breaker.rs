//! The breaker of a tenant webhook: a receiver that keeps failing is held back, then disabled
//! with a `webhook.disabled` event and a state on the webhook; reactivating it closes it.

use diesel_async::RunQueryDsl;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{DEV_TENANT, TestApp, json, spawn_app_with, token};
use crate::messages::{count, send, sms};

const REQUESTED: &str = "eventzr.cpaas.communication.requested.v1";

fn developer() -> String {
    token(DEV_TENANT, &["developer"], "professional")
}

async fn webhook(app: &TestApp, id: &str) -> Value {
    let (status, body) = json(
        app.get(&format!("/cpaas/v1/webhooks/{id}"), &developer())
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

async fn deliver(app: &TestApp) -> Value {
    app.internal_post("/cpaas/v1/jobs/deliver-webhooks").await["counts"].clone()
}

async fn sql(app: &TestApp, statement: &str) {
    let mut conn = app.pool.get().await.unwrap();
    diesel::sql_query(statement)
        .execute(&mut conn)
        .await
        .unwrap();
}

#[actix_web::test]
async fn a_receiver_that_keeps_failing_is_held_back_then_disabled_with_an_event_and_reactivated() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(503).set_body_string("down for maintenance"))
        .mount(&receiver)
        .await;
    let app = spawn_app_with(|env| {
        env.insert("ALLOW_INSECURE_WEBHOOK_URLS".into(), "true".into());
        env.insert("WEBHOOK_BACKOFF_BASE_MS".into(), "60000".into());
        env.insert("WEBHOOK_BREAKER_THRESHOLD".into(), "2".into());
        env.insert("WEBHOOK_DISABLE_AFTER_SECS".into(), "3600".into());
    })
    .await;
    let (status, body) = json(
        app.post(
            "/cpaas/v1/webhooks",
            &developer(),
            &json!({ "url": format!("{}/hooks", receiver.uri()), "events": [REQUESTED] }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["data"]["state"], "ACTIVE");
    for _ in 0..4 {
        assert_eq!(send(&app, &developer(), &sms("+14155552671")).await.0, 202);
    }
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;

    // Two failures in a row open the breaker: the other deliveries are held back (a third
    // may have been claimed in the slot the first failure freed before the second ended).
    let counts = deliver(&app).await;
    let tried = counts["claimed"].as_i64().unwrap();
    assert!((2..=3).contains(&tried), "{counts}");
    assert_eq!(counts["retrying"], tried, "{counts}");
    let held = webhook(&app, &id).await;
    assert_eq!(held["state"], "BACKING_OFF", "{held}");
    assert_eq!(held["consecutive_failures"], tried, "{held}");
    assert!(held["paused_until"].is_string(), "{held}");
    assert!(held["failing_since"].is_string(), "{held}");
    let counts = deliver(&app).await;
    assert_eq!(
        counts["claimed"], 0,
        "held back while the breaker is open: {counts}"
    );
    assert_eq!(
        receiver.received_requests().await.unwrap().len() as i64,
        tried
    );

    // An hour of failures later, the next failure disables it.
    sql(
        &app,
        "UPDATE webhooks SET paused_until = now() - interval '1 second', \
         failing_since = now() - interval '2 hours'",
    )
    .await;
    sql(
        &app,
        "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE status = 'PENDING'",
    )
    .await;
    let counts = deliver(&app).await;
    assert!(counts["retrying"].as_i64().unwrap() >= 1, "{counts}");
    let disabled = webhook(&app, &id).await;
    assert_eq!(disabled["state"], "DISABLED", "{disabled}");
    assert_eq!(disabled["is_active"], false);
    let reason = disabled["disabled_reason"].as_str().unwrap();
    assert!(
        reason.contains("failing since") && reason.contains("503"),
        "{reason}"
    );
    let events = "SELECT count(*) AS n FROM outbox_events \
                  WHERE topic = 'eventzr.cpaas.webhook.disabled.v1' \
                    AND payload->'data'->>'webhookId' = ";
    assert_eq!(count(&app, &format!("{events}'{id}'")).await, 1);
    let before = receiver.received_requests().await.unwrap().len();
    sql(
        &app,
        "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE status = 'PENDING'",
    )
    .await;
    deliver(&app).await;
    assert_eq!(
        receiver.received_requests().await.unwrap().len(),
        before,
        "a disabled webhook gets nothing"
    );

    // Reactivated, it starts afresh; a delivered event keeps it closed.
    receiver.reset().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let (status, body) = json(
        app.patch(
            &format!("/cpaas/v1/webhooks/{id}"),
            &developer(),
            &json!({ "is_active": true }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["state"], "ACTIVE", "{body}");
    assert_eq!(body["data"]["consecutive_failures"], 0);
    assert!(body["data"]["disabled_at"].is_null());
    assert_eq!(send(&app, &developer(), &sms("+14155552671")).await.0, 202);
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    // The held-back backlog (still within its retry window) and the new event all arrive.
    let counts = deliver(&app).await;
    assert_eq!(counts["delivered"], 5, "{counts}");
    let pending = "SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'PENDING'";
    assert_eq!(count(&app, pending).await, 0);
    assert_eq!(webhook(&app, &id).await["state"], "ACTIVE");
}
