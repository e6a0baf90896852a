//! The consumed `notify.transactional.requested` topic: a send requested by another service.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{DEV_TENANT, TestApp, nats_url, spawn_app_with, with_nats};
use crate::messages::count;

async fn publish(prefix: &str, msg_id: &str, event: &serde_json::Value) {
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    js.publish_with_headers(
        format!("{prefix}eventzr.notify.transactional.requested.v1"),
        headers,
        serde_json::to_vec(event).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

fn request(event_id: &str, data: serde_json::Value) -> serde_json::Value {
    json!({
        "specversion": "1.0", "type": "eventzr.notify.transactional.requested.v1",
        "source": "eventzr-notify-svc", "id": event_id, "time": "2026-11-29T10:00:00.000Z",
        "datacontenttype": "application/json", "subject": DEV_TENANT.to_string(), "data": data
    })
}

async fn wait_for(app: &TestApp, sql: &str, expected: i64) -> i64 {
    let mut n = 0;
    for _ in 0..100 {
        n = count(app, sql).await;
        if n == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    n
}

#[actix_web::test]
async fn a_requested_event_creates_one_message_even_when_redelivered() {
    let mut prefix = String::new();
    let app = spawn_app_with(|env| prefix = with_nats(env).1).await;
    let data = json!({
        "tenantId": DEV_TENANT.to_string(), "channel": "SMS", "recipient": "+14155552671",
        "message_body": "Your ticket is confirmed"
    });
    let event = request("evt-7f4b0d0e-2a57-4c9e-9d1a-0f6f4f0e1a01", data);
    publish(&prefix, "first", &event).await;
    let messages = "SELECT count(*) AS n FROM messages WHERE source_event_id = 'evt-7f4b0d0e-2a57-4c9e-9d1a-0f6f4f0e1a01'";
    assert_eq!(wait_for(&app, messages, 1).await, 1);
    let requested = "SELECT count(*) AS n FROM outbox_events WHERE topic = 'eventzr.cpaas.communication.requested.v1'";
    assert_eq!(
        count(&app, requested).await,
        1,
        "accepted exactly as the API accepts a send"
    );

    publish(&prefix, "second", &event).await;
    let seen = "SELECT count(*) AS n FROM consumed_events";
    assert_eq!(wait_for(&app, seen, 1).await, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        count(&app, messages).await,
        1,
        "the same event id never makes a second message"
    );
}

#[actix_web::test]
async fn an_invalid_request_is_recorded_as_refused_and_not_retried() {
    let mut prefix = String::new();
    let app = spawn_app_with(|env| prefix = with_nats(env).1).await;
    let data = json!({ "tenantId": DEV_TENANT.to_string(), "channel": "SMS", "recipient": "+1415555267", "message_body": "x" });
    publish(
        &prefix,
        "bad",
        &request("evt-0c1e8a1e-4d2b-4b8c-8f0e-6b3c1d2e3f40", data),
    )
    .await;
    let refused = "SELECT count(*) AS n FROM consumed_events WHERE outcome = 'rejected' AND detail LIKE 'ERR_CPAAS_INVALID_PHONE_NUMBER%'";
    assert_eq!(wait_for(&app, refused, 1).await, 1);
    assert_eq!(count(&app, "SELECT count(*) AS n FROM messages").await, 0);
}
