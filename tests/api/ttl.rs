//! Validity windows (`ttl_secs`): a message not handed to a provider within it ends FAILED
//! with EXPIRED and is never sent afterwards; what is left of it travels to the provider.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::delivery::{MESSAGES, tenant_with, twilio};
use crate::helpers::{code, json, spawn_app_with};
use crate::messages::{count, send, sms};

fn slow_retries(env: &mut HashMap<String, String>) {
    // A provider that fails waits a minute before it is tried again: only the window's end
    // can move the message on within the test.
    env.insert("DELIVERY_RETRY_BASE_MS".into(), "60000".into());
}

#[actix_web::test]
async fn a_message_whose_window_closes_while_every_provider_is_down_fails_expired_and_is_never_sent()
 {
    let down = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .respond_with(ResponseTemplate::new(503).set_body_json(
            json!({ "code": 20503, "message": "Service Unavailable", "status": 503 }),
        ))
        .mount(&down)
        .await;
    let app = spawn_app_with(slow_retries).await;
    let (_, t, _) = tenant_with(&app, &[twilio("only", 1, &down.uri())]).await;
    let mut body = sms("+14155552671");
    body["ttl_secs"] = json!(2);
    let (status, created) = send(&app, &t, &body).await;
    assert_eq!(status, 202, "{created}");
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    assert!(created["data"]["expires_at"].is_string(), "{created}");

    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    let tried = down.received_requests().await.unwrap();
    assert_eq!(tried.len(), 1, "tried once, then waits");
    let form = String::from_utf8_lossy(&tried[0].body).into_owned();
    assert!(
        form.contains("ValidityPeriod=1") || form.contains("ValidityPeriod=2"),
        "what is left of the window is Twilio's ValidityPeriod: {form}"
    );

    tokio::time::sleep(Duration::from_millis(2200)).await;
    let report = app.internal_post("/cpaas/v1/jobs/retry-due").await;
    assert_eq!(report["counts"]["failed"], 1, "{report}");
    let (_, m) = json(app.get(&format!("/cpaas/v1/messages/{id}"), &t).await).await;
    assert_eq!(m["data"]["status"], "FAILED", "{m}");
    assert_eq!(m["data"]["error"]["code"], "EXPIRED", "{m}");
    let failed = format!(
        "SELECT count(*) AS n FROM outbox_events WHERE topic = \
         'eventzr.cpaas.communication.failed.v1' AND aggregate_id = '{}'",
        Uuid::parse_str(id.trim_start_matches("msg_")).unwrap()
    );
    assert_eq!(count(&app, &failed).await, 1, "its failed event");

    // Even once its retry time comes, it is not sent.
    let m2: Value = json(app.get(&format!("/cpaas/v1/messages/{id}"), &t).await)
        .await
        .1;
    assert_eq!(m2["data"]["status"], "FAILED");
    app.internal_post("/cpaas/v1/jobs/retry-due").await;
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    assert_eq!(
        down.received_requests().await.unwrap().len(),
        1,
        "never sent afterwards"
    );
}

#[actix_web::test]
async fn a_window_out_of_range_is_a_400_naming_ttl_secs() {
    let app = spawn_app_with(|_| {}).await;
    let t = crate::messages::sender("professional");
    for ttl in [json!(0), json!(604_801), json!(-5)] {
        let mut body = sms("+14155552671");
        body["ttl_secs"] = ttl.clone();
        let (status, answer) = send(&app, &t, &body).await;
        assert_eq!(
            (status, code(&answer)),
            (400, "ERR_CPAAS_VALIDATION_FAILED"),
            "{ttl}: {answer}"
        );
        assert_eq!(
            answer["error"]["details"][0]["field"], "ttl_secs",
            "{answer}"
        );
    }
    assert_eq!(count(&app, "SELECT count(*) AS n FROM messages").await, 0);
}
