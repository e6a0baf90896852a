//! Ambiguous outcomes (the request went out, no answer came back): the provider is asked
//! before any resend where it can be (Twilio lists messages), and `config.on_ambiguous`
//! decides where it cannot (Vonage).

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::delivery::{MESSAGES, tenant_with, twilio};
use crate::helpers::{TestApp, json, spawn_app_with};
use crate::messages::{send, sms};

const BODY: &str = "Your code is 123456";

fn slow_accept() -> ResponseTemplate {
    ResponseTemplate::new(201)
        .set_body_json(
            json!({ "sid": format!("SM{}", Uuid::new_v4().simple()), "status": "queued" }),
        )
        .set_delay(Duration::from_millis(1500))
}

async fn app() -> TestApp {
    spawn_app_with(|env| {
        env.insert("PROVIDER_TIMEOUT_MS".into(), "300".into());
        env.insert("DELIVERY_RETRY_BASE_MS".into(), "0".into());
        env.insert("DELIVERY_RECORD_DEADLINE_SECS".into(), "2".into());
    })
    .await
}

/// Sends one SMS and drains: the send times out after the request went out.
async fn send_ambiguous(app: &TestApp, t: &str) -> String {
    let (status, created) = send(app, t, &sms("+14155552671")).await;
    assert_eq!(status, 202, "{created}");
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    let (_, m) = json(app.get(&format!("/cpaas/v1/messages/{id}"), t).await).await;
    assert_eq!(m["data"]["status"], "QUEUED", "{m}");
    assert_eq!(m["data"]["error"]["code"], "AMBIGUOUS_OUTCOME", "{m}");
    id
}

async fn view(app: &TestApp, t: &str, id: &str) -> (Value, Vec<Value>) {
    let (_, m) = json(app.get(&format!("/cpaas/v1/messages/{id}"), t).await).await;
    let (_, a) = json(
        app.get(&format!("/cpaas/v1/messages/{id}/attempts"), t)
            .await,
    )
    .await;
    (m["data"].clone(), a["data"].as_array().unwrap().clone())
}

async fn posts(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .count()
}

#[actix_web::test]
async fn a_twilio_send_the_look_up_finds_is_settled_without_a_second_send() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .respond_with(slow_accept())
        .mount(&server)
        .await;
    let app = app().await;
    let (_, t, _) = tenant_with(&app, &[twilio("only", 1, &server.uri())]).await;
    let id = send_ambiguous(&app, &t).await;

    let created = chrono::Utc::now().to_rfc2822();
    Mock::given(method("GET"))
        .and(path_regex(MESSAGES))
        .and(query_param("To", "+14155552671"))
        .and(query_param("From", "+15005550006"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messages": [
                { "sid": "SMother", "to": "+14155552671", "body": "another text", "date_created": created },
                { "sid": "SMfound", "to": "+14155552671", "body": BODY, "date_created": created }
            ]
        })))
        .mount(&server)
        .await;
    app.internal_post("/cpaas/v1/jobs/retry-due").await;

    let (m, attempts) = view(&app, &t, &id).await;
    assert_eq!(m["status"], "SENT", "{m}");
    assert_eq!(m["provider_message_id"], "SMfound");
    let outcomes: Vec<&str> = attempts
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["AMBIGUOUS", "RECONCILED"], "{attempts:?}");
    assert_eq!(
        posts(&server).await,
        1,
        "the message was not sent a second time"
    );
}

#[actix_web::test]
async fn a_twilio_send_the_look_up_does_not_find_is_resent_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .respond_with(slow_accept())
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({ "sid": "SMresent", "status": "queued" })),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(MESSAGES))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "messages": [] })))
        .mount(&server)
        .await;
    let app = app().await;
    let (_, t, _) = tenant_with(&app, &[twilio("only", 1, &server.uri())]).await;
    let id = send_ambiguous(&app, &t).await;
    app.internal_post("/cpaas/v1/jobs/retry-due").await;

    let (m, attempts) = view(&app, &t, &id).await;
    assert_eq!(m["status"], "SENT", "{m}");
    assert_eq!(m["provider_message_id"], "SMresent");
    assert_eq!(attempts[1]["outcome"], "ACCEPTED", "{attempts:?}");
    let note = attempts[1]["error_message"].as_str().unwrap_or_default();
    assert!(note.contains("look-up had no such message"), "{attempts:?}");
    assert_eq!(posts(&server).await, 2);
}

async fn vonage_after_a_timeout(on_ambiguous: Option<&str>) -> (Value, Vec<Value>, usize) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms/json"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({
                    "message-count": "1",
                    "messages": [{ "to": "14155552671", "message-id": "0A0000001", "status": "0" }]
                }))
                .set_delay(Duration::from_millis(1500)),
        )
        .mount(&server)
        .await;
    let app = app().await;
    let mut config = json!({ "from": "AcmeTix", "base_url": server.uri() });
    if let Some(policy) = on_ambiguous {
        config["on_ambiguous"] = json!(policy);
    }
    let provider = json!({
        "name": "vonage", "kind": "VONAGE", "channels": ["SMS"], "priority": 1, "config": config,
        "credentials": { "api_key": "abcd1234", "api_secret": "s3cr3t", "signature_secret": "x" }
    });
    let (_, t, _) = tenant_with(&app, &[provider]).await;
    let id = send_ambiguous(&app, &t).await;
    app.internal_post("/cpaas/v1/jobs/retry-due").await;
    let (m, attempts) = view(&app, &t, &id).await;
    (m, attempts, posts(&server).await)
}

#[actix_web::test]
async fn a_provider_without_a_look_up_fails_the_message_when_on_ambiguous_is_fail() {
    let (m, attempts, posts) = vonage_after_a_timeout(Some("fail")).await;
    assert_eq!(m["status"], "FAILED", "{m}");
    assert_eq!(m["error"]["code"], "AMBIGUOUS_OUTCOME", "{m}");
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    let reason = attempts[1]["error_message"].as_str().unwrap();
    assert!(reason.contains("on_ambiguous is fail"), "{reason}");
    assert_eq!(posts, 1, "nothing was sent again");
}

#[actix_web::test]
async fn a_provider_without_a_look_up_resends_by_default_and_says_so() {
    let (_, attempts, posts) = vonage_after_a_timeout(None).await;
    assert_eq!(posts, 2, "resent once");
    assert_eq!(attempts.len(), 2, "{attempts:?}");
}

#[actix_web::test]
async fn on_ambiguous_takes_only_resend_or_fail() {
    let app = app().await;
    let admin = crate::helpers::token(Uuid::now_v7(), &["admin"], "enterprise");
    let (status, body) = json(
        app.post(
            "/cpaas/v1/providers",
            &admin,
            &json!({
                "name": "v", "kind": "VONAGE", "channels": ["SMS"],
                "config": { "from": "AcmeTix", "on_ambiguous": "maybe" },
                "credentials": { "api_key": "k", "api_secret": "s", "signature_secret": "x" }
            }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("on_ambiguous"),
        "{body}"
    );
}
