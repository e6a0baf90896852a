//! Nothing lost: the real binary killed with SIGKILL while it drains a backlog, and the bus
//! going away and coming back.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::proxy::Proxy;
use crate::helpers::{
    INTERNAL_KEY, Killed, TestApp, free_port, json, nats_url, spawn_app, spawn_app_with, spawn_on,
    stream_messages, with_nats,
};
use crate::messages::{count, sender, sms};

fn spawn_binary(app: &TestApp, stream: &str, prefix: &str) -> Child {
    crate::helpers::serve_binary(
        app,
        &[
            ("NATS_URL", nats_url()),
            ("NATS_STREAM", stream.to_owned()),
            ("NATS_SUBJECT_PREFIX", prefix.to_owned()),
            ("OUTBOX_LEASE_SECS", "2".to_owned()),
        ],
    )
}

/// Counts `sql` every 100 ms until `done` holds or `tries` counts were made; the last count.
pub async fn wait_until(app: &TestApp, sql: &str, done: impl Fn(i64) -> bool, tries: usize) -> i64 {
    let mut n = 0;
    for _ in 0..tries {
        n = count(app, sql).await;
        if done(n) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    n
}

#[actix_web::test]
async fn a_killed_process_loses_no_committed_event() {
    let (mut stream, mut prefix) = (String::new(), String::new());
    let app = spawn_app_with(|env| (stream, prefix) = with_nats(env)).await;
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
    let done = "SELECT count(*) AS n FROM outbox_events WHERE status = 'DONE'";
    let mut first = spawn_binary(&app, &stream, &prefix);
    let progressed = wait_until(&app, done, |n| n >= 300, 1200).await;
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    assert!(
        progressed >= 300,
        "the first process drained part of the backlog ({progressed})"
    );
    let at_kill = count(&app, done).await;
    assert!(at_kill < 6000, "killed mid-drain (done {at_kill} of 6000)");

    let mut second = spawn_binary(&app, &stream, &prefix);
    let pending = "SELECT count(*) AS n FROM outbox_events WHERE status <> 'DONE'";
    let left = wait_until(&app, pending, |n| n == 0, 1800).await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(left, 0, "the restarted process drained the rest");
    let events = count(&app, "SELECT count(*) AS n FROM outbox_events").await;
    assert!(
        events > 3000,
        "every requested event, and the sent events of the messages delivered ({events}); a \
         message in flight at the kill stays SENDING until reconcile-stale retries it"
    );
    assert_eq!(
        stream_messages(&stream).await as i64,
        events,
        "every committed event is on the stream exactly once (re-publishes dropped by de-duplication)"
    );
}

#[actix_web::test]
async fn with_the_bus_down_the_backlog_grows_and_drains_when_it_returns() {
    let proxy = Proxy::start(nats_url().trim_start_matches("nats://").to_owned()).await;
    let (mut stream, mut prefix) = (String::new(), String::new());
    let seeded = spawn_app_with(|env| (stream, prefix) = with_nats(env)).await;
    let via_proxy = format!("nats://127.0.0.1:{}", proxy.port);
    let (s2, p2) = (stream.clone(), prefix.clone());
    let app = spawn_on(&seeded.db_name, &seeded.database_url, move |env| {
        env.insert("NATS_URL".into(), via_proxy);
        env.insert("NATS_STREAM".into(), s2);
        env.insert("NATS_SUBJECT_PREFIX".into(), p2);
        env.insert("OUTBOX_BACKOFF_BASE_MS".into(), "10".into());
        env.insert("OUTBOX_BACKOFF_CAP_SECS".into(), "1".into());
    })
    .await;
    let drain = || async {
        let res = app
            .client
            .post(app.url("/cpaas/v1/_internal/process-outbox"))
            .header("x-internal-api-key", INTERNAL_KEY)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        json(res).await.1["data"].clone()
    };

    proxy.cut().await;
    let t = sender("enterprise");
    for _ in 0..5 {
        assert_eq!(
            app.post("/cpaas/v1/messages", &t, &sms("+14155552671"))
                .await
                .status(),
            202,
            "sends are still accepted"
        );
    }
    let report = drain().await;
    assert!(report["failed"].as_i64().unwrap() >= 5, "{report}");
    assert_eq!(report["published"], 0);
    let (_, ready) = json(
        app.client
            .get(app.url("/cpaas/v1/_internal/readyz"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ready["data"]["bus"], "unavailable", "{ready}");
    assert_eq!(ready["data"]["status"], "degraded");
    assert!(
        ready["data"]["outbox_backlog"].as_i64().unwrap() >= 5,
        "{ready}"
    );

    proxy.restore();
    let mut pending = i64::MAX;
    for _ in 0..240 {
        drain().await;
        pending = count(
            &app,
            "SELECT count(*) AS n FROM outbox_events WHERE status <> 'DONE'",
        )
        .await;
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(pending, 0, "the backlog drained once the bus was back");
    let events = count(&app, "SELECT count(*) AS n FROM outbox_events").await;
    assert_eq!(
        stream_messages(&stream).await as i64,
        events,
        "nothing lost"
    );
}

fn nats_server_binary() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| {
        [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nats-server")
        .to_owned()
    })
}

#[actix_web::test]
async fn a_service_started_before_its_bus_serves_degraded_then_creates_the_stream_and_publishes() {
    let port = free_port();
    let seeded = spawn_app().await;
    let stream = format!("LATE_{}", uuid::Uuid::new_v4().simple());
    let (s, url) = (stream.clone(), format!("nats://127.0.0.1:{port}"));
    let app = spawn_on(&seeded.db_name, &seeded.database_url, move |env| {
        env.insert("NATS_URL".into(), url);
        env.insert("NATS_STREAM".into(), s);
        env.insert("OUTBOX_BACKOFF_BASE_MS".into(), "10".into());
        env.insert("OUTBOX_BACKOFF_CAP_SECS".into(), "1".into());
    })
    .await;
    let ready = app.readyz().await;
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["bus"], "unavailable", "{ready}");
    let res = app
        .post(
            "/cpaas/v1/messages",
            &sender("enterprise"),
            &sms("+14155552671"),
        )
        .await;
    assert_eq!(
        res.status(),
        202,
        "sends are accepted while the bus is away"
    );

    let store = std::env::temp_dir().join(format!("cpaas-late-nats-{port}"));
    let _server = Killed(
        Command::new(nats_server_binary())
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server"),
    );
    let mut ready = Value::Null;
    for _ in 0..100 {
        ready = app.readyz().await;
        if ready["bus"] == "ok" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready["status"], "ready", "{ready}");
    let mut pending = i64::MAX;
    for _ in 0..100 {
        app.internal_post("/cpaas/v1/_internal/process-outbox")
            .await;
        pending = count(
            &app,
            "SELECT count(*) AS n FROM outbox_events WHERE status <> 'DONE'",
        )
        .await;
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        pending, 0,
        "the backlog was published once the bus answered"
    );
    let client = async_nats::connect(format!("nats://127.0.0.1:{port}"))
        .await
        .unwrap();
    let mut on_stream = async_nats::jetstream::new(client)
        .get_stream(&stream)
        .await
        .unwrap();
    assert_eq!(on_stream.info().await.unwrap().state.messages, 2);
    std::fs::remove_dir_all(&store).ok();
}

#[actix_web::test]
async fn the_service_authenticates_to_a_nats_server_that_requires_a_password() {
    let port = free_port();
    let store = std::env::temp_dir().join(format!("cpaas-auth-nats-{port}"));
    let _server = Killed(
        Command::new(nats_server_binary())
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store)
            .args(["--user", "cpaas", "--pass", "s3cret-pass"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server"),
    );
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seeded = spawn_app().await;
    let url = format!("nats://127.0.0.1:{port}");
    let bus_of = |password: Option<&'static str>| {
        let url = url.clone();
        let db = seeded.db_name.clone();
        let db_url = seeded.database_url.clone();
        async move {
            let app = spawn_on(&db, &db_url, move |env| {
                env.insert("NATS_URL".into(), url);
                env.insert("NATS_STREAM".into(), format!("AUTH_{port}"));
                if let Some(p) = password {
                    env.insert("NATS_USER".into(), "cpaas".into());
                    env.insert("NATS_PASSWORD".into(), p.into());
                }
            })
            .await;
            let bus = app.readyz().await["bus"].clone();
            app.stop().await;
            bus
        }
    };
    assert_eq!(bus_of(Some("s3cret-pass")).await, "ok");
    assert_eq!(bus_of(None).await, "unavailable", "without credentials");
    std::fs::remove_dir_all(&store).ok();
}
