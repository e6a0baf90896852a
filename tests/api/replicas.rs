//! Several replicas on one database: the rate limits they share, the wake-ups they send each
//! other, and a provider's pace held across their drainers.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use diesel_async::RunQueryDsl;
use futures_util::StreamExt;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{
    Killed, TestApp, free_port, json, serve_binary, spawn_app, spawn_app_with, spawn_on, token,
};
use crate::messages::{count, send, sms, tenant_with_sandbox};
use crate::metrics::{scrape, value};

/// Waits until the replica on `port` answers its health check.
async fn until_up(client: &reqwest::Client, port: u16) {
    for _ in 0..200 {
        let res = client
            .get(format!(
                "http://127.0.0.1:{port}/cpaas/v1/_internal/healthz"
            ))
            .send()
            .await;
        if res.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the replica on port {port} did not start");
}

async fn status_of(app: &TestApp, token: &str, id: &str) -> String {
    json(app.get(&format!("/cpaas/v1/messages/{id}"), token).await)
        .await
        .1["data"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Polls until the message is SENT (or `limit` passes); returns how long it took.
async fn until_sent(app: &TestApp, token: &str, id: &str, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if status_of(app, token, id).await == "SENT" {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Three service processes, one free-tier tenant (10 SMS a minute): 30 sends spread over the
/// three at once admit exactly 10 between them, with the remaining counts 9 down to 0.
#[actix_web::test]
async fn three_replicas_admit_exactly_the_plans_quota_between_them() {
    let app = spawn_app().await;
    let (tenant, t) = tenant_with_sandbox(&app, "free").await;
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let _replicas: Vec<Killed> = ports
        .iter()
        .map(|port| {
            Killed(serve_binary(
                &app,
                &[
                    ("LISTEN_ADDR", format!("127.0.0.1:{port}")),
                    ("OUTBOX_ENABLED", "false".into()),
                ],
            ))
        })
        .collect();
    let client = reqwest::Client::new();
    for port in &ports {
        until_up(&client, *port).await;
    }
    let started = Instant::now();
    let sends = (0..30).map(|i| {
        client
            .post(format!(
                "http://127.0.0.1:{}/cpaas/v1/messages",
                ports[i % 3]
            ))
            .bearer_auth(&t)
            .json(&sms("+14155552671"))
            .send()
    });
    let answers = futures_util::future::join_all(sends).await;
    let elapsed = started.elapsed();
    let mut remaining = BTreeSet::new();
    let (mut accepted, mut limited) = (0, 0);
    for answer in answers {
        let res = answer.expect("the replica answers");
        match res.status().as_u16() {
            202 => {
                accepted += 1;
                let left: u32 = res.headers()["x-ratelimit-remaining"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                remaining.insert(left);
            }
            429 => {
                assert!(res.headers().contains_key("retry-after"));
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        elapsed < Duration::from_secs(6),
        "the sends took {elapsed:?}, longer than one unit of the quota takes to come back"
    );
    assert_eq!((accepted, limited), (10, 20), "the quota is shared");
    assert_eq!(
        remaining,
        (0..10).collect::<BTreeSet<u32>>(),
        "every admitted send saw the one shared count"
    );
    let stored = count(
        &app,
        &format!("SELECT count(*) AS n FROM messages WHERE tenant_id = '{tenant}'"),
    )
    .await;
    assert_eq!(stored, 10);
}

/// A replayed send (same Idempotency-Key) is not counted again.
#[actix_web::test]
async fn an_idempotent_replay_is_not_counted_against_the_limit() {
    let app = spawn_app().await;
    let (_, t) = tenant_with_sandbox(&app, "free").await;
    let keyed = |key: &str| {
        app.client
            .post(app.url("/cpaas/v1/messages"))
            .bearer_auth(&t)
            .header("idempotency-key", key)
            .json(&sms("+14155552671"))
            .send()
    };
    let first = keyed("replayed").await.unwrap();
    assert_eq!(first.status(), 202);
    for _ in 0..15 {
        let again = keyed("replayed").await.unwrap();
        assert_eq!(again.status(), 202);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
    }
    for i in 0..9 {
        let res = keyed(&format!("fresh-{i}")).await.unwrap();
        assert_eq!(res.status(), 202, "send {i} of the quota's other nine");
    }
    let over = keyed("one-too-many").await.unwrap();
    assert_eq!(over.status(), 429);
}

/// A tenant's concurrent one-message sends on one process share the limit's statement: while
/// the first waits on the bucket (its row locked here), the 19 behind it queue, and one
/// statement then admits for all of them, exactly what is left of the quota, with counts that
/// follow each other.
#[actix_web::test]
async fn concurrent_sends_of_a_tenant_share_one_limit_statement() {
    let app = spawn_app_with(|env| {
        env.insert("DATABASE_POOL_SIZE".into(), "24".into());
    })
    .await;
    let (tenant, t) = tenant_with_sandbox(&app, "free").await;
    let (status, body) = send(&app, &t, &sms("+14155552671")).await;
    assert_eq!(status, 202, "{body}");
    let statements = async || {
        let samples = scrape(&app).await;
        value(&samples, "cpaas_rate_limit_statements_total", &[]) as i64
    };
    let before = statements().await;

    let mut holder = app.pool.get().await.unwrap();
    diesel::sql_query("BEGIN")
        .execute(&mut holder)
        .await
        .unwrap();
    diesel::sql_query("SELECT 1 FROM rate_limit_buckets FOR UPDATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let body = sms("+14155552671");
    let sends =
        futures_util::future::join_all((0..20).map(|_| app.post("/cpaas/v1/messages", &t, &body)));
    let release = async {
        let blocked = "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'                        AND query LIKE '%rate_limit_buckets%' AND datname = current_database()";
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(&app, blocked).await < 1 {
            assert!(Instant::now() < deadline, "no send reached the bucket");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        actix_web::rt::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            count(&app, blocked).await,
            1,
            "one statement waits, not one per send"
        );
        diesel::sql_query("COMMIT")
            .execute(&mut holder)
            .await
            .unwrap();
    };
    let (answers, ()) = futures_util::join!(sends, release);

    let mut remaining = BTreeSet::new();
    let mut limited = 0;
    for res in answers {
        match res.status().as_u16() {
            202 => {
                remaining.insert(
                    res.headers()["x-ratelimit-remaining"]
                        .to_str()
                        .unwrap()
                        .to_owned(),
                );
            }
            429 => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        remaining,
        (0..9).map(|n| n.to_string()).collect::<BTreeSet<_>>(),
        "the nine units left went to nine sends, each told a different count"
    );
    assert_eq!(limited, 11);
    assert_eq!(
        statements().await - before,
        2,
        "the send that waited on the bucket made one statement, the 19 queued behind it one"
    );
    let stored = count(
        &app,
        &format!("SELECT count(*) AS n FROM messages WHERE tenant_id = '{tenant}'"),
    )
    .await;
    assert_eq!(stored, 10);
}

/// The drainer of the process that accepted a send is woken in-process: the message goes out
/// long before the next poll.
#[actix_web::test]
async fn a_send_wakes_the_drainer_of_its_own_process_at_once() {
    let app = spawn_app_with(|env| {
        env.insert("OUTBOX_ENABLED".into(), "true".into());
        env.insert("OUTBOX_POLL_INTERVAL_MS".into(), "600000".into());
    })
    .await;
    let (_, t) = tenant_with_sandbox(&app, "professional").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, created) = send(&app, &t, &sms("+14155552671")).await;
    assert_eq!(status, 202, "{created}");
    let id = created["data"]["id"].as_str().unwrap();
    assert!(
        until_sent(&app, &t, id, Duration::from_secs(10))
            .await
            .is_some(),
        "sent without waiting for the poll"
    );
}

/// A send accepted by one replica wakes another replica's drainer with one `NOTIFY` sent after
/// the commit, whose payload names the replica that sent it.
#[actix_web::test]
async fn a_send_on_one_replica_wakes_the_drainer_of_another() {
    let accepting = spawn_app().await;
    let draining = spawn_on(&accepting.db_name, &accepting.database_url, |env| {
        env.insert("OUTBOX_ENABLED".into(), "true".into());
        env.insert("OUTBOX_POLL_INTERVAL_MS".into(), "600000".into());
    })
    .await;
    let (_, t) = tenant_with_sandbox(&accepting, "professional").await;
    let mut listener = cpaas::db::connect(&accepting.database_url, Duration::from_secs(3))
        .await
        .unwrap();
    diesel::sql_query("LISTEN cpaas_outbox")
        .execute(&mut listener)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, created) = send(&accepting, &t, &sms("+14155552671")).await;
    assert_eq!(status, 202, "{created}");
    let id = created["data"]["id"].as_str().unwrap();
    assert!(
        until_sent(&draining, &t, id, Duration::from_secs(10))
            .await
            .is_some(),
        "the other replica drained it without waiting for its poll"
    );
    let own = accepting.state.wakeup.instance().to_owned();
    let mut notifications = std::pin::pin!(listener.notifications_stream());
    let mut payloads = Vec::new();
    while let Ok(Some(n)) =
        tokio::time::timeout(Duration::from_millis(500), notifications.next()).await
    {
        payloads.push(n.unwrap().payload);
    }
    assert!(
        payloads.contains(&own),
        "the accepting replica announced its commit: {payloads:?}"
    );
    let mut high = sms("+14155552672");
    high["priority"] = json!("high");
    let (status, created) = send(&accepting, &t, &high).await;
    assert_eq!(status, 202, "{created}");
    let mut urgent = Vec::new();
    while let Ok(Some(n)) =
        tokio::time::timeout(Duration::from_millis(500), notifications.next()).await
    {
        urgent.push(n.unwrap().payload);
    }
    assert!(
        urgent.contains(&format!("{own}:high")),
        "a high send is announced as urgent: {urgent:?}"
    );
    let id = created["data"]["id"].as_str().unwrap();
    assert!(
        until_sent(&draining, &t, id, Duration::from_secs(10))
            .await
            .is_some(),
        "the other replica drained the high message"
    );
}

/// A provider's `config.max_per_second` holds across two drainers: in one drain each, no more
/// than the bucket's second plus what came back meanwhile is sent; the rest wait their turn
/// without an attempt spent.
#[actix_web::test]
async fn a_paced_provider_gets_no_more_than_its_rate_from_two_drainers() {
    let one = spawn_app().await;
    let two = spawn_on(&one.db_name, &one.database_url, |_| {}).await;
    let tenant = Uuid::now_v7();
    let admin = token(tenant, &["admin"], "enterprise");
    let (status, body) = json(
        one.post(
            "/cpaas/v1/providers",
            &admin,
            &json!({ "name": "paced", "kind": "SANDBOX", "channels": ["SMS"],
                     "config": { "max_per_second": 1 } }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let t = token(tenant, &["developer"], "enterprise");
    for _ in 0..8 {
        let (status, created) = send(&one, &t, &sms("+14155552671")).await;
        assert_eq!(status, 202, "{created}");
    }
    let started = Instant::now();
    futures_util::join!(
        one.internal_post("/cpaas/v1/_internal/process-outbox"),
        two.internal_post("/cpaas/v1/_internal/process-outbox"),
    );
    let elapsed = started.elapsed().as_secs_f64();
    let of_tenant = format!("tenant_id = '{tenant}'");
    let sent = count(
        &one,
        &format!("SELECT count(*) AS n FROM messages WHERE {of_tenant} AND status = 'SENT'"),
    )
    .await;
    let waiting = count(
        &one,
        &format!(
            "SELECT count(*) AS n FROM messages WHERE {of_tenant} AND status = 'QUEUED' \
             AND attempts = 0 AND next_attempt_at IS NOT NULL"
        ),
    )
    .await;
    assert!(sent >= 1, "the bucket's first unit is used");
    assert!(
        sent as f64 <= 1.0 + elapsed.floor(),
        "{sent} sent in {elapsed:.2} s at one a second"
    );
    assert_eq!(sent + waiting, 8, "the rest wait, no attempt spent");
    let rejected = json(
        one.post(
            "/cpaas/v1/providers",
            &admin,
            &json!({ "name": "too-fast", "kind": "SANDBOX", "config": { "max_per_second": 0 } }),
        )
        .await,
    )
    .await;
    assert_eq!(rejected.0, 400, "{}", rejected.1);
}
