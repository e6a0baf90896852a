//! A rolling deploy under load: SIGTERM to the real binary while it drains, then a restart.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::delivery::{tenant_with, twilio};
use crate::faults::{TimedTwilio, accept_many};
use crate::helpers::{TestApp, spawn_app};
use crate::messages::count;

fn spawn_binary(app: &TestApp) -> Child {
    crate::helpers::serve_binary(app, &[("SHUTDOWN_DEADLINE_SECS", "20".to_owned())])
}

async fn wait_for(app: &TestApp, sql: &str, done: impl Fn(i64) -> bool, within: Duration) -> i64 {
    let started = Instant::now();
    loop {
        let n = count(app, sql).await;
        if done(n) || started.elapsed() > within {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const SENT: &str = "SELECT count(*) AS n FROM messages WHERE status = 'SENT'";
const SENDING: &str = "SELECT count(*) AS n FROM messages WHERE status = 'SENDING'";

#[actix_web::test]
async fn sigterm_mid_drain_records_the_calls_in_flight_and_a_restart_sends_the_rest_once() {
    let (provider, timed) = TimedTwilio::start(Duration::from_millis(300)).await;
    let app = spawn_app().await;
    let (_, t, _) = tenant_with(&app, &[twilio("only", 1, &provider.uri())]).await;
    accept_many(&app, &t, 5000, json!({})).await;

    let mut first = spawn_binary(&app);
    let sent = wait_for(&app, SENT, |n| n >= 300, Duration::from_secs(60)).await;
    assert!(
        sent >= 300,
        "the first process sent part of the backlog ({sent})"
    );
    let term = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = first.try_wait().unwrap() {
            break status;
        }
        if stopped.elapsed() > Duration::from_secs(40) {
            first.kill().unwrap();
            panic!("the process did not stop within the shutdown deadline");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "a graceful stop exits 0");
    assert_eq!(
        count(&app, SENDING).await,
        0,
        "every call in flight at SIGTERM finished and was recorded"
    );
    let at_stop = count(&app, SENT).await;
    assert!(at_stop < 5000, "stopped mid-drain ({at_stop} of 5000 sent)");
    let leased = "SELECT count(*) AS n FROM outbox_events WHERE lease_owner IS NOT NULL";
    assert_eq!(count(&app, leased).await, 0, "the leases were released");

    let mut second = spawn_binary(&app);
    let all = wait_for(&app, SENT, |n| n == 5000, Duration::from_secs(120)).await;
    let _ = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status();
    let _ = second.wait();
    assert_eq!(all, 5000, "the restarted process sent the rest");
    assert_eq!(count(&app, SENDING).await, 0);
    let once = "SELECT count(*) AS n FROM messages WHERE attempts = 1";
    assert_eq!(count(&app, once).await, 5000, "one attempt per message");
    assert_eq!(
        timed.received(),
        5000,
        "exactly one provider request per message"
    );
}
