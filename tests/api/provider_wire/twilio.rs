//! Twilio: SMS and WhatsApp through Messages, voice through Calls.

use base64::Engine;
use cpaas::domain::{Channel, ProviderKind};
use cpaas::pricing::Price;
use cpaas::providers::SendOutcome;
use serde_json::{Value, json};
use wiremock::{MockServer, ResponseTemplate};

use super::*;

const TWILIO_SID: &str = "SM0123456789abcdef0123456789abcdef";

fn twilio_config(server: &MockServer, sender: Value) -> (Value, Value) {
    let mut config = sender;
    config["base_url"] = json!(server.uri());
    (
        config,
        json!({"account_sid": "AC123", "auth_token": "secret-token"}),
    )
}

#[tokio::test]
async fn twilio_sms_posts_the_messages_form_with_basic_auth_and_our_id_in_the_callback() {
    let server = MockServer::start().await;
    let (config, creds) = twilio_config(&server, json!({"from": "+15005550006"}));
    let client = client(ProviderKind::Twilio, config, creds);
    let mut sms = message(Channel::Sms, "+14155550100");
    sms.status_callback_url = Some("https://api.example.com/callbacks/twilio?p=prv_1".into());
    let created = json!({"sid": TWILIO_SID, "status": "queued", "price": "-0.00750"});
    let outcome = outcome(
        &server,
        &*client,
        &sms,
        ResponseTemplate::new(201).set_body_json(created),
    )
    .await;
    assert_eq!(
        outcome,
        SendOutcome::Accepted {
            provider_message_id: TWILIO_SID.into(),
            price: Some(Price {
                micros: 7_500,
                currency: "USD".into()
            })
        }
    );

    let request = only_request(&server).await;
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(
        request.url.path(),
        "/2010-04-01/Accounts/AC123/Messages.json"
    );
    let basic = base64::engine::general_purpose::STANDARD.encode("AC123:secret-token");
    assert_eq!(header(&request, "authorization"), format!("Basic {basic}"));
    assert!(header(&request, "content-type").starts_with("application/x-www-form-urlencoded"));
    let form = form(&request);
    assert_eq!(form["To"], "+14155550100");
    assert_eq!(form["From"], "+15005550006");
    assert_eq!(form["Body"], sms.body);
    assert_eq!(
        form["StatusCallback"],
        format!("https://api.example.com/callbacks/twilio?p=prv_1&message_id={MESSAGE_ID}")
    );
}

#[tokio::test]
async fn twilio_whatsapp_uses_prefixed_addresses_and_the_messaging_service() {
    let server = MockServer::start().await;
    let (config, creds) = twilio_config(&server, json!({"messaging_service_sid": "MG42"}));
    let client = client(ProviderKind::Twilio, config, creds);
    let wa = message(Channel::Whatsapp, "+14155550100");
    let accepted = json!({"sid": TWILIO_SID, "status": "accepted", "from": null, "price": null});
    let outcome = outcome(
        &server,
        &*client,
        &wa,
        ResponseTemplate::new(201).set_body_json(accepted),
    )
    .await;
    assert_eq!(
        outcome,
        SendOutcome::Accepted {
            provider_message_id: TWILIO_SID.into(),
            price: None
        }
    );
    let form = form(&only_request(&server).await);
    assert_eq!(form["To"], "whatsapp:+14155550100");
    assert_eq!(form["MessagingServiceSid"], "MG42");
    assert!(!form.contains_key("From") && !form.contains_key("StatusCallback"));
}

#[tokio::test]
async fn twilio_voice_places_a_call_that_says_the_escaped_body() {
    let server = MockServer::start().await;
    let (config, creds) = twilio_config(&server, json!({"from": "+15005550006"}));
    let client = client(ProviderKind::Twilio, config, creds);
    let call = message(Channel::Voice, "+14155550100");
    let queued = json!({"sid": "CA0123456789abcdef0123456789abcdef", "status": "queued"});
    let outcome = outcome(
        &server,
        &*client,
        &call,
        ResponseTemplate::new(201).set_body_json(queued),
    )
    .await;
    assert_accepted(&outcome, "CA0123456789abcdef0123456789abcdef");
    let request = only_request(&server).await;
    assert_eq!(request.url.path(), "/2010-04-01/Accounts/AC123/Calls.json");
    let form = form(&request);
    assert_eq!(
        form["Twiml"],
        "<Response><Say>Your code is 1234 &amp; it expires &lt;soon&gt;</Say></Response>"
    );
    assert_eq!(form["From"], "+15005550006");
}

#[tokio::test]
async fn twilio_outcomes_follow_status_and_error_code() {
    let server = MockServer::start().await;
    let (config, creds) = twilio_config(&server, json!({"from": "+15005550006"}));
    let client = client(ProviderKind::Twilio, config.clone(), creds.clone());
    let sms = message(Channel::Sms, "+14155550100");
    let error = |status: u16, code: u32, text: &str| {
        ResponseTemplate::new(status)
            .set_body_json(json!({"code": code, "message": text, "status": status}))
    };

    let invalid = error(400, 21211, "The 'To' number is not a valid phone number.");
    assert_permanent(&outcome(&server, &*client, &sms, invalid).await, "21211");
    let opted_out = error(400, 21610, "Attempt to send to unsubscribed recipient");
    assert_permanent(&outcome(&server, &*client, &sms, opted_out).await, "21610");
    let busy = error(429, 20429, "Too Many Requests").insert_header("Retry-After", "3");
    assert_rate_limited(
        &outcome(&server, &*client, &sms, busy).await,
        "20429",
        Some(3),
    );
    let down = error(503, 20503, "Service unavailable");
    assert_transient(&outcome(&server, &*client, &sms, down).await, "20503");
    let bare = ResponseTemplate::new(502);
    assert_transient(&outcome(&server, &*client, &sms, bare).await, "HTTP_502");

    let impatient = impatient_client(ProviderKind::Twilio, config, creds);
    let slow = too_slow(ResponseTemplate::new(201).set_body_json(json!({"sid": TWILIO_SID})));
    assert_ambiguous(&outcome(&server, &*impatient, &sms, slow).await);
}
