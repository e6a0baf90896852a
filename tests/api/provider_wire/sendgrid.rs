//! Twilio SendGrid.

use cpaas::domain::{Channel, ProviderKind};
use cpaas::providers::SendOutcome;
use serde_json::{Value, json};
use wiremock::{MockServer, ResponseTemplate};

use super::*;

fn sendgrid_config(server: &MockServer) -> Value {
    json!({"from_email": "noreply@acme.example", "from_name": "Acme", "base_url": server.uri()})
}

fn sendgrid_credentials() -> Value {
    json!({"api_key": "SG.test-key"})
}

fn email() -> cpaas::providers::OutboundMessage {
    let mut email = message(Channel::Email, "someone@example.com");
    email.subject = Some("Your code".into());
    email
}

fn errors(status: u16, message: &str, field: Option<&str>) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"errors": [{"message": message, "field": field, "help": null}]}))
}

#[tokio::test]
async fn sendgrid_posts_mail_send_with_our_ids_in_custom_args_and_reads_x_message_id() {
    let server = MockServer::start().await;
    let client = client(
        ProviderKind::Sendgrid,
        sendgrid_config(&server),
        sendgrid_credentials(),
    );
    let email = email();
    let accepted =
        ResponseTemplate::new(202).insert_header("X-Message-Id", "W5Q4ttQeQ5i0Uh0brS-9OA");
    let outcome = outcome(&server, &*client, &email, accepted).await;
    assert_eq!(
        outcome,
        SendOutcome::Accepted {
            provider_message_id: "W5Q4ttQeQ5i0Uh0brS-9OA".into(),
            price: None
        }
    );

    let request = only_request(&server).await;
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/v3/mail/send");
    assert_eq!(header(&request, "authorization"), "Bearer SG.test-key");
    let body: Value = request.body_json().unwrap();
    assert_eq!(
        body,
        json!({
            "personalizations": [{
                "to": [{"email": "someone@example.com"}],
                "custom_args": {"message_id": MESSAGE_ID, "tenant_id": TENANT.to_string()},
            }],
            "from": {"email": "noreply@acme.example", "name": "Acme"},
            "subject": "Your code",
            "content": [{"type": "text/plain", "value": email.body}],
        })
    );
}

#[tokio::test]
async fn sendgrid_outcomes_follow_the_status() {
    let server = MockServer::start().await;
    let client = client(
        ProviderKind::Sendgrid,
        sendgrid_config(&server),
        sendgrid_credentials(),
    );
    let email = email();
    let invalid = errors(
        400,
        "Does not contain a valid address.",
        Some("personalizations.0.to.0.email"),
    );
    match outcome(&server, &*client, &email, invalid).await {
        SendOutcome::PermanentFailure { code, message } => {
            assert_eq!(code, "HTTP_400");
            assert_eq!(
                message,
                "personalizations.0.to.0.email: Does not contain a valid address."
            );
        }
        other => panic!("{other:?}"),
    }
    let unauthorized = errors(
        401,
        "The provided authorization grant is invalid, expired, or revoked",
        None,
    );
    assert_permanent(
        &outcome(&server, &*client, &email, unauthorized).await,
        "HTTP_401",
    );
    let limited = errors(429, "too many requests", None).insert_header("Retry-After", "5");
    assert_rate_limited(
        &outcome(&server, &*client, &email, limited).await,
        "HTTP_429",
        Some(5),
    );
    let reset = (chrono::Utc::now().timestamp() + 30).to_string();
    let by_reset =
        errors(429, "too many requests", None).insert_header("X-RateLimit-Reset", reset.as_str());
    match outcome(&server, &*client, &email, by_reset).await {
        SendOutcome::RateLimited {
            retry_after: Some(wait),
            ..
        } => {
            assert!((28..=30).contains(&wait.as_secs()), "{wait:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_transient(
        &outcome(&server, &*client, &email, errors(503, "unavailable", None)).await,
        "HTTP_503",
    );
    // A 202 without the id cannot be correlated: the mail may have gone out.
    assert_ambiguous(&outcome(&server, &*client, &email, ResponseTemplate::new(202)).await);

    let impatient = impatient_client(
        ProviderKind::Sendgrid,
        sendgrid_config(&server),
        sendgrid_credentials(),
    );
    let slow = too_slow(ResponseTemplate::new(202).insert_header("X-Message-Id", "late"));
    assert_ambiguous(&outcome(&server, &*impatient, &email, slow).await);
}

#[tokio::test]
async fn sendgrid_sends_the_plain_part_then_the_html_part_and_the_reply_to() {
    let server = MockServer::start().await;
    let client = client(
        ProviderKind::Sendgrid,
        sendgrid_config(&server),
        sendgrid_credentials(),
    );
    let mut email = email();
    email.html_body = Some("<p>Your code is <b>1234</b></p>".into());
    email.reply_to = Some("help@acme.example".into());
    let accepted = ResponseTemplate::new(202).insert_header("X-Message-Id", "abc");
    outcome(&server, &*client, &email, accepted).await;
    let body: Value = only_request(&server).await.body_json().unwrap();
    assert_eq!(
        body["content"],
        json!([
            {"type": "text/plain", "value": email.body},
            {"type": "text/html", "value": "<p>Your code is <b>1234</b></p>"},
        ])
    );
    assert_eq!(body["reply_to"], json!({"email": "help@acme.example"}));
}
