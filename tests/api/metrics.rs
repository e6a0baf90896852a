//! `GET /cpaas/v1/_internal/metrics`: Prometheus text that parses, and figures that move with
//! the traffic.

use std::collections::HashMap;

use serde_json::json;

use crate::helpers::{INTERNAL_KEY, TestApp, code, json, spawn_app};
use crate::messages::{send, sender, sms};

const METRICS: &str = "/cpaas/v1/_internal/metrics";

/// Scrapes and checks the text line by line against the exposition format, then parses it.
async fn scrape(app: &TestApp) -> prometheus_parse::Scrape {
    let res = app
        .client
        .get(app.url(METRICS))
        .header("x-internal-api-key", INTERNAL_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = res.text().await.unwrap();
    let mut typed: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "{name} typed twice"
            );
        } else if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        } else {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad value: {line}");
            let name = series.split('{').next().unwrap();
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad name: {line}"
            );
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains_key(*f)))
                .unwrap_or(name);
            assert!(typed.contains_key(family), "sample before its TYPE: {line}");
            if series.contains('{') {
                assert!(series.ends_with('}'), "bad labels: {line}");
            }
        }
    }
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of the sample named `name` whose labels include `labels`; 0 when absent.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref buckets) => {
                buckets.last().map(|b| b.count).unwrap_or(0.0)
            }
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

#[actix_web::test]
async fn metrics_need_the_internal_key() {
    let app = spawn_app().await;
    let (status, body) = json(app.client.get(app.url(METRICS)).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "ERR_CPAAS_INVALID_API_KEY");
}

#[actix_web::test]
async fn metrics_parse_and_move_when_traffic_flows() {
    let app = spawn_app().await;
    let before = scrape(&app).await;
    let sends = [
        ("route", "/cpaas/v1/messages"),
        ("method", "POST"),
        ("status", "202"),
    ];
    assert_eq!(value(&before, "cpaas_http_requests_total", &sends), 0.0);

    let t = sender("professional");
    for _ in 0..3 {
        let (status, body) = send(&app, &t, &sms("+14155552671")).await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, _) = json(app.get("/cpaas/v1/messages/msg_nope", &t).await).await;
    assert_eq!(status, 404);

    let queued = scrape(&app).await;
    assert_eq!(value(&queued, "cpaas_http_requests_total", &sends), 3.0);
    assert_eq!(
        value(
            &queued,
            "cpaas_http_requests_total",
            &[("route", "/cpaas/v1/messages/{id}"), ("status", "404")]
        ),
        1.0,
        "routes are labelled by pattern, not by raw path"
    );
    assert_eq!(
        value(
            &queued,
            "cpaas_http_request_duration_seconds_count",
            &[("route", "/cpaas/v1/messages"), ("method", "POST")]
        ),
        3.0
    );
    assert_eq!(value(&queued, "cpaas_outbox_backlog", &[]), 3.0);
    assert!(value(&queued, "cpaas_outbox_oldest_pending_age_seconds", &[]) >= 0.0);

    let res = app
        .client
        .post(app.url("/cpaas/v1/_internal/process-outbox"))
        .header("x-internal-api-key", INTERNAL_KEY)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .post(app.url("/cpaas/v1/jobs/cleanup"))
        .header("x-internal-api-key", INTERNAL_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let after = scrape(&app).await;
    assert_eq!(value(&after, "cpaas_outbox_backlog", &[]), 0.0);
    assert_eq!(
        value(&after, "cpaas_outbox_oldest_pending_age_seconds", &[]),
        0.0
    );
    assert_eq!(
        value(
            &after,
            "cpaas_deliveries_total",
            &[("provider", "SANDBOX"), ("outcome", "ACCEPTED")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &after,
            "cpaas_delivery_duration_seconds_count",
            &[("provider", "SANDBOX")]
        ),
        3.0
    );
    // Three `communication.requested` and three `communication.sent` events.
    assert_eq!(
        value(
            &after,
            "cpaas_outbox_events_total",
            &[("result", "published")]
        ),
        6.0
    );
    assert_eq!(
        value(
            &after,
            "cpaas_job_runs_total",
            &[("job", "cleanup"), ("outcome", "ok")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "cpaas_provider_circuit_state",
            &[("provider", "SANDBOX"), ("state", "CLOSED")]
        ),
        1.0
    );
    assert_eq!(value(&after, "cpaas_outbox_dead_letters", &[]), 0.0);
}
