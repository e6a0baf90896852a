//! Tenant webhook delivery: signed POSTs of the subscribed events, retries until the receiver
//! answers, the retry window, deactivated webhooks, and the delivery log.

use std::collections::HashMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{DEV_TENANT, TestApp, code, json, spawn_app_with, token};
use crate::messages::{send, sender, sms};

const SENT: &str = "eventzr.cpaas.communication.sent.v1";
const REQUESTED: &str = "eventzr.cpaas.communication.requested.v1";

fn developer() -> String {
    token(DEV_TENANT, &["developer"], "professional")
}

fn local_receivers(env: &mut HashMap<String, String>) {
    env.insert("ALLOW_INSECURE_WEBHOOK_URLS".into(), "true".into());
    env.insert("WEBHOOK_BACKOFF_BASE_MS".into(), "0".into());
}

async fn subscribe(app: &TestApp, url: &str, events: &[&str]) -> (String, String) {
    let (status, body) = json(
        app.post(
            "/cpaas/v1/webhooks",
            &developer(),
            &json!({ "url": url, "events": events }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["data"]["id"].as_str().unwrap().to_owned(),
        body["data"]["secret"].as_str().unwrap().to_owned(),
    )
}

/// Runs `deliver-webhooks` once and returns its counts.
async fn deliver(app: &TestApp) -> Value {
    app.internal_post("/cpaas/v1/jobs/deliver-webhooks").await["counts"].clone()
}

async fn deliveries(app: &TestApp, webhook: &str, query: &str) -> Vec<Value> {
    let (status, body) = json(
        app.get(
            &format!("/cpaas/v1/webhooks/{webhook}/deliveries{query}"),
            &developer(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

/// Checks a signature the way the documentation tells receivers to.
fn signature_is_valid(secret: &str, header: &str, body: &[u8]) -> bool {
    let parts: HashMap<&str, &str> = header
        .split(',')
        .filter_map(|p| p.split_once('='))
        .collect();
    let (Some(t), Some(v1)) = (parts.get("t"), parts.get("v1")) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let now = chrono::Utc::now().timestamp();
    (now - t.parse::<i64>().unwrap()).abs() < 300
        && mac.verify_slice(&hex::decode(v1).unwrap()).is_ok()
}

#[actix_web::test]
async fn a_receiver_that_fails_twice_gets_the_signed_event_on_the_third_try() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/cpaas"))
        .respond_with(ResponseTemplate::new(500).set_body_string("database is down"))
        .up_to_n_times(2)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/hooks/cpaas"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let app = spawn_app_with(local_receivers).await;
    let (webhook, secret) =
        subscribe(&app, &format!("{}/hooks/cpaas", receiver.uri()), &[SENT]).await;

    let (status, created) = send(&app, &sender("professional"), &sms("+14155552671")).await;
    assert_eq!(status, 202, "{created}");
    let message_id = created["data"]["id"].as_str().unwrap().to_owned();
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;

    // Only the subscribed topic is delivered: one delivery, for `communication.sent`.
    let counts = deliver(&app).await;
    assert_eq!(counts["claimed"], 1, "{counts}");
    assert_eq!(counts["retrying"], 1, "{counts}");
    let pending = deliveries(&app, &webhook, "").await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["status"], "PENDING");
    assert_eq!(pending[0]["last_status_code"], 500);
    assert!(pending[0]["next_attempt_at"].is_string());
    assert!(
        pending[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("database is down")
    );

    assert_eq!(deliver(&app).await["retrying"], 1);
    assert_eq!(deliver(&app).await["delivered"], 1);
    assert_eq!(deliver(&app).await["claimed"], 0, "nothing is left to send");

    let requests = receiver.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    let first_event_id = requests[0].headers["x-cpaas-event-id"].to_str().unwrap();
    for request in &requests {
        let signature = request.headers["x-cpaas-signature"].to_str().unwrap();
        assert!(
            signature_is_valid(&secret, signature, &request.body),
            "{signature}"
        );
        assert!(!signature_is_valid("whsec_wrong", signature, &request.body));
        assert!(
            request.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/cloudevents+json")
        );
        let event: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["type"], SENT);
        assert_eq!(event["id"], first_event_id, "every retry is the same event");
        assert_eq!(
            request.headers["x-cpaas-event-id"].to_str().unwrap(),
            first_event_id
        );
        assert_eq!(event["subject"], DEV_TENANT.to_string());
        assert_eq!(event["data"]["messageId"], message_id.as_str());
        assert_eq!(event["data"]["status"], "SENT");
    }
    let attempts: Vec<&str> = requests
        .iter()
        .map(|r| r.headers["x-cpaas-attempt"].to_str().unwrap())
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);

    let log = deliveries(&app, &webhook, "").await;
    assert_eq!(log.len(), 1);
    let d = &log[0];
    assert!(d["id"].as_str().unwrap().starts_with("whd_"));
    assert_eq!(d["webhook_id"], webhook.as_str());
    assert_eq!(d["event_id"], first_event_id);
    assert_eq!(d["event_type"], SENT);
    assert_eq!(d["status"], "DELIVERED");
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["last_status_code"], 204);
    assert!(d["last_error"].is_null());
    assert!(d["next_attempt_at"].is_null());
    assert!(d["delivered_at"].is_string());
    let codes: Vec<i64> = d["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 500, 204]);
    assert_eq!(
        requests[0].headers["x-cpaas-delivery-id"].to_str().unwrap(),
        d["id"].as_str().unwrap()
    );

    assert_eq!(
        deliveries(&app, &webhook, "?status=DELIVERED").await.len(),
        1
    );
    assert!(
        deliveries(&app, &webhook, "?status=FAILED")
            .await
            .is_empty()
    );
    let (status, body) = json(
        app.get(
            &format!("/cpaas/v1/webhooks/{webhook}/deliveries?status=LOST"),
            &developer(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "ERR_CPAAS_VALIDATION_FAILED");
}

#[actix_web::test]
async fn each_event_reaches_every_subscribed_webhook_once_and_other_tenants_see_nothing() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let app = spawn_app_with(local_receivers).await;
    let (all, _) = subscribe(&app, &format!("{}/all", receiver.uri()), &["*"]).await;
    let (requested_only, _) =
        subscribe(&app, &format!("{}/requested", receiver.uri()), &[REQUESTED]).await;

    send(&app, &sender("professional"), &sms("+14155552671")).await;
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    // A second drain (and a redelivered event) adds no delivery.
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    let counts = deliver(&app).await;
    assert_eq!(counts["delivered"], 3, "{counts}");

    let mut paths: Vec<String> = receiver
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    paths.sort();
    assert_eq!(paths, ["/all", "/all", "/requested"]);
    let mut topics: Vec<String> = deliveries(&app, &all, "")
        .await
        .iter()
        .map(|d| d["event_type"].as_str().unwrap().to_owned())
        .collect();
    topics.sort();
    assert_eq!(topics, [REQUESTED, SENT]);
    assert_eq!(deliveries(&app, &requested_only, "").await.len(), 1);

    let stranger = token(Uuid::now_v7(), &["developer"], "professional");
    let (status, body) = json(
        app.get(&format!("/cpaas/v1/webhooks/{all}/deliveries"), &stranger)
            .await,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(code(&body), "ERR_CPAAS_NOT_FOUND");
}

#[actix_web::test]
async fn a_delivery_fails_after_its_window_and_a_deactivated_webhook_gets_nothing_more() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/paused"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let app = spawn_app_with(|env| {
        local_receivers(env);
        env.insert("WEBHOOK_TIMEOUT_MS".into(), "200".into());
        env.insert("WEBHOOK_RETRY_WINDOW_SECS".into(), "0".into());
    })
    .await;
    let (slow, _) = subscribe(&app, &format!("{}/slow", receiver.uri()), &[SENT]).await;
    let (paused, _) = subscribe(&app, &format!("{}/paused", receiver.uri()), &[SENT]).await;

    send(&app, &sender("professional"), &sms("+14155552671")).await;
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    let (status, body) = json(
        app.patch(
            &format!("/cpaas/v1/webhooks/{paused}"),
            &developer(),
            &json!({ "is_active": false }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let counts = deliver(&app).await;
    assert_eq!(counts["failed"], 2, "{counts}");

    let timed_out = &deliveries(&app, &slow, "?status=FAILED").await[0];
    assert_eq!(timed_out["attempts"], 1);
    assert!(timed_out["last_status_code"].is_null());
    assert!(
        timed_out["last_error"]
            .as_str()
            .unwrap()
            .contains("no answer within 200 ms"),
        "{timed_out}"
    );
    assert!(timed_out["failed_at"].is_string());
    assert!(timed_out["attempt_log"][0]["latency_ms"].as_i64().unwrap() >= 200);

    let skipped = &deliveries(&app, &paused, "").await[0];
    assert_eq!(skipped["status"], "FAILED");
    assert_eq!(skipped["attempts"], 0);
    assert!(skipped["attempt_log"].as_array().unwrap().is_empty());
    let paths: Vec<String> = receiver
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(
        paths,
        ["/slow"],
        "nothing is posted to a deactivated webhook"
    );

    // Active again, its failed delivery is sent once more on request.
    let (status, _) = json(
        app.patch(
            &format!("/cpaas/v1/webhooks/{paused}"),
            &developer(),
            &json!({ "is_active": true }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let skipped_id = skipped["id"].as_str().unwrap();
    let retry = format!("/cpaas/v1/webhooks/{paused}/deliveries/{skipped_id}/retry");
    let (status, body) = json(app.post(&retry, &developer(), &json!({})).await).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["status"], "PENDING");
    assert!(body["data"]["failed_at"].is_null());
    let (status, body) = json(app.post(&retry, &developer(), &json!({})).await).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(code(&body), "ERR_CPAAS_INVALID_STATE");
    let stranger = token(Uuid::now_v7(), &["developer"], "professional");
    let (status, _) = json(app.post(&retry, &stranger, &json!({})).await).await;
    assert_eq!(status, 404);
    let elsewhere = format!("/cpaas/v1/webhooks/{slow}/deliveries/{skipped_id}/retry");
    let (status, body) = json(app.post(&elsewhere, &developer(), &json!({})).await).await;
    assert_eq!(
        status, 404,
        "a delivery is reached through its own webhook: {body}"
    );

    assert_eq!(deliver(&app).await["delivered"], 1);
    let resent = &deliveries(&app, &paused, "").await[0];
    assert_eq!(resent["status"], "DELIVERED");
    assert_eq!(resent["attempts"], 1);
}

#[actix_web::test]
async fn outside_development_a_host_that_resolves_to_an_internal_address_is_not_called() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let app = spawn_app_with(|env| {
        env.insert("WEBHOOK_BACKOFF_BASE_MS".into(), "0".into());
    })
    .await;
    let (webhook, _) = subscribe(&app, "https://hooks.example.com/cpaas", &[SENT]).await;
    // The saved host name later points at this machine (a changed record, DNS rebinding):
    // `localhost` stands for it here.
    let port = receiver.address().port();
    let uuid = Uuid::parse_str(webhook.trim_start_matches("whk_")).unwrap();
    {
        use diesel_async::RunQueryDsl;
        let mut conn = app.pool.get().await.unwrap();
        diesel::sql_query("UPDATE webhooks SET url = $1 WHERE id = $2")
            .bind::<diesel::sql_types::Text, _>(format!("http://localhost:{port}/hook"))
            .bind::<diesel::sql_types::Uuid, _>(uuid)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    send(&app, &sender("professional"), &sms("+14155552671")).await;
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    assert_eq!(deliver(&app).await["retrying"], 1);
    let d = &deliveries(&app, &webhook, "").await[0];
    assert!(
        d["last_error"]
            .as_str()
            .unwrap()
            .contains("resolves only to internal addresses"),
        "{d}"
    );
    assert!(receiver.received_requests().await.unwrap().is_empty());
}

/// A receiver that accepts connections and never answers.
async fn silent_receiver() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

#[actix_web::test]
async fn a_receiver_that_never_answers_holds_no_more_than_its_share_and_others_get_theirs_at_once()
{
    let app = spawn_app_with(|env| {
        local_receivers(env);
        env.insert("WEBHOOK_TIMEOUT_MS".into(), "4000".into());
        env.insert("WEBHOOK_CONCURRENCY".into(), "4".into());
        env.insert("WEBHOOK_MAX_IN_FLIGHT".into(), "2".into());
    })
    .await;
    let (silent, _held) = silent_receiver().await;
    subscribe(&app, &silent, &[REQUESTED]).await;

    let healthy = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&healthy)
        .await;
    let other = Uuid::now_v7();
    let other_admin = token(other, &["admin"], "enterprise");
    let (status, body) = json(
        app.post(
            "/cpaas/v1/providers",
            &other_admin,
            &json!({ "name": "sandbox", "kind": "SANDBOX", "channels": ["SMS"], "priority": 1,
                     "config": {}, "credentials": {} }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = json(
        app.post(
            "/cpaas/v1/webhooks",
            &other_admin,
            &json!({ "url": format!("{}/hooks", healthy.uri()), "events": [REQUESTED] }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // The silent tenant's twenty events are older than the healthy tenant's five.
    for _ in 0..20 {
        assert_eq!(send(&app, &developer(), &sms("+14155552671")).await.0, 202);
    }
    let other_sender = token(other, &["developer"], "enterprise");
    for _ in 0..5 {
        assert_eq!(send(&app, &other_sender, &sms("+14155552671")).await.0, 202);
    }
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;

    let run = app.internal_post_in_background("/cpaas/v1/jobs/deliver-webhooks");
    let started = std::time::Instant::now();
    while healthy.received_requests().await.unwrap().len() < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the healthy receiver got {} of its 5 events while the silent one hangs",
            healthy.received_requests().await.unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = run.await.unwrap();
    let counts = &report["counts"];
    assert_eq!(counts["delivered"], 5, "{report}");
    assert_eq!(
        counts["retrying"], 2,
        "the silent webhook had two in flight: {report}"
    );
    let waiting =
        "SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'PENDING' AND attempts = 0";
    assert_eq!(crate::messages::count(&app, waiting).await, 18);
}
