//! Priority lanes and fairness in the drain, counted at the provider: higher lanes go first,
//! tenants take turns within a lane, and two drainers still send each message once, in order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::delivery::{MESSAGES, tenant_with, twilio};
use crate::helpers::{TestApp, json, spawn_app_with, spawn_on};
use crate::messages::count;

/// A Twilio mock that notes the recipient of every send, in the order they arrive.
#[derive(Clone, Default)]
struct RecordingTwilio {
    to: Arc<Mutex<Vec<String>>>,
}

impl Respond for RecordingTwilio {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let to = url::form_urlencoded::parse(&request.body)
            .find(|(k, _)| k == "To")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        self.to.lock().unwrap().push(to);
        ResponseTemplate::new(201).set_body_json(json!({
            "sid": format!("SM{}", Uuid::new_v4().simple()), "status": "queued", "price": null
        }))
    }
}

impl RecordingTwilio {
    async fn start() -> (MockServer, Self) {
        let server = MockServer::start().await;
        let mock = Self::default();
        Mock::given(method("POST"))
            .and(path_regex(MESSAGES))
            .respond_with(mock.clone())
            .mount(&server)
            .await;
        (server, mock)
    }

    fn arrivals(&self) -> Vec<String> {
        self.to.lock().unwrap().clone()
    }
}

/// Posts `n` SMS (at most 10,000) in bulk requests of up to 1000, to recipients
/// `+1{area}555{i:04}`, the item's priority chosen by `priority(i)` (`None`: the bulk default).
async fn post_many(
    app: &TestApp,
    token: &str,
    area: &str,
    n: usize,
    priority: impl Fn(usize) -> Option<&'static str>,
) {
    for start in (0..n).step_by(1000) {
        let items: Vec<Value> = (start..n.min(start + 1000))
            .map(|i| {
                let mut item = json!({
                    "channel": "SMS",
                    "recipient": format!("+1{area}555{i:04}"),
                    "message_body": "Doors open at 19:00"
                });
                if let Some(p) = priority(i) {
                    item["priority"] = json!(p);
                }
                item
            })
            .collect();
        let (status, body) = json(
            app.post(
                "/cpaas/v1/messages/bulk",
                token,
                &json!({ "messages": items }),
            )
            .await,
        )
        .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["data"]["rejected"], 0, "{body}");
    }
}

fn small_batches(env: &mut HashMap<String, String>) {
    env.insert("OUTBOX_BATCH_SIZE".into(), "50".into());
}

/// Tenant A's 1,000 bulk messages are queued first; tenant B's five `high` ones and five bulk
/// ones after them. B's high messages reach the provider in the first batches, and B's bulk
/// ones within a few batches of A's (tenants take turns), not after A's whole backlog.
#[actix_web::test]
async fn another_tenants_backlog_delays_a_message_by_a_batch_not_by_the_backlog() {
    let (provider, recording) = RecordingTwilio::start().await;
    let app = spawn_app_with(small_batches).await;
    let (_, a, _) = tenant_with(&app, &[twilio("a", 1, &provider.uri())]).await;
    let (_, b, _) = tenant_with(&app, &[twilio("b", 1, &provider.uri())]).await;
    post_many(&app, &a, "415", 1000, |_| None).await;
    post_many(&app, &b, "646", 5, |_| Some("high")).await;
    post_many(&app, &b, "917", 5, |_| None).await;
    let (status, one) = json(app.get("/cpaas/v1/messages?limit=1", &b).await).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(
        one["data"][0]["priority"], "bulk",
        "bulk items default to bulk"
    );

    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    let arrivals = recording.arrivals();
    assert_eq!(arrivals.len(), 1010, "every message sent once");
    let positions = |prefix: &str| -> Vec<usize> {
        arrivals
            .iter()
            .enumerate()
            .filter(|(_, to)| to.starts_with(&format!("+1{prefix}")))
            .map(|(at, _)| at)
            .collect()
    };
    let high = positions("646");
    let b_bulk = positions("917");
    assert_eq!(high.len(), 5);
    assert!(
        high.iter().all(|at| *at < 100),
        "B's high messages went out in the first batches: {high:?}"
    );
    assert!(
        b_bulk.iter().all(|at| *at < 200),
        "B's bulk messages took turns with A's backlog: {b_bulk:?}"
    );
}

/// Tenant A's bulk fills the running drain's pipeline with batches that wait on a provider
/// answering after 8 s; tenant B's `high` message, sent meanwhile, goes out through the
/// express claim at once instead of waiting for one of those batches to end.
#[actix_web::test]
async fn a_high_message_does_not_wait_for_the_bulk_batches_in_flight() {
    let slow = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({ "sid": "SMslow", "status": "queued", "price": null }))
                .set_delay(std::time::Duration::from_secs(8)),
        )
        .mount(&slow)
        .await;
    let (fast, recording) = RecordingTwilio::start().await;
    let app = spawn_app_with(|env| {
        small_batches(env);
        env.insert("OUTBOX_ENABLED".into(), "true".into());
        env.insert("OUTBOX_POLL_INTERVAL_MS".into(), "600000".into());
    })
    .await;
    let (_, a, _) = tenant_with(&app, &[twilio("a", 1, &slow.uri())]).await;
    let (_, b, _) = tenant_with(&app, &[twilio("b", 1, &fast.uri())]).await;
    post_many(&app, &a, "415", 1000, |_| None).await;
    // Four batches of 50 in flight, every call of each waiting on the slow provider.
    let started = std::time::Instant::now();
    while slow.received_requests().await.unwrap_or_default().len() < 200 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(6),
            "the drain did not fill its pipeline"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let sent_at = std::time::Instant::now();
    post_many(&app, &b, "646", 1, |_| Some("high")).await;
    while recording.arrivals().is_empty() {
        assert!(
            sent_at.elapsed() < std::time::Duration::from_secs(4),
            "B's high message waited for A's batches"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(recording.arrivals(), ["+16465550000"]);
    assert_eq!(
        slow.received_requests().await.unwrap_or_default().len(),
        200,
        "no batch of A's had ended yet"
    );
}

/// Two drainers over 10,000 messages of mixed lanes: each message reaches the provider once,
/// every one ends SENT with one attempt, and each message's events completed in their order.
#[actix_web::test]
async fn two_drainers_send_ten_thousand_messages_of_mixed_lanes_each_once_in_order() {
    let (provider, recording) = RecordingTwilio::start().await;
    let one = spawn_app_with(|env| {
        env.insert("OUTBOX_BATCH_SIZE".into(), "200".into());
        env.insert(
            "RATE_LIMIT_OVERRIDES".into(),
            "enterprise.SMS=100000".into(),
        );
    })
    .await;
    let two = spawn_on(&one.db_name, &one.database_url, |env| {
        env.insert("OUTBOX_BATCH_SIZE".into(), "200".into());
    })
    .await;
    let (_, a, _) = tenant_with(&one, &[twilio("a", 1, &provider.uri())]).await;
    let (_, b, _) = tenant_with(&one, &[twilio("b", 1, &provider.uri())]).await;
    let lanes = ["high", "normal", "bulk"];
    post_many(&one, &a, "415", 6000, |i| Some(lanes[i % 3])).await;
    post_many(&one, &b, "646", 4000, |i| Some(lanes[(i / 7) % 3])).await;

    futures_util::join!(
        one.internal_post("/cpaas/v1/_internal/process-outbox"),
        two.internal_post("/cpaas/v1/_internal/process-outbox"),
    );
    // What one drain left behind (events its own sends wrote), the next one takes.
    one.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;

    let arrivals = recording.arrivals();
    let mut per_recipient: HashMap<&str, usize> = HashMap::new();
    for to in &arrivals {
        *per_recipient.entry(to.as_str()).or_default() += 1;
    }
    assert_eq!(
        per_recipient.len(),
        10_000,
        "every message reached the provider"
    );
    assert!(
        per_recipient.values().all(|n| *n == 1),
        "none twice: {} requests for 10,000 messages",
        arrivals.len()
    );
    let once = "SELECT count(*) AS n FROM messages WHERE status = 'SENT' AND attempts = 1";
    assert_eq!(count(&one, once).await, 10_000);
    let by_lane = "SELECT count(DISTINCT lane) AS n FROM outbox_events";
    assert_eq!(count(&one, by_lane).await, 3, "all three lanes were used");
    let out_of_order = "SELECT count(*) AS n FROM outbox_events a JOIN outbox_events b \
                        ON a.aggregate_id = b.aggregate_id AND a.seq < b.seq \
                        WHERE a.completed_at > b.completed_at";
    assert_eq!(
        count(&one, out_of_order).await,
        0,
        "each message's events completed in their order"
    );
    let pending = "SELECT count(*) AS n FROM outbox_events WHERE status <> 'DONE'";
    assert_eq!(count(&one, pending).await, 0);
}
