//! `GET /cpaas/v1/_internal/metrics`: Prometheus text that parses, and figures that move with
//! the traffic.

use std::collections::HashMap;

use crate::helpers::{INTERNAL_KEY, TestApp, code, json, spawn_app};
use crate::messages::{send, sender, sms};

const METRICS: &str = "/cpaas/v1/_internal/metrics";

/// One sample of the exposition.
pub struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// Parses `name{label="value",…} value [timestamp]`, with the format's escapes in label values
/// (`\\`, `\"`, `\n`); panics on anything else.
fn parse_sample(line: &str) -> Sample {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    assert!(
        !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit()),
        "bad metric name: {line}"
    );
    let mut rest = &line[name_end..];
    let mut labels = HashMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        loop {
            let (start, c) = chars.next().expect("unterminated labels");
            if c == '}' {
                rest = &inner[start + 1..];
                break;
            }
            if c == ',' {
                continue;
            }
            let eq = inner[start..].find('=').expect("label without =") + start;
            let key = &inner[start..eq];
            assert!(
                key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad label name {key:?}: {line}"
            );
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
            let mut value = String::new();
            loop {
                match chars.next().expect("unterminated label value").1 {
                    '"' => break,
                    '\\' => match chars.next().expect("dangling escape").1 {
                        'n' => value.push('\n'),
                        other @ ('\\' | '"') => value.push(other),
                        other => panic!("bad escape \\{other}: {line}"),
                    },
                    other => value.push(other),
                }
            }
            assert!(
                labels.insert(key.to_owned(), value).is_none(),
                "label twice: {line}"
            );
        }
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().expect("no value");
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .unwrap_or_else(|_| panic!("bad timestamp: {line}"));
    }
    assert!(fields.next().is_none(), "trailing fields: {line}");
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// Scrapes and parses the text exposition format, checking that every sample belongs to a
/// family announced by `# TYPE` (histograms with their `_bucket`, `_sum` and `_count`, and a
/// `+Inf` bucket equal to the count).
pub async fn scrape(app: &TestApp) -> Vec<Sample> {
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
    let mut samples = Vec::new();
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
        } else if line.starts_with('#') || line.trim().is_empty() {
            continue;
        } else {
            let sample = parse_sample(line);
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    sample
                        .name
                        .strip_suffix(s)
                        .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(&sample.name);
            assert!(typed.contains_key(family), "sample before its TYPE: {line}");
            if sample.name.ends_with("_bucket") {
                assert!(
                    sample.labels.contains_key("le"),
                    "bucket without le: {line}"
                );
            }
            samples.push(sample);
        }
    }
    for inf in samples
        .iter()
        .filter(|s| s.name.ends_with("_bucket") && s.labels["le"] == "+Inf")
    {
        let family = inf.name.trim_end_matches("_bucket");
        let mut labels = inf.labels.clone();
        labels.remove("le");
        let count = samples
            .iter()
            .find(|s| s.name == format!("{family}_count") && s.labels == labels)
            .expect("a histogram without its count");
        assert_eq!(inf.value, count.value, "{family}: +Inf bucket != count");
    }
    samples
}

/// The sum of the samples named `name` whose labels include `labels`; 0 when there are none.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum::<f64>()
        + 0.0
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

    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
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

#[test]
fn the_sample_parser_reads_escapes_and_refuses_malformed_lines() {
    let s = parse_sample(r#"http_total{route="/a/{id}",msg="say \"hi\"\n"} 3 1700000000000"#);
    assert_eq!(s.name, "http_total");
    assert_eq!(s.labels["route"], "/a/{id}");
    assert_eq!(s.labels["msg"], "say \"hi\"\n");
    assert_eq!(s.value, 3.0);
    for bad in [
        r#"x{a="1"} one"#,
        r#"x{a="1} 1"#,
        r#"9x 1"#,
        r#"x{a-b="1"} 1"#,
        r#"x 1 2 3"#,
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_sample(bad)).is_err(),
            "{bad}"
        );
    }
}

#[actix_web::test]
async fn five_hundred_requests_with_invented_methods_add_no_metric_series() {
    let app = crate::helpers::spawn_app().await;
    let series = || async {
        let text = app
            .client
            .get(app.url("/cpaas/v1/_internal/metrics"))
            .header("x-internal-api-key", crate::helpers::INTERNAL_KEY)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with("cpaas_http_requests_total{"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let method = |i: usize| reqwest::Method::from_bytes(format!("BREW{i}").as_bytes()).unwrap();
    app.client
        .request(method(0), app.url("/cpaas/v1/providers"))
        .send()
        .await
        .unwrap();
    let before = series().await.len();
    for i in 1..=500 {
        app.client
            .request(method(i), app.url("/cpaas/v1/providers"))
            .send()
            .await
            .unwrap();
    }
    let after = series().await;
    assert!(
        after.len() <= before + 1,
        "{} series before, {} after: {after:?}",
        before,
        after.len()
    );
    assert!(after.iter().all(|l| !l.contains("BREW")), "{after:?}");
}
