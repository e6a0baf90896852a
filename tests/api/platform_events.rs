//! What the platform's other services send and read: notify-svc's camelCase requests with
//! their `notificationId`, the plan-tier gate on the bus, the events that carry `metadata` and
//! `notificationId` throughout, the cancelled event, and opt-outs a provider reports.

use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::consumers::{publish, request, wait_for};
use crate::delivery::{MESSAGES, tenant_with, twilio};
use crate::helpers::{DEV_TENANT, INTERNAL_KEY, code, json, spawn_app_with, with_nats};
use crate::messages::{count, send, sender, sms};

#[derive(QueryableByName)]
struct Payload {
    #[diesel(sql_type = diesel::sql_types::Text)]
    topic: String,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    payload: Value,
}

/// The outbox events of the database, oldest first.
async fn events(app: &crate::helpers::TestApp) -> Vec<(String, Value)> {
    let mut conn = app.pool.get().await.unwrap();
    let rows: Vec<Payload> =
        diesel::sql_query("SELECT topic, payload FROM outbox_events ORDER BY seq")
            .load(&mut conn)
            .await
            .unwrap();
    rows.into_iter().map(|r| (r.topic, r.payload)).collect()
}

#[actix_web::test]
async fn a_camel_case_notify_request_becomes_a_message_whose_every_event_carries_its_notification_id()
 {
    let mut prefix = String::new();
    let app = spawn_app_with(|env| prefix = with_nats(env).1).await;
    let data = json!({
        "tenantId": DEV_TENANT.to_string(), "notificationId": "ntf_01JDXK5Q2M",
        "channel": "SMS", "recipient": "+14155552671", "body": "Doors open at 19:00",
        "priority": "HIGH", "locale": "en", "metadata": { "eventId": "evt_42" }
    });
    let id = "evt-5a1c9e2b-0d3f-4e7a-9b8c-1d2e3f4a5b6c";
    publish(&prefix, "camel", &request(id, data)).await;
    let stored = "SELECT count(*) AS n FROM messages WHERE notification_id = 'ntf_01JDXK5Q2M' \
                  AND body = 'Doors open at 19:00'";
    assert_eq!(wait_for(&app, stored, 1).await, 1);
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    let events = events(&app).await;
    let topics: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        topics,
        [
            "eventzr.cpaas.communication.requested.v1",
            "eventzr.cpaas.communication.sent.v1"
        ]
    );
    for (topic, payload) in &events {
        assert_eq!(
            payload["data"]["notificationId"], "ntf_01JDXK5Q2M",
            "{topic}"
        );
        assert_eq!(
            payload["data"]["metadata"],
            json!({ "eventId": "evt_42" }),
            "{topic}"
        );
    }
}

#[actix_web::test]
async fn a_free_tier_voice_request_through_the_bus_is_refused_acknowledged_and_counted() {
    let mut prefix = String::new();
    let app = spawn_app_with(|env| prefix = with_nats(env).1).await;
    let tenant = Uuid::now_v7();
    let mut conn = app.pool.get().await.unwrap();
    diesel::sql_query(format!(
        "INSERT INTO tenants (id, name, plan_tier, created_at, updated_at) \
         VALUES ('{tenant}', 'Free events', 'free', now(), now())"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let mut event = request(
        "evt-9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
        json!({ "tenantId": tenant.to_string(), "notificationId": "ntf_voice",
                "channel": "VOICE", "recipient": "+14155552671", "body": "Your code is 1234" }),
    );
    event["subject"] = json!(tenant.to_string());
    publish(&prefix, "voice", &event).await;
    let refused = "SELECT count(*) AS n FROM consumed_events WHERE outcome = 'rejected' \
                   AND detail LIKE 'ERR_CPAAS_TIER_INSUFFICIENT%'";
    assert_eq!(wait_for(&app, refused, 1).await, 1);
    assert_eq!(count(&app, "SELECT count(*) AS n FROM messages").await, 0);
    publish(&prefix, "voice-again", &event).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM consumed_events").await,
        1,
        "a redelivery is recognised, not handled again"
    );
    let text = app
        .client
        .get(app.url("/cpaas/v1/_internal/metrics"))
        .header("x-internal-api-key", INTERNAL_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            "cpaas_consumed_events_total{outcome=\"rejected\",topic=\"eventzr.notify.transactional.requested.v1\"} 1"
        ),
        "{text}"
    );
}

#[actix_web::test]
async fn a_cancelled_message_emits_its_cancelled_event_with_its_metadata() {
    let app = spawn_app_with(|_| {}).await;
    let mut body = sms("+14155552671");
    body["scheduled_at"] = json!((chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339());
    body["metadata"] = json!({ "order": "A-17" });
    let t = sender("professional");
    let (status, created) = send(&app, &t, &body).await;
    assert_eq!(status, 202, "{created}");
    let id = created["data"]["id"].as_str().unwrap();
    let (status, cancelled) = json(
        app.post(&format!("/cpaas/v1/messages/{id}/cancel"), &t, &json!({}))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    let events = events(&app).await;
    let (topic, payload) = events.last().unwrap();
    assert_eq!(topic, "eventzr.cpaas.communication.cancelled.v1");
    assert_eq!(payload["data"]["messageId"], id);
    assert_eq!(payload["data"]["status"], "CANCELLED");
    assert_eq!(payload["data"]["metadata"], json!({ "order": "A-17" }));
}

#[actix_web::test]
async fn twilio_21610_opts_the_recipient_out_so_the_next_send_is_refused() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400
        })))
        .mount(&server)
        .await;
    let app = spawn_app_with(|_| {}).await;
    let (tenant, t, _) = tenant_with(&app, &[twilio("primary", 1, &server.uri())]).await;
    let (status, _) = send(&app, &t, &sms("+14155552671")).await;
    assert_eq!(status, 202);
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    let provider_opt_out = format!(
        "SELECT count(*) AS n FROM opt_outs WHERE tenant_id = '{tenant}' \
         AND recipient = '+14155552671' AND channel = 'SMS' AND source = 'PROVIDER' \
         AND removed_at IS NULL"
    );
    assert_eq!(count(&app, &provider_opt_out).await, 1);
    let (status, body) = send(&app, &t, &sms("+14155552671")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(code(&body), "ERR_CPAAS_RECIPIENT_OPTED_OUT");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}
