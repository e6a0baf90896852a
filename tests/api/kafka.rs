//! Kafka as the event bus (`EVENT_BUS=kafka`) against a real Kafka-protocol broker, read and
//! written with librdkafka as the platform's other services do.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::consumers::{request, wait_for};
use crate::helpers::kafka::{
    brokers, committed, ids_at, produce, records, records_at, start_broker, with_kafka,
    with_kafka_at,
};
use crate::helpers::{DEV_TENANT, Killed, TestApp, free_port, json, spawn_app_with};
use crate::messages::{count, send, sender, sms};
use crate::resilience::wait_until;

const REQUESTED: &str = "eventzr.cpaas.communication.requested.v1";
const SENT: &str = "eventzr.cpaas.communication.sent.v1";
const NOTIFY: &str = "eventzr.notify.transactional.requested.v1";

/// Drains the outbox until nothing is pending or `tries` drains were made, `pause` apart;
/// what is still pending, and the last drain's report.
async fn drain_all(app: &TestApp, tries: usize, pause: Duration) -> (i64, Value) {
    let (mut pending, mut report) = (i64::MAX, Value::Null);
    for _ in 0..tries {
        report = app
            .internal_post("/cpaas/v1/_internal/process-outbox")
            .await;
        pending = count(app, PENDING).await;
        if pending == 0 {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    (pending, report)
}

const PENDING: &str = "SELECT count(*) AS n FROM outbox_events WHERE status <> 'DONE'";

#[actix_web::test]
async fn events_reach_kafka_as_structured_cloudevents_keyed_by_tenant() {
    let mut prefix = String::new();
    let app = spawn_app_with(|env| {
        prefix = with_kafka(env);
        env.insert("CONSUMERS_ENABLED".into(), "false".into());
    })
    .await;
    let status = app.readyz().await;
    assert_eq!(status["event_bus"], "kafka", "{status}");
    assert_eq!(
        status["bus"], "ok",
        "every topic created at start: {status}"
    );

    let t = sender("enterprise");
    let (code, body) = send(&app, &t, &sms("+14155552671")).await;
    assert_eq!(code, 202, "{body}");
    let message_id = body["data"]["id"].as_str().unwrap().to_owned();
    let (pending, report) = drain_all(&app, 100, Duration::from_millis(200)).await;
    assert_eq!(pending, 0, "the outbox drained: {report}");

    let requested = records(&format!("{prefix}{REQUESTED}")).await;
    assert_eq!(requested.len(), 1, "{requested:?}");
    let record = &requested[0];
    assert_eq!(record.key.as_deref(), Some(DEV_TENANT.to_string().as_str()));
    assert_eq!(
        record.header("content-type"),
        Some("application/cloudevents+json; charset=UTF-8")
    );
    let event = &record.value;
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], REQUESTED);
    assert_eq!(event["data"]["messageId"], message_id.as_str());
    let stored = count(
        &app,
        &format!(
            "SELECT count(*) AS n FROM outbox_events WHERE topic = '{REQUESTED}' \
             AND 'evt-' || id::text = '{}' AND status = 'DONE'",
            event["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(stored, 1, "the record is the outbox's event, completed");

    let sent = records(&format!("{prefix}{SENT}")).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].value["data"]["messageId"], message_id.as_str());
    assert_eq!(
        sent[0].partition, record.partition,
        "a tenant's events share a partition, so they stay in order"
    );
}

#[actix_web::test]
async fn notify_requests_on_kafka_are_sent_once_in_either_mode_and_poison_is_skipped() {
    let mut prefix = String::new();
    let mut group = String::new();
    let app = spawn_app_with(|env| {
        prefix = with_kafka(env);
        group = env["KAFKA_CONSUMER_GROUP"].clone();
    })
    .await;
    let topic = format!("{prefix}{NOTIFY}");
    let tenant = DEV_TENANT.to_string();
    let structured = serde_json::to_vec(&request(
        "evt-kafka-structured-1",
        json!({"tenantId": tenant, "channel": "SMS", "recipient": "+14155552671",
               "body": "Doors open at 7"}),
    ))
    .unwrap();
    let ce = [("content-type", "application/cloudevents+json")];
    produce(&topic, &tenant, &ce, &structured).await;
    produce(&topic, &tenant, &ce, &structured).await;
    produce(&topic, &tenant, &ce, b"{ this is not an event").await;
    let binary = [
        ("ce_specversion", "1.0"),
        ("ce_type", NOTIFY),
        ("ce_source", "eventzr-notify-svc"),
        ("ce_id", "evt-kafka-binary-1"),
        ("ce_time", "2026-12-02T10:00:00Z"),
        ("ce_subject", tenant.as_str()),
        ("content-type", "application/json"),
    ];
    let data = json!({"tenantId": tenant, "notificationId": "n-77", "channel": "SMS",
                      "recipient": "+14155552672", "body": "Your seat is 14C"});
    produce(
        &topic,
        &tenant,
        &binary,
        &serde_json::to_vec(&data).unwrap(),
    )
    .await;

    let messages = "SELECT count(*) AS n FROM messages WHERE source_event_id IN \
                    ('evt-kafka-structured-1', 'evt-kafka-binary-1')";
    assert_eq!(wait_for(&app, messages, 2).await, 2, "both modes read");
    let poison = "SELECT count(*) AS n FROM consumed_events WHERE outcome = 'poison' \
                  AND payload = '{ this is not an event' AND event_id LIKE 'kafka:%'";
    assert_eq!(wait_for(&app, poison, 1).await, 1, "the poison record kept");
    let binary_message = "SELECT count(*) AS n FROM messages WHERE source_event_id = \
                          'evt-kafka-binary-1' AND notification_id = 'n-77'";
    assert_eq!(count(&app, binary_message).await, 1);

    let mut done = 0;
    for _ in 0..100 {
        done = committed(&topic, &group).await;
        if done == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(done, 4, "the group committed past all four records");
    assert_eq!(
        count(&app, messages).await,
        2,
        "the redelivered structured event made no second message"
    );
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM consumed_events").await,
        3,
        "two accepted, one poison"
    );
}

#[actix_web::test]
async fn a_killed_process_loses_no_committed_event_on_kafka() {
    let mut prefix = String::new();
    let app = spawn_app_with(|env| prefix = with_kafka(env)).await;
    let t = sender("enterprise");
    for _ in 0..3 {
        let items: Vec<Value> = (0..1000).map(|_| sms("+14155552671")).collect();
        let (status, _) = json(
            app.post("/cpaas/v1/messages/bulk", &t, &json!({ "messages": items }))
                .await,
        )
        .await;
        assert_eq!(status, 202);
    }
    let kafka = [
        ("EVENT_BUS", "kafka".to_owned()),
        ("KAFKA_BROKERS", brokers()),
        ("KAFKA_TOPIC_PREFIX", prefix.clone()),
        ("KAFKA_TOPIC_PARTITIONS", "2".to_owned()),
        ("OUTBOX_LEASE_SECS", "2".to_owned()),
    ];
    let done = "SELECT count(*) AS n FROM outbox_events WHERE status = 'DONE'";
    let mut first = Killed(crate::helpers::serve_binary(&app, &kafka));
    let progressed = wait_until(&app, done, |n| n >= 300, 1200).await;
    first.0.kill().expect("SIGKILL");
    first.0.wait().unwrap();
    assert!(
        progressed >= 300,
        "the first process drained part of the backlog ({progressed})"
    );
    let at_kill = count(&app, done).await;
    assert!(at_kill < 6000, "killed mid-drain (done {at_kill} of 6000)");

    let _second = Killed(crate::helpers::serve_binary(&app, &kafka));
    let left = wait_until(&app, PENDING, |n| n == 0, 1800).await;
    assert_eq!(left, 0, "the restarted process drained the rest");
    let events = count(&app, "SELECT count(*) AS n FROM outbox_events").await;
    assert!(
        events > 3000,
        "every requested event and the sent ones ({events})"
    );
    let topics: Vec<String> = {
        use cpaas::db::schema::outbox_events::dsl;
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        let mut conn = app.pool.get().await.unwrap();
        dsl::outbox_events
            .select(dsl::topic)
            .distinct()
            .load(&mut conn)
            .await
            .unwrap()
    };
    let mut on_topics: Vec<String> = Vec::new();
    for topic in &topics {
        on_topics.extend(ids_at(&brokers(), &format!("{prefix}{topic}")).await);
    }
    let distinct: HashSet<&String> = on_topics.iter().collect();
    assert_eq!(
        distinct.len() as i64,
        events,
        "every committed event is on its topic; consumers drop the re-publishes of the events \
         in flight at the kill by their id ({} records)",
        on_topics.len()
    );
}

#[actix_web::test]
async fn with_the_broker_stopped_the_backlog_waits_and_drains_when_it_returns() {
    let port = free_port();
    let at = format!("127.0.0.1:{port}");
    let mut broker = Killed(start_broker(port));
    let mut prefix = String::new();
    let app = spawn_app_with(|env| {
        prefix = with_kafka_at(env, &at);
        env.insert("CONSUMERS_ENABLED".into(), "false".into());
        env.insert("OUTBOX_BACKOFF_BASE_MS".into(), "10".into());
        env.insert("OUTBOX_BACKOFF_CAP_SECS".into(), "1".into());
    })
    .await;
    let mut status = Value::Null;
    for _ in 0..50 {
        status = app.readyz().await;
        if status["bus"] == "ok" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status["bus"], "ok", "{status}");

    broker.0.kill().unwrap();
    broker.0.wait().unwrap();
    let t = sender("enterprise");
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (code, body) = send(&app, &t, &sms("+14155552671")).await;
        assert_eq!(code, 202, "sends are still accepted: {body}");
        ids.push(body["data"]["id"].as_str().unwrap().to_owned());
    }
    let report = app
        .internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    assert_eq!(report["published"], 0, "{report}");
    assert!(report["failed"].as_i64().unwrap() >= 5, "{report}");
    let status = app.readyz().await;
    assert_eq!(status["bus"], "unavailable", "{status}");
    assert_eq!(status["status"], "degraded", "{status}");
    assert!(status["outbox_backlog"].as_i64().unwrap() >= 5, "{status}");

    let _broker = Killed(start_broker(port));
    let (pending, report) = drain_all(&app, 240, Duration::from_millis(250)).await;
    assert_eq!(
        pending,
        0,
        "the backlog drained once the broker was back: {report} {}",
        app.readyz().await
    );
    // Readiness rechecks the topics when it finds one missing; a probe polls it.
    let mut status = app.readyz().await;
    for _ in 0..50 {
        if status["bus"] == "ok" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        status = app.readyz().await;
    }
    assert_eq!(
        status["bus"], "ok",
        "the topics were created again: {status}"
    );
    let requested = records_at(&at, &format!("{prefix}{REQUESTED}")).await;
    let on_topic: HashSet<&str> = requested
        .iter()
        .filter_map(|r| r.value["data"]["messageId"].as_str())
        .collect();
    for id in &ids {
        assert!(
            on_topic.contains(id.as_str()),
            "{id} reached the topic: nothing lost"
        );
    }
}

#[actix_web::test]
async fn an_event_failing_every_attempt_is_recorded_as_poison_and_its_partition_moves_on() {
    let mut prefix = String::new();
    let app = spawn_app_with(|env| {
        prefix = with_kafka(env);
        env.insert("CONSUMER_MAX_ATTEMPTS".into(), "3".into());
    })
    .await;
    let topic = format!("{prefix}{NOTIFY}");
    let tenant = DEV_TENANT.to_string();
    let data = json!({"tenantId": tenant, "channel": "SMS", "recipient": "+14155552671",
                      "body": "Gates open at 6"});
    // PostgreSQL text cannot hold the NUL of this id: every attempt at it fails.
    let failing = serde_json::to_vec(&request("evt-\u{0}-never", data.clone())).unwrap();
    let ce = [("content-type", "application/cloudevents+json")];
    produce(&topic, &tenant, &ce, &failing).await;
    let good = serde_json::to_vec(&request("evt-kafka-after-poison", data)).unwrap();
    produce(&topic, &tenant, &ce, &good).await;

    let after =
        "SELECT count(*) AS n FROM messages WHERE source_event_id = 'evt-kafka-after-poison'";
    assert_eq!(
        wait_for(&app, after, 1).await,
        1,
        "the record behind it was handled"
    );
    let poison = "SELECT count(*) AS n FROM consumed_events WHERE outcome = 'poison' \
                  AND event_id = 'evt-\u{FFFD}-never' AND detail LIKE 'failed 3 times%' \
                  AND strpos(payload, 'evt-\\u0000-never') > 0";
    assert_eq!(
        count(&app, poison).await,
        1,
        "recorded once, with what arrived"
    );
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM messages").await,
        1,
        "the failing event made no message"
    );
}

#[actix_web::test]
async fn on_sigterm_the_kafka_consumer_commits_what_it_handled_before_the_process_exits() {
    let mut prefix = String::new();
    let mut group = String::new();
    let app = spawn_app_with(|env| {
        prefix = with_kafka(env);
        group = env["KAFKA_CONSUMER_GROUP"].clone();
        env.insert("CONSUMERS_ENABLED".into(), "false".into());
    })
    .await;
    let topic = format!("{prefix}{NOTIFY}");
    let tenant = DEV_TENANT.to_string();
    let ce = [("content-type", "application/cloudevents+json")];
    for i in 0..3 {
        let data = json!({"tenantId": tenant, "channel": "SMS", "recipient": "+14155552671",
                          "body": format!("Row {i}")});
        let event = serde_json::to_vec(&request(&format!("evt-kafka-term-{i}"), data)).unwrap();
        produce(&topic, &tenant, &ce, &event).await;
    }
    let mut binary = Killed(crate::helpers::serve_binary(
        &app,
        &[
            ("EVENT_BUS", "kafka".to_owned()),
            ("KAFKA_BROKERS", brokers()),
            ("KAFKA_TOPIC_PREFIX", prefix.clone()),
            ("KAFKA_CONSUMER_GROUP", group.clone()),
            ("CONSUMERS_ENABLED", "true".to_owned()),
            // No periodic commit within the test: only the one at the stop can commit.
            ("KAFKA_COMMIT_INTERVAL_MS", "600000".to_owned()),
        ],
    ));
    let handled =
        "SELECT count(*) AS n FROM messages WHERE source_event_id LIKE 'evt-kafka-term-%'";
    let n = wait_until(&app, handled, |n| n == 3, 300).await;
    assert_eq!(n, 3, "the binary consumed the three requests");
    assert_eq!(committed(&topic, &group).await, 0, "nothing committed yet");
    let term = std::process::Command::new("kill")
        .args(["-TERM", &binary.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let mut exit = None;
    for _ in 0..300 {
        if let Some(status) = binary.0.try_wait().unwrap() {
            exit = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        exit.is_some_and(|s| s.success()),
        "exited cleanly: {exit:?}"
    );
    assert_eq!(
        committed(&topic, &group).await,
        3,
        "the offsets of the handled records were committed before the exit"
    );
}
