//! The consumed topics: `notify.transactional.requested` (a send requested by another service)
//! and `sms.inbound` (an inbound message received through another service).

use std::time::Duration;

use serde_json::json;

use crate::helpers::{DEV_TENANT, TestApp, code, nats_url, spawn_app_with, with_nats};
use crate::messages::{count, send, sender, sms};

pub async fn publish(prefix: &str, msg_id: &str, event: &serde_json::Value) {
    publish_on(
        prefix,
        "eventzr.notify.transactional.requested.v1",
        msg_id,
        event,
    )
    .await;
}

async fn publish_on(prefix: &str, topic: &str, msg_id: &str, event: &serde_json::Value) {
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    js.publish_with_headers(
        format!("{prefix}{topic}"),
        headers,
        serde_json::to_vec(event).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

pub fn request(event_id: &str, data: serde_json::Value) -> serde_json::Value {
    json!({
        "specversion": "1.0", "type": "eventzr.notify.transactional.requested.v1",
        "source": "eventzr-notify-svc", "id": event_id, "time": "2026-11-29T10:00:00.000Z",
        "datacontenttype": "application/json", "subject": DEV_TENANT.to_string(), "data": data
    })
}

pub async fn wait_for(app: &TestApp, sql: &str, expected: i64) -> i64 {
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
async fn a_requested_event_may_carry_a_fallback_chain_in_camel_case() {
    let mut prefix = String::new();
    let app = spawn_app_with(|env| prefix = with_nats(env).1).await;
    let data = json!({
        "tenantId": DEV_TENANT.to_string(), "channel": "WHATSAPP", "recipient": "+14155552671",
        "body": "Doors open at 19:00",
        "fallback": [ { "channel": "SMS", "afterSecs": 60 },
                      { "channel": "EMAIL", "recipient": "ana@example.com",
                        "messageBody": "Doors open at 19:00", "subject": "Doors" } ]
    });
    publish(
        &prefix,
        "chain",
        &request("evt-3b9c1f0e-6c1d-4e0a-9b51-2d7e8f9a0b12", data),
    )
    .await;
    let steps = "SELECT count(*) AS n FROM message_chain_steps s JOIN messages m \
                 ON m.id = s.chain_id AND m.source_event_id = 'evt-3b9c1f0e-6c1d-4e0a-9b51-2d7e8f9a0b12'";
    assert_eq!(wait_for(&app, steps, 3).await, 3);
    let waiting = "SELECT count(*) AS n FROM message_chain_steps \
                   WHERE step = 1 AND state = 'PENDING' AND after_secs = 60 AND due_at IS NOT NULL";
    assert_eq!(count(&app, waiting).await, 1);
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

const INBOUND: &str = "eventzr.cpaas.sms.inbound.v1";

fn inbound(event_id: &str, source: &str, body: &str) -> serde_json::Value {
    json!({
        "specversion": "1.0", "type": INBOUND, "source": source, "id": event_id,
        "time": "2026-11-29T10:00:00.000Z", "datacontenttype": "application/json",
        "subject": DEV_TENANT.to_string(),
        "data": { "tenantId": DEV_TENANT.to_string(), "channel": "SMS",
                  "from": "+1 415 555 2671", "to": "+15005550006", "body": body }
    })
}

#[actix_web::test]
async fn an_inbound_stop_from_another_service_opts_the_sender_out_and_start_reverses_it() {
    let mut prefix = String::new();
    let app = spawn_app_with(|env| prefix = with_nats(env).1).await;
    let t = sender("professional");
    let opted_out = "SELECT count(*) AS n FROM opt_outs WHERE recipient = '+14155552671' \
                     AND channel = 'SMS' AND source = 'STOP_KEYWORD' AND removed_at IS NULL";

    let stop = inbound(
        "evt-3b0f5c1e-8a7d-4f43-9c55-1d2e3f405162",
        "eventzr-inbound-gateway",
        " stop ",
    );
    publish_on(&prefix, INBOUND, "stop-1", &stop).await;
    assert_eq!(wait_for(&app, opted_out, 1).await, 1);
    let (status, body) = send(&app, &t, &sms("+14155552671")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(code(&body), "ERR_CPAAS_RECIPIENT_OPTED_OUT");

    let start = inbound(
        "evt-3b0f5c1e-8a7d-4f43-9c55-1d2e3f405163",
        "eventzr-inbound-gateway",
        "START",
    );
    publish_on(&prefix, INBOUND, "start-1", &start).await;
    assert_eq!(wait_for(&app, opted_out, 0).await, 0);
    let (status, body) = send(&app, &t, &sms("+14155552671")).await;
    assert_eq!(status, 202, "{body}");

    // The STOP delivered again (a redelivery of the same event) changes nothing.
    publish_on(&prefix, INBOUND, "stop-again", &stop).await;
    // An event this service published itself was applied when the callback came in.
    let own = inbound(
        "evt-3b0f5c1e-8a7d-4f43-9c55-1d2e3f405164",
        "cpaas-orchestrator-svc",
        "STOP",
    );
    publish_on(&prefix, INBOUND, "own-1", &own).await;
    let seen =
        "SELECT count(*) AS n FROM consumed_events WHERE topic = 'eventzr.cpaas.sms.inbound.v1'";
    assert_eq!(wait_for(&app, seen, 3).await, 3);
    let own_recorded = "SELECT count(*) AS n FROM consumed_events WHERE outcome = 'own_event'";
    assert_eq!(count(&app, own_recorded).await, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&app, opted_out).await, 0, "still opted in");
}

#[actix_web::test]
async fn on_jetstream_a_malformed_or_always_failing_event_is_recorded_as_poison_and_skipped() {
    let mut prefix = String::new();
    let app = spawn_app_with(|env| {
        prefix = with_nats(env).1;
        env.insert("CONSUMER_MAX_ATTEMPTS".into(), "2".into());
    })
    .await;
    let topic = "eventzr.notify.transactional.requested.v1";
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.publish(format!("{prefix}{topic}"), "{ not an event".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let data = json!({
        "tenantId": DEV_TENANT.to_string(), "channel": "SMS", "recipient": "+14155552671",
        "message_body": "Gates open at 6"
    });
    // PostgreSQL text cannot hold the NUL of this id: every attempt at it fails.
    publish(
        &prefix,
        "failing",
        &request("evt-\u{0}-never", data.clone()),
    )
    .await;
    publish(&prefix, "good", &request("evt-js-after-poison", data)).await;

    let poison = "SELECT count(*) AS n FROM consumed_events WHERE outcome = 'poison'";
    let n = wait_for(&app, poison, 2).await;
    assert_eq!(n, 2, "both recorded as poison");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM consumed_events WHERE outcome = 'poison' \
             AND event_id LIKE 'jetstream:%' AND payload = '{ not an event'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM consumed_events WHERE outcome = 'poison' \
             AND event_id = 'evt-\u{FFFD}-never' AND detail LIKE 'failed 2 times%'"
        )
        .await,
        1
    );
    let after = "SELECT count(*) AS n FROM messages WHERE source_event_id = 'evt-js-after-poison'";
    assert_eq!(wait_for(&app, after, 1).await, 1);
}
