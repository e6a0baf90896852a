//! `provider-health`: a circuit opened by real failed sends (Twilio against wiremock) is probed
//! once its cool-down has passed; the probe's answer closes it or keeps it open.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{INTERNAL_KEY, TestApp, json, spawn_app_with, token};
use crate::messages::{count, send, sms};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const COOLDOWN: Duration = Duration::from_secs(2);

struct Open {
    app: TestApp,
    twilio: MockServer,
    admin: String,
    provider_id: String,
}

async fn run_job(app: &TestApp, name: &str) -> Value {
    app.internal_post(&format!("/cpaas/v1/jobs/{name}")).await
}

async fn drain(app: &TestApp) {
    let res = app
        .client
        .post(app.url("/cpaas/v1/_internal/process-outbox"))
        .header("x-internal-api-key", INTERNAL_KEY)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

async fn health(o: &Open) -> Value {
    let (status, body) = json(
        o.app
            .get(
                &format!("/cpaas/v1/providers/{}/health", o.provider_id),
                &o.admin,
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

async fn circuit_state(o: &Open, state: &str) -> i64 {
    let id = o.provider_id.trim_start_matches("prv_");
    count(
        &o.app,
        &format!(
            "SELECT count(*) AS n FROM providers WHERE id = '{id}'::uuid AND circuit_state = '{state}'"
        ),
    )
    .await
}

/// A tenant whose only SMS provider is a Twilio account whose sends fail with 500 until its
/// circuit opens.
async fn open_circuit() -> Open {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(
            r"^/2010-04-01/Accounts/AC[0-9a-f]+/Messages\.json$",
        ))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"code": 20500, "message": "Internal Server Error"})),
        )
        .mount(&twilio)
        .await;
    let app = spawn_app_with(|env| {
        env.insert("DELIVERY_MAX_ATTEMPTS_PER_PROVIDER".into(), "2".into());
        env.insert("DELIVERY_RETRY_BASE_MS".into(), "0".into());
        env.insert("CIRCUIT_FAILURE_THRESHOLD".into(), "2".into());
        env.insert(
            "CIRCUIT_COOLDOWN_SECS".into(),
            COOLDOWN.as_secs().to_string(),
        );
    })
    .await;
    let tenant = Uuid::now_v7();
    let admin = token(tenant, &["admin"], "enterprise");
    let (status, created) = json(
        app.post(
            "/cpaas/v1/providers",
            &admin,
            &json!({
                "name": "twilio", "kind": "TWILIO", "channels": ["SMS"], "priority": 1,
                "config": { "from": "+15005550006", "base_url": twilio.uri() },
                "credentials": { "account_sid": SID, "auth_token": "secret" }
            }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let provider_id = created["data"]["id"].as_str().unwrap().to_owned();
    let sender = token(tenant, &["developer"], "enterprise");
    let (status, _) = send(&app, &sender, &sms("+14155552671")).await;
    assert_eq!(status, 202);
    drain(&app).await;
    run_job(&app, "retry-due").await;
    let o = Open {
        app,
        twilio,
        admin,
        provider_id,
    };
    let h = health(&o).await;
    assert_eq!(
        h["state"], "UNHEALTHY",
        "two failed sends open the circuit: {h}"
    );
    assert_eq!(circuit_state(&o, "OPEN").await, 1);
    o
}

async fn answer_probe(o: &Open, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(format!("/2010-04-01/Accounts/{SID}.json")))
        .respond_with(response)
        .mount(&o.twilio)
        .await;
}

async fn probes(o: &Open) -> Vec<wiremock::Request> {
    o.twilio
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "GET")
        .collect()
}

#[actix_web::test]
async fn a_successful_probe_after_the_cool_down_closes_the_circuit() {
    let o = open_circuit().await;
    answer_probe(
        &o,
        ResponseTemplate::new(200).set_body_json(json!({"sid": SID, "status": "active"})),
    )
    .await;

    let early = run_job(&o.app, "provider-health").await;
    assert_eq!(
        early["counts"]["probed"], 0,
        "not before the cool-down: {early}"
    );
    assert!(probes(&o).await.is_empty());

    tokio::time::sleep(COOLDOWN + Duration::from_millis(200)).await;
    let report = run_job(&o.app, "provider-health").await;
    assert_eq!(report["job"], "provider-health");
    assert_eq!(report["counts"]["probed"], 1, "{report}");
    assert_eq!(report["counts"]["closed"], 1);
    assert_eq!(report["counts"]["still_open"], 0);

    let probes = probes(&o).await;
    assert_eq!(probes.len(), 1);
    assert_eq!(
        probes[0].url.path(),
        format!("/2010-04-01/Accounts/{SID}.json")
    );
    let authorization = probes[0].headers.get("authorization").unwrap();
    assert!(authorization.to_str().unwrap().starts_with("Basic "));

    let h = health(&o).await;
    assert_eq!(h["state"], "HEALTHY", "{h}");
    assert_eq!(h["consecutive_failures"], 0);
    assert!(h["last_error"].is_null());
    assert_eq!(circuit_state(&o, "CLOSED").await, 1);

    let after = run_job(&o.app, "provider-health").await;
    assert_eq!(
        after["counts"]["probed"], 0,
        "a closed circuit is not probed"
    );
}

#[actix_web::test]
async fn a_failed_probe_keeps_the_circuit_open_with_the_error_and_restarts_the_cool_down() {
    let o = open_circuit().await;
    answer_probe(
        &o,
        ResponseTemplate::new(401).set_body_json(json!({
            "code": 20003, "message": "Authenticate", "status": 401,
            "more_info": "https://www.twilio.com/docs/errors/20003"})),
    )
    .await;

    tokio::time::sleep(COOLDOWN + Duration::from_millis(200)).await;
    let report = run_job(&o.app, "provider-health").await;
    assert_eq!(report["counts"]["probed"], 1, "{report}");
    assert_eq!(report["counts"]["closed"], 0);
    assert_eq!(report["counts"]["still_open"], 1);
    assert_eq!(probes(&o).await.len(), 1);

    let h = health(&o).await;
    assert_eq!(h["state"], "UNHEALTHY", "{h}");
    let error = h["last_error"].as_str().unwrap();
    assert!(error.contains("20003"), "{error}");
    assert!(error.contains("Authenticate"), "{error}");
    assert_eq!(circuit_state(&o, "OPEN").await, 1);

    let again = run_job(&o.app, "provider-health").await;
    assert_eq!(
        again["counts"]["probed"], 0,
        "the failed probe started a new cool-down: {again}"
    );
    assert_eq!(probes(&o).await.len(), 1);
}
