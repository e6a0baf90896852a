//! The outbox: draining to JetStream, de-duplication, dead letters and re-drive, a bus outage.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cpaas::outbox::store::ClaimedEvent;
use cpaas::outbox::{CloudEvent, EventBus, EventHandler, Outbox, OutboxEvent, OutboxPolicy};
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{
    INTERNAL_KEY, TestApp, code, json, spawn_app, spawn_app_with, stream_messages, with_nats,
};
use crate::messages::{count, send, sender, sms};

async fn process(app: &TestApp) -> serde_json::Value {
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await
}

#[actix_web::test]
async fn a_drain_publishes_the_requested_event_to_jetstream_once() {
    let mut stream = String::new();
    let app = spawn_app_with(|env| stream = with_nats(env).0).await;
    let (status, _) = send(&app, &sender("professional"), &sms("+14155552671")).await;
    assert_eq!(status, 202);
    let report = process(&app).await;
    assert_eq!(
        report,
        json!({"claimed": 2, "published": 2, "failed": 0, "dead_lettered": 0, "lost": 0, "remaining": 0}),
        "communication.requested, then the communication.sent its delivery added"
    );
    assert_eq!(stream_messages(&stream).await, 2);
    let done = "SELECT count(*) AS n FROM outbox_events WHERE status = 'DONE'";
    assert_eq!(count(&app, done).await, 2);

    let mut conn = app.pool.get().await.unwrap();
    diesel::sql_query("UPDATE outbox_events SET status = 'PENDING', destinations_done = '{}'")
        .execute(&mut conn)
        .await
        .unwrap();
    let again = process(&app).await;
    assert_eq!(again["published"], 2, "published again…");
    assert_eq!(
        stream_messages(&stream).await,
        2,
        "…and dropped by JetStream's de-duplication"
    );
    let attempts = "SELECT count(*) AS n FROM message_attempts";
    assert_eq!(
        count(&app, attempts).await,
        1,
        "the message was not sent twice"
    );
}

#[actix_web::test]
async fn readyz_reports_the_backlog_and_the_bus() {
    let app = spawn_app().await;
    send(&app, &sender("professional"), &sms("+14155552671")).await;
    let (status, body) = json(
        app.client
            .get(app.url("/cpaas/v1/_internal/readyz"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["bus"], "log");
    assert_eq!(body["data"]["outbox_backlog"], 1);
    process(&app).await;
    let (_, body) = json(
        app.client
            .get(app.url("/cpaas/v1/_internal/readyz"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["data"]["outbox_backlog"], 0);
}

/// A handler that fails until told otherwise, and counts its calls.
struct Flaky {
    healthy: AtomicBool,
    calls: AtomicUsize,
}

#[async_trait]
impl EventHandler for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn wants(&self, _: &str) -> bool {
        true
    }
    async fn handle(&self, _: &ClaimedEvent) -> Result<(), String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if AtomicBool::load(&self.healthy, Ordering::SeqCst) {
            Ok(())
        } else {
            Err("downstream refused".into())
        }
    }
}

/// A handler that panics on every event of one aggregate.
struct Panicky {
    poisoned: Uuid,
    seen: AtomicUsize,
}

#[async_trait]
impl EventHandler for Panicky {
    fn name(&self) -> &'static str {
        "panicky"
    }
    fn wants(&self, _: &str) -> bool {
        true
    }
    async fn handle(&self, event: &ClaimedEvent) -> Result<(), String> {
        if event.aggregate_id == self.poisoned {
            panic!("poisoned aggregate");
        }
        self.seen.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn policy(max_attempts: i32) -> OutboxPolicy {
    OutboxPolicy {
        batch_size: 200,
        lease: Duration::from_secs(30),
        max_attempts,
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(5),
        handler_concurrency: 16,
    }
}

async fn enqueue(app: &TestApp, aggregates: &[Uuid], per_aggregate: usize) {
    let mut conn = app.pool.get().await.unwrap();
    let tenant = crate::helpers::DEV_TENANT;
    conn.transaction::<_, cpaas::outbox::EnqueueError, _>(async |conn| {
        let mut events = Vec::new();
        for n in 0..per_aggregate {
            for &aggregate in aggregates {
                events.push(OutboxEvent {
                    aggregate_type: "test",
                    aggregate_id: aggregate,
                    tenant_id: Some(tenant),
                    event: CloudEvent::new(
                        "eventzr.cpaas.test.v1",
                        tenant,
                        json!({ "n": n, "aggregate": aggregate }),
                    ),
                    lane: 1,
                });
            }
        }
        cpaas::outbox::enqueue(conn, &events).await
    })
    .await
    .unwrap();
}

#[actix_web::test]
async fn a_failing_handler_retries_then_dead_letters_and_a_redrive_completes_it() {
    let app = spawn_app().await;
    let flaky = Arc::new(Flaky {
        healthy: AtomicBool::new(false),
        calls: AtomicUsize::new(0),
    });
    let outbox = Outbox::new(
        app.pool.clone(),
        Arc::new(EventBus::Log),
        vec![flaky.clone()],
        policy(3),
    );
    let aggregate = Uuid::now_v7();
    enqueue(&app, &[aggregate], 1).await;
    let mut dead = 0;
    for _ in 0..20 {
        let report = outbox.drain(100).await.unwrap();
        dead += report.dead_lettered;
        if dead > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(dead, 1);
    assert_eq!(AtomicUsize::load(&flaky.calls, Ordering::SeqCst), 3);

    let res = app
        .client
        .get(app.url("/cpaas/v1/_internal/outbox/dead"))
        .header("x-internal-api-key", INTERNAL_KEY)
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, 200);
    let letter = &body["data"][0];
    assert_eq!(letter["attempts"], 3);
    assert!(
        letter["last_error"]
            .as_str()
            .unwrap()
            .contains("downstream refused")
    );
    assert_eq!(
        letter["destinations_done"],
        json!(["bus"]),
        "the bus is not published again"
    );

    flaky.healthy.store(true, Ordering::SeqCst);
    let id = letter["id"].as_str().unwrap();
    let redrive = |id: String| {
        app.client
            .post(app.url(&format!("/cpaas/v1/_internal/outbox/{id}/redrive")))
            .header("x-internal-api-key", INTERNAL_KEY)
            .send()
    };
    assert_eq!(redrive(id.to_owned()).await.unwrap().status(), 200);
    let (status, body) = json(redrive(id.to_owned()).await.unwrap()).await;
    assert_eq!(
        (status, code(&body)),
        (404, "ERR_CPAAS_NOT_FOUND"),
        "no longer dead"
    );
    let report = outbox.drain(100).await.unwrap();
    assert_eq!((report.claimed, report.published, report.failed), (1, 0, 0));
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM outbox_events WHERE status = 'DONE'"
        )
        .await,
        1
    );
}

#[actix_web::test]
async fn a_panicking_handler_fails_its_event_and_nothing_else() {
    let app = spawn_app().await;
    let poisoned = Uuid::now_v7();
    let healthy: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
    let panicky = Arc::new(Panicky {
        poisoned,
        seen: AtomicUsize::new(0),
    });
    let outbox = Arc::new(Outbox::new(
        app.pool.clone(),
        Arc::new(EventBus::Log),
        vec![panicky.clone()],
        policy(100),
    ));
    let mut all = healthy.clone();
    all.push(poisoned);
    enqueue(&app, &all, 2).await;

    let actor = cpaas::actors::OutboxActor::new(
        outbox.clone(),
        cpaas::outbox::Wakeup::new(),
        app.database_url.clone(),
        Duration::from_millis(50),
        1000,
    );
    let _addr = actix::Actor::start(actor);
    let mut done = 0;
    for _ in 0..100 {
        done = count(
            &app,
            "SELECT count(*) AS n FROM outbox_events WHERE status = 'DONE'",
        )
        .await;
        if done == 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(done, 40, "every healthy aggregate drained by the actor");
    assert_eq!(AtomicUsize::load(&panicky.seen, Ordering::SeqCst), 40);
    let stuck = count(&app, &format!("SELECT count(*) AS n FROM outbox_events WHERE aggregate_id = '{poisoned}' AND status = 'PENDING'")).await;
    assert_eq!(
        stuck, 2,
        "the poisoned aggregate is stuck, in order, and blocks nothing else"
    );
    let attempts = count(
        &app,
        &format!(
            "SELECT max(attempts)::bigint AS n FROM outbox_events WHERE aggregate_id = '{poisoned}'"
        ),
    )
    .await;
    assert!(attempts >= 1, "the panic is recorded as a failed attempt");

    enqueue(&app, &[Uuid::now_v7()], 1).await;
    let mut later = 0;
    for _ in 0..100 {
        later = count(
            &app,
            "SELECT count(*) AS n FROM outbox_events WHERE status = 'DONE'",
        )
        .await;
        if later == 41 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(later, 41, "the actor is still alive after the panics");
}

/// Records the order in which each aggregate's events are handled.
struct Recorder {
    seen: std::sync::Mutex<Vec<(Uuid, i64)>>,
}

#[async_trait]
impl EventHandler for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn wants(&self, _: &str) -> bool {
        true
    }
    async fn handle(&self, event: &ClaimedEvent) -> Result<(), String> {
        let n = event.payload["data"]["n"].as_i64().unwrap_or(-1);
        self.seen.lock().unwrap().push((event.aggregate_id, n));
        Ok(())
    }
}

#[actix_web::test]
async fn two_drainers_share_ten_thousand_events_each_handled_once_in_order() {
    let app = spawn_app().await;
    let aggregates: Vec<Uuid> = (0..2000).map(|_| Uuid::now_v7()).collect();
    enqueue(&app, &aggregates, 5).await;
    let recorder = Arc::new(Recorder {
        seen: std::sync::Mutex::new(Vec::new()),
    });
    let a = Outbox::new(
        app.pool.clone(),
        Arc::new(EventBus::Log),
        vec![recorder.clone()],
        policy(5),
    );
    let b = Outbox::new(
        app.pool.clone(),
        Arc::new(EventBus::Log),
        vec![recorder.clone()],
        policy(5),
    );
    let drain = |o: Outbox| async move {
        let mut total = 0;
        loop {
            let r = o.drain(1000).await.unwrap();
            total += r.claimed;
            if r.remaining == 0 && r.claimed == 0 {
                break total;
            }
        }
    };
    let (ta, tb) = tokio::join!(drain(a), drain(b));
    assert_eq!(ta + tb, 10_000);
    assert!(ta > 0 && tb > 0, "both drainers took a share ({ta} / {tb})");
    let seen = recorder.seen.lock().unwrap();
    assert_eq!(seen.len(), 10_000, "each event handled exactly once");
    let mut last: HashMap<Uuid, i64> = HashMap::new();
    for (aggregate, n) in seen.iter() {
        let prev = last.insert(*aggregate, *n).unwrap_or(-1);
        assert_eq!(*n, prev + 1, "aggregate {aggregate} out of order");
    }
}
