//! Nothing sent twice, nothing stuck: provider outcomes kept through a database cut, scheduled
//! dispatch in bounded batches, leases renewed while a batch runs and a lost lease left to its
//! new holder. Each counts requests at the mock provider and states in the database.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::delivery::{MESSAGES, tenant_with, twilio};
use crate::helpers::proxy::Proxy;
use crate::helpers::{TestApp, db, json, spawn_app_with, spawn_on};
use crate::messages::count;

/// A Twilio mock that answers every send after `delay` and notes when each arrived, so the
/// number of calls in flight at any moment can be read back.
#[derive(Clone)]
pub struct TimedTwilio {
    delay: Duration,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Respond for TimedTwilio {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.arrivals.lock().unwrap().push(Instant::now());
        ResponseTemplate::new(201)
            .set_body_json(json!({
                "sid": format!("SM{}", Uuid::new_v4().simple()), "status": "queued", "price": null
            }))
            .set_delay(self.delay)
    }
}

impl TimedTwilio {
    pub async fn start(delay: Duration) -> (MockServer, Self) {
        let server = MockServer::start().await;
        let mock = Self {
            delay,
            arrivals: Arc::default(),
        };
        Mock::given(method("POST"))
            .and(path_regex(MESSAGES))
            .respond_with(mock.clone())
            .mount(&server)
            .await;
        (server, mock)
    }

    pub fn received(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    /// The most calls that were in flight at once: every call is answered `delay` after it
    /// arrived, so the calls in flight at a moment are those that arrived within `delay` before.
    pub fn max_in_flight(&self) -> usize {
        let mut at = self.arrivals.lock().unwrap().clone();
        at.sort();
        let mut best = 0;
        let mut first = 0;
        for last in 0..at.len() {
            while at[last].duration_since(at[first]) >= self.delay {
                first += 1;
            }
            best = best.max(last - first + 1);
        }
        best
    }
}

/// Accepts `n` SMS for the tenant behind `token` in bulk requests of up to 1000.
pub async fn accept_many(app: &TestApp, token: &str, n: usize, extra: Value) -> Vec<String> {
    let mut ids = Vec::new();
    let mut left = n;
    while left > 0 {
        let take = left.min(1000);
        let items: Vec<Value> = (0..take)
            .map(|i| {
                let mut item = json!({
                    "channel": "SMS",
                    "recipient": format!("+1415555{:04}", (ids.len() + i) % 10_000),
                    "message_body": "Doors open at 19:00"
                });
                if let (Some(item), Some(extra)) = (item.as_object_mut(), extra.as_object()) {
                    item.extend(extra.clone());
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
        assert_eq!(body["data"]["accepted"], take as u64, "{body}");
        ids.extend(
            body["data"]["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["message_id"].as_str().unwrap().to_owned()),
        );
        left -= take;
    }
    ids
}

fn statuses(rows: &str) -> String {
    format!("SELECT count(*) AS n FROM messages WHERE status = '{rows}'")
}

#[actix_web::test]
async fn a_database_cut_between_the_provider_calls_and_their_recording_loses_no_outcome() {
    let (provider, timed) = TimedTwilio::start(Duration::from_millis(400)).await;
    let seeded = spawn_app_with(|_| {}).await;
    let (_, t, _) = tenant_with(&seeded, &[twilio("only", 1, &provider.uri())]).await;
    accept_many(&seeded, &t, 500, json!({})).await;

    let proxy = Proxy::start(db::server_authority()).await;
    let via_proxy = db::database_url_via(&format!("127.0.0.1:{}", proxy.port), &seeded.db_name);
    let app = spawn_on(&seeded.db_name, &via_proxy, |env| {
        env.insert("OUTBOX_BATCH_SIZE".into(), "500".into());
        env.insert("DELIVERY_RECORD_DEADLINE_SECS".into(), "30".into());
        env.insert("DATABASE_POOL_TIMEOUT_MS".into(), "500".into());
        env.insert("DATABASE_CONNECT_TIMEOUT_MS".into(), "500".into());
    })
    .await;
    let outbox = app_outbox(&app);
    let drain = actix_web::rt::spawn(async move { outbox.drain(500).await });

    // Every call has reached the provider and none is answered yet: cut the database.
    let started = Instant::now();
    while timed.received() < 500 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "only {} calls",
            timed.received()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.cut().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();
    let report = drain
        .await
        .unwrap()
        .expect("the drain ends once the database is back");
    assert_eq!(report.claimed, 500, "{report:?}");

    assert_eq!(count(&seeded, &statuses("SENT")).await, 500);
    assert_eq!(count(&seeded, &statuses("SENDING")).await, 0);
    let accepted = "SELECT count(*) AS n FROM message_attempts \
                    WHERE outcome = 'ACCEPTED' AND provider_message_id IS NOT NULL";
    assert_eq!(count(&seeded, accepted).await, 500);
    let once =
        "SELECT count(*) AS n FROM messages WHERE attempts = 1 AND provider_message_id IS NOT NULL";
    assert_eq!(count(&seeded, once).await, 500);
    assert_eq!(
        timed.received(),
        500,
        "exactly one provider request per message"
    );
}

fn app_outbox(app: &TestApp) -> Arc<cpaas::outbox::Outbox> {
    app.state.outbox.clone()
}

#[actix_web::test]
async fn an_outcome_whose_message_update_never_committed_is_settled_from_its_attempt_not_resent() {
    let (provider, timed) = TimedTwilio::start(Duration::from_millis(1)).await;
    let app = spawn_app_with(|_| {}).await;
    let (_, t, _) = tenant_with(&app, &[twilio("only", 1, &provider.uri())]).await;
    let ids = accept_many(&app, &t, 3, json!({})).await;
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    assert_eq!(timed.received(), 3);
    // As if the batch transaction had never committed: SENDING, the attempt ACCEPTED.
    let mut conn = app.pool.get().await.unwrap();
    use diesel_async::RunQueryDsl;
    diesel::sql_query(
        "UPDATE messages SET status = 'SENDING', provider_message_id = NULL, sent_at = NULL, \
         updated_at = now() - interval '10 minutes'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query(
        "DELETE FROM outbox_events WHERE topic = 'eventzr.cpaas.communication.sent.v1'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    let report = app.internal_post("/cpaas/v1/jobs/reconcile-stale").await;
    assert_eq!(report["counts"]["settled_accepted"], 3, "{report}");
    assert_eq!(report["counts"]["requeued_ambiguous"], 0, "{report}");
    app.internal_post("/cpaas/v1/jobs/retry-due").await;
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    assert_eq!(count(&app, &statuses("SENT")).await, 3);
    let sent = "SELECT count(*) AS n FROM outbox_events WHERE topic = 'eventzr.cpaas.communication.sent.v1'";
    assert_eq!(
        count(&app, sent).await,
        3,
        "each settled message has its sent event"
    );
    assert_eq!(timed.received(), 3, "no message is sent twice");
    for id in ids {
        let (_, m) = json(app.get(&format!("/cpaas/v1/messages/{id}"), &t).await).await;
        assert!(
            m["data"]["provider_message_id"]
                .as_str()
                .unwrap()
                .starts_with("SM"),
            "{m}"
        );
    }
}

#[actix_web::test]
async fn a_thousand_messages_due_in_one_second_go_out_in_bounded_batches() {
    let (provider, timed) = TimedTwilio::start(Duration::from_millis(15)).await;
    let app = spawn_app_with(|env| {
        env.insert("JOB_CONCURRENCY".into(), "4".into());
        env.insert("JOB_BATCH_SIZE".into(), "100".into());
    })
    .await;
    let (_, t, _) = tenant_with(&app, &[twilio("only", 1, &provider.uri())]).await;
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    accept_many(&app, &t, 1000, json!({ "scheduled_at": at })).await;
    let mut conn = app.pool.get().await.unwrap();
    use diesel_async::RunQueryDsl;
    diesel::sql_query("UPDATE messages SET scheduled_at = date_trunc('second', now())")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);

    let job = app.internal_post_in_background("/cpaas/v1/jobs/dispatch-scheduled");
    let mut answers = Vec::new();
    while !job.is_finished() {
        let res = app.get("/cpaas/v1/messages?limit=5", &t).await;
        answers.push(res.status().as_u16());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = job.await.unwrap();
    assert_eq!(report["counts"]["dispatched"], 1000, "{report}");
    assert_eq!(report["counts"]["sent"], 1000, "{report}");
    assert!(
        answers.len() >= 10,
        "requests were made meanwhile ({})",
        answers.len()
    );
    assert!(
        answers.iter().all(|s| *s == 200),
        "every request meanwhile succeeded: {answers:?}"
    );
    assert_eq!(timed.received(), 1000);
    assert!(
        timed.max_in_flight() <= 4,
        "at most JOB_CONCURRENCY calls at once, saw {}",
        timed.max_in_flight()
    );
    assert_eq!(count(&app, &statuses("SENT")).await, 1000);
}

#[actix_web::test]
async fn a_batch_that_outlives_its_lease_keeps_it_and_is_completed_by_one_drainer() {
    let (provider, timed) = TimedTwilio::start(Duration::from_millis(2500)).await;
    let lease = |env: &mut std::collections::HashMap<String, String>| {
        env.insert("OUTBOX_LEASE_SECS".into(), "1".into());
    };
    let first = spawn_app_with(lease).await;
    let (_, t, _) = tenant_with(&first, &[twilio("only", 1, &provider.uri())]).await;
    accept_many(&first, &t, 3, json!({})).await;
    let second = spawn_on(&first.db_name, &first.database_url, lease).await;

    let outbox = app_outbox(&first);
    let draining = actix_web::rt::spawn(async move { outbox.drain(100).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The lease was taken 1.5 s ago for 1 s: only its renewal keeps the second drainer out.
    let other = app_outbox(&second).drain(100).await.unwrap();
    assert_eq!(other.claimed, 0, "{other:?}");
    let report = draining.await.unwrap().unwrap();
    // The three requests, then the three `sent` events their delivery added.
    assert_eq!((report.claimed, report.lost), (6, 0), "{report:?}");
    assert_eq!(timed.received(), 3, "one provider request per message");
    let done = "SELECT count(*) AS n FROM outbox_events \
                WHERE topic = 'eventzr.cpaas.communication.requested.v1' AND status = 'DONE'";
    assert_eq!(count(&first, done).await, 3);
    assert_eq!(count(&first, &statuses("SENT")).await, 3);
}

#[actix_web::test]
async fn a_drainer_that_lost_its_lease_leaves_the_events_to_their_new_holder_and_goes_on() {
    let (provider, timed) = TimedTwilio::start(Duration::from_millis(1000)).await;
    let app = spawn_app_with(|_| {}).await;
    let (_, t, _) = tenant_with(&app, &[twilio("only", 1, &provider.uri())]).await;
    accept_many(&app, &t, 3, json!({})).await;
    let outbox = app_outbox(&app);
    let draining = actix_web::rt::spawn(async move { outbox.drain(100).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut conn = app.pool.get().await.unwrap();
    use diesel_async::RunQueryDsl;
    let stolen = diesel::sql_query(
        "UPDATE outbox_events SET lease_owner = 'another-replica', \
         lease_until = now() + interval '1 hour' WHERE status = 'PENDING' AND lease_owner IS NOT NULL",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    assert_eq!(stolen, 3);
    let report = draining
        .await
        .unwrap()
        .expect("a lost lease does not abort the drain");
    assert_eq!((report.claimed, report.lost), (3, 3), "{report:?}");
    let held = "SELECT count(*) AS n FROM outbox_events WHERE lease_owner = 'another-replica' \
                AND status = 'PENDING'";
    assert_eq!(count(&app, held).await, 3, "the new holder records them");
    assert_eq!(timed.received(), 3);
    assert_eq!(count(&app, &statuses("SENT")).await, 3);
}
