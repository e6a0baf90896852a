//! Provider adapters against wiremock servers that speak each provider's wire format: the exact
//! request every adapter sends, and how it classifies what comes back.

mod aws;
mod fcm;
mod meta_whatsapp;
mod probe;
mod sendgrid;
mod twilio;
mod vonage;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cpaas::domain::{Channel, ProviderKind};
use cpaas::providers::{
    OutboundMessage, ProviderClient, ProviderSettings, SendOutcome, build_client,
};
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub const MESSAGE_ID: &str = "msg_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b";
pub const TENANT: Uuid = Uuid::from_u128(0x0190a1b2_c3d4_7e8f_9a0b_1c2d3e4f5a6b);
/// The whole-call limit of clients that must time out quickly.
pub const SHORT_TIMEOUT: Duration = Duration::from_millis(300);

/// Settings as the API stores them.
pub fn settings(kind: ProviderKind, config: Value, credentials: Value) -> ProviderSettings {
    let (Value::Object(config), Value::Object(credentials)) = (config, credentials) else {
        panic!("config and credentials are objects");
    };
    kind.validate(&config, &credentials)
        .expect("settings the API would accept");
    ProviderSettings {
        provider_id: Uuid::now_v7(),
        kind,
        config,
        credentials,
    }
}

/// A client built the way delivery builds it, on the shared HTTP client.
pub fn client(kind: ProviderKind, config: Value, credentials: Value) -> Arc<dyn ProviderClient> {
    let http = cpaas::providers::http_client().expect("http client");
    build_client(&settings(kind, config, credentials), http).expect("client")
}

/// The same, on an HTTP client that gives up after [`SHORT_TIMEOUT`].
pub fn impatient_client(
    kind: ProviderKind,
    config: Value,
    credentials: Value,
) -> Arc<dyn ProviderClient> {
    let http = reqwest::Client::builder()
        .timeout(SHORT_TIMEOUT)
        .build()
        .expect("http client");
    build_client(&settings(kind, config, credentials), http).expect("client")
}

/// A message from the tests' tenant.
pub fn message(channel: Channel, recipient: &str) -> OutboundMessage {
    OutboundMessage {
        message_id: MESSAGE_ID.into(),
        tenant_id: TENANT,
        channel,
        recipient: recipient.into(),
        subject: None,
        body: "Your code is 1234 & it expires <soon>".into(),
        html_body: None,
        reply_to: None,
        provider_template: None,
        metadata: json!({}),
        status_callback_url: None,
        validity: None,
        media: Vec::new(),
    }
}

/// Answers every request with `response`, sends once, and returns the outcome.
pub async fn outcome(
    server: &MockServer,
    client: &dyn ProviderClient,
    message: &OutboundMessage,
    response: ResponseTemplate,
) -> SendOutcome {
    server.reset().await;
    Mock::given(any())
        .respond_with(response)
        .mount(server)
        .await;
    client.send(message).await
}

/// The one request the server received.
pub async fn only_request(server: &MockServer) -> Request {
    let mut requests = server.received_requests().await.expect("recording on");
    assert_eq!(requests.len(), 1, "exactly one call");
    requests.remove(0)
}

/// A form-encoded body as a map (the last value of a repeated key wins).
pub fn form(request: &Request) -> HashMap<String, String> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

/// A header as text.
pub fn header<'a>(request: &'a Request, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("header {name}"))
        .to_str()
        .expect("text header")
}

pub fn assert_accepted(outcome: &SendOutcome, id: &str) {
    match outcome {
        SendOutcome::Accepted {
            provider_message_id,
            ..
        } => assert_eq!(provider_message_id, id),
        other => panic!("expected ACCEPTED with {id}, got {other:?}"),
    }
}

pub fn assert_permanent(outcome: &SendOutcome, expected_code: &str) {
    match outcome {
        SendOutcome::PermanentFailure { code, .. } => assert_eq!(code, expected_code),
        other => panic!("expected PERMANENT_FAILURE {expected_code}, got {other:?}"),
    }
}

pub fn assert_transient(outcome: &SendOutcome, expected_code: &str) {
    match outcome {
        SendOutcome::TransientFailure { code, .. } => assert_eq!(code, expected_code),
        other => panic!("expected TRANSIENT_FAILURE {expected_code}, got {other:?}"),
    }
}

pub fn assert_rate_limited(outcome: &SendOutcome, expected_code: &str, wait: Option<u64>) {
    match outcome {
        SendOutcome::RateLimited {
            code, retry_after, ..
        } => {
            assert_eq!(code, expected_code);
            assert_eq!(*retry_after, wait.map(Duration::from_secs));
        }
        other => panic!("expected RATE_LIMITED {expected_code}, got {other:?}"),
    }
}

pub fn assert_ambiguous(outcome: &SendOutcome) {
    assert!(
        matches!(outcome, SendOutcome::Ambiguous { .. }),
        "expected AMBIGUOUS, got {outcome:?}"
    );
}

/// A response slower than [`SHORT_TIMEOUT`].
pub fn too_slow(response: ResponseTemplate) -> ResponseTemplate {
    response.set_delay(SHORT_TIMEOUT * 5)
}

#[tokio::test]
async fn a_provider_that_refuses_the_connection_is_a_transient_failure() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = client(
        ProviderKind::Sendgrid,
        json!({"from_email": "noreply@example.com", "base_url": base}),
        json!({"api_key": "SG.key"}),
    );
    let mut email = message(Channel::Email, "someone@example.com");
    email.subject = Some("Hello".into());
    assert_transient(&client.send(&email).await, "CONNECT_FAILED");
}

#[tokio::test]
async fn a_connection_dropped_after_the_request_was_written_is_ambiguous() {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        if let Ok((mut socket, _)) = listener.accept() {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request);
            // Closed without an answer: the provider saw the request.
        }
    });
    let client = client(
        ProviderKind::MetaWhatsapp,
        json!({"phone_number_id": "1", "waba_id": "2", "base_url": base}),
        json!({"access_token": "t", "app_secret": "s", "verify_token": "v"}),
    );
    assert_ambiguous(
        &client
            .send(&message(Channel::Whatsapp, "+14155550100"))
            .await,
    );
}

#[tokio::test]
async fn a_settings_gap_fails_the_build_instead_of_the_send() {
    let http = cpaas::providers::http_client().unwrap();
    let mut broken = settings(
        ProviderKind::Vonage,
        json!({"from": "Acme"}),
        json!({"api_key": "k", "api_secret": "s", "signature_secret": "x"}),
    );
    broken.credentials.remove("api_secret");
    let err = build_client(&broken, http).err().expect("an error");
    assert!(err.to_string().contains("api_secret"), "{err}");
}

#[tokio::test]
async fn a_reply_body_is_read_up_to_the_cap_and_the_rest_dropped() {
    use wiremock::matchers::any;
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(any())
        .respond_with(wiremock::ResponseTemplate::new(500).set_body_bytes(vec![b'x'; 4 << 20]))
        .mount(&server)
        .await;
    let response = reqwest::get(server.uri()).await.unwrap();
    let body =
        cpaas::providers::http::read_capped(response, cpaas::providers::http::MAX_REPLY_BYTES)
            .await
            .unwrap();
    assert_eq!(body.len(), cpaas::providers::http::MAX_REPLY_BYTES);
}

#[test]
fn provider_settings_print_their_credentials_redacted() {
    let shown = format!(
        "{:?}",
        settings(
            ProviderKind::Twilio,
            json!({"from": "+15005550006"}),
            json!({"account_sid": "AC123", "auth_token": "s3cr3t-t0ken"}),
        )
    );
    assert!(shown.contains("auth_token"), "{shown}");
    assert!(
        !shown.contains("s3cr3t-t0ken") && !shown.contains("AC123"),
        "{shown}"
    );
}
