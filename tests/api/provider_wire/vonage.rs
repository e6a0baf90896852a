//! Vonage SMS API.

use cpaas::domain::{Channel, ProviderKind};
use cpaas::pricing::Price;
use cpaas::providers::SendOutcome;
use serde_json::{Value, json};
use wiremock::{MockServer, ResponseTemplate};

use super::*;

fn vonage(server: &MockServer) -> (Value, Value) {
    (
        json!({"from": "AcmeInc", "base_url": server.uri()}),
        json!({"api_key": "abcd1234", "api_secret": "s3cr3t", "signature_secret": "sig"}),
    )
}

fn vonage_reply(parts: Value) -> ResponseTemplate {
    let count = parts.as_array().map_or(0, Vec::len).to_string();
    ResponseTemplate::new(200).set_body_json(json!({"message-count": count, "messages": parts}))
}

#[tokio::test]
async fn vonage_posts_the_sms_form_with_our_id_as_client_ref_and_sums_part_prices() {
    let server = MockServer::start().await;
    let (config, creds) = vonage(&server);
    let client = client(ProviderKind::Vonage, config, creds);
    let mut sms = message(Channel::Sms, "+447700900000");
    sms.status_callback_url = Some("https://api.example.com/callbacks/vonage".into());
    let part = |id: &str| {
        json!({"to": "447700900000", "message-id": id, "status": "0",
        "remaining-balance": "3.14", "message-price": "0.03330000", "network": "23410"})
    };
    let reply = vonage_reply(json!([part("0A0000001234ABCD"), part("0A0000001234ABCE")]));
    assert_eq!(
        outcome(&server, &*client, &sms, reply).await,
        SendOutcome::Accepted {
            provider_message_id: "0A0000001234ABCD".into(),
            price: Some(Price {
                micros: 66_600,
                currency: "EUR".into()
            })
        },
        "Vonage prices come in the account's currency, EUR unless config.currency says otherwise"
    );
    let request = only_request(&server).await;
    assert_eq!(request.url.path(), "/sms/json");
    let form = form(&request);
    assert_eq!(form["api_key"], "abcd1234");
    assert_eq!(form["api_secret"], "s3cr3t");
    assert_eq!(form["from"], "AcmeInc");
    assert_eq!(form["to"], "447700900000");
    assert_eq!(form["text"], sms.body);
    assert_eq!(form["client-ref"], MESSAGE_ID);
    assert_eq!(form["callback"], "https://api.example.com/callbacks/vonage");
}

#[tokio::test]
async fn vonage_outcomes_follow_the_part_status_inside_a_200() {
    let server = MockServer::start().await;
    let (config, creds) = vonage(&server);
    let client = client(ProviderKind::Vonage, config.clone(), creds.clone());
    let sms = message(Channel::Sms, "+447700900000");
    let failed =
        |status: &str, text: &str| vonage_reply(json!([{"status": status, "error-text": text}]));
    assert_permanent(
        &outcome(&server, &*client, &sms, failed("3", "Invalid to")).await,
        "3",
    );
    assert_permanent(
        &outcome(&server, &*client, &sms, failed("4", "Bad Credentials")).await,
        "4",
    );
    let throttled = failed(
        "1",
        "Throughput Rate Exceeded - please wait [ 10 ] and retry",
    );
    assert_rate_limited(
        &outcome(&server, &*client, &sms, throttled).await,
        "1",
        None,
    );
    assert_transient(
        &outcome(&server, &*client, &sms, failed("5", "Internal Error")).await,
        "5",
    );
    let gateway = ResponseTemplate::new(429).insert_header("Retry-After", "2");
    assert_rate_limited(
        &outcome(&server, &*client, &sms, gateway).await,
        "HTTP_429",
        Some(2),
    );
    assert_transient(
        &outcome(&server, &*client, &sms, ResponseTemplate::new(500)).await,
        "HTTP_500",
    );

    let impatient = impatient_client(ProviderKind::Vonage, config, creds);
    let slow = too_slow(vonage_reply(json!([{"status": "0", "message-id": "X"}])));
    assert_ambiguous(&outcome(&server, &*impatient, &sms, slow).await);
}

#[tokio::test]
async fn vonage_carries_what_is_left_of_the_validity_window_as_ttl_in_milliseconds() {
    let server = MockServer::start().await;
    let (config, creds) = vonage(&server);
    let client = client(ProviderKind::Vonage, config, creds);
    let mut sms = message(Channel::Sms, "+447700900000");
    sms.validity = Some(std::time::Duration::from_secs(300));
    let part = json!({"to": "447700900000", "message-id": "0A01", "status": "0",
        "message-price": "0.03", "network": "23410"});
    outcome(&server, &*client, &sms, vonage_reply(json!([part]))).await;
    assert_eq!(form(&only_request(&server).await)["ttl"], "300000");
    sms.validity = Some(std::time::Duration::from_secs(3));
    let part = json!({"to": "447700900000", "message-id": "0A02", "status": "0",
        "message-price": "0.03", "network": "23410"});
    outcome(&server, &*client, &sms, vonage_reply(json!([part]))).await;
    assert_eq!(
        form(&only_request(&server).await)["ttl"],
        "20000",
        "Vonage's shortest ttl"
    );
}
