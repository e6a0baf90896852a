//! SendGrid's signed Event Webhook: an ECDSA P-256 key made here, its public key stored as the
//! provider's `webhook_public_key` (base64 DER SubjectPublicKeyInfo), and each batch signed
//! over the timestamp header followed by the raw body.

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{
    DELIVERED, FAILED, Tenant, accepted, create_provider, events, message, opt_out_of,
    post_callback, send_and_deliver, tenant,
};
use crate::helpers::{TestApp, code, json, spawn_app};

const X_MESSAGE_ID: &str = "W86EgYT6SQKk0lRflfLRsA";
const RECIPIENT: &str = "guest@example.com";

struct Setup {
    app: TestApp,
    tenant: Tenant,
    provider_id: String,
    key: EcdsaKeyPair,
    _sendgrid: MockServer,
}

async fn setup() -> Setup {
    let sendgrid = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(202).insert_header("X-Message-Id", X_MESSAGE_ID))
        .mount(&sendgrid)
        .await;
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let public: PublicKeyX509Der = key.public_key().as_der().unwrap();
    let app = spawn_app().await;
    let tenant = tenant();
    let provider_id = create_provider(
        &app,
        &tenant,
        json!({
            "name": "sendgrid", "kind": "SENDGRID", "channels": ["EMAIL"],
            "config": { "from_email": "events@example.com", "base_url": sendgrid.uri() },
            "credentials": { "api_key": "SG.key", "webhook_public_key": STANDARD.encode(public.as_ref()) }
        }),
    )
    .await;
    Setup {
        app,
        tenant,
        provider_id,
        key,
        _sendgrid: sendgrid,
    }
}

async fn sent(s: &Setup) -> String {
    send_and_deliver(
        &s.app,
        &s.tenant,
        json!({ "channel": "EMAIL", "recipient": RECIPIENT, "subject": "Your tickets", "message_body": "Enjoy the show" }),
    )
    .await
}

fn event(id: &str, kind: &str, extra: Value) -> Value {
    let mut e = json!({
        "email": RECIPIENT, "timestamp": 1767225600, "event": kind,
        "sg_event_id": format!("sg-event-{kind}-{}", uuid::Uuid::new_v4().simple()),
        "sg_message_id": format!("{X_MESSAGE_ID}.filterdrecv-5bd5d8b9-1-0"),
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "message_id": id, "tenant_id": "ignored"
    });
    if let (Some(e), Some(extra)) = (e.as_object_mut(), extra.as_object()) {
        e.extend(extra.clone());
    }
    e
}

/// Posts a batch signed at `timestamp` (seconds); `tamper` changes the body after signing.
async fn post(s: &Setup, events: &[Value], timestamp: i64, tamper: bool) -> reqwest::Response {
    let body = serde_json::to_vec(events).unwrap();
    let mut signed = timestamp.to_string().into_bytes();
    signed.extend_from_slice(&body);
    let signature = s.key.sign(&SystemRandom::new(), &signed).unwrap();
    let body = if tamper {
        String::from_utf8(body)
            .unwrap()
            .replace("delivered", "bounce")
            .into_bytes()
    } else {
        body
    };
    post_callback(
        &s.app,
        &format!("/cpaas/v1/provider-callbacks/sendgrid/{}", s.provider_id),
        "application/json",
        &[
            (
                "X-Twilio-Email-Event-Webhook-Signature",
                STANDARD.encode(signature.as_ref()),
            ),
            (
                "X-Twilio-Email-Event-Webhook-Timestamp",
                timestamp.to_string(),
            ),
        ],
        body,
    )
    .await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[actix_web::test]
async fn a_signed_batch_is_applied_event_by_event_and_a_replay_changes_nothing() {
    let s = setup().await;
    let id = sent(&s).await;
    let batch = [
        event(&id, "processed", json!({})),
        event(&id, "delivered", json!({ "response": "250 OK" })),
        event(&id, "open", json!({ "useragent": "Mozilla/5.0" })),
    ];
    let first = accepted(post(&s, &batch, now(), false).await).await;
    assert_eq!(first["duplicate"], false);
    let m = message(&s.app, &s.tenant, &id).await;
    assert_eq!(m["status"], "READ");
    assert!(m["delivered_at"].is_string());
    assert_eq!(events(&s.app, DELIVERED).await, 1);

    // SendGrid retries with a new signature time; the events are the same.
    let replay = accepted(post(&s, &batch, now() - 10, false).await).await;
    assert_eq!(replay["duplicate"], true);
    // A batch of another shape holding an event already applied changes nothing either.
    let regrouped = accepted(post(&s, &batch[1..2], now(), false).await).await;
    assert_eq!(regrouped["duplicate"], true);
    assert_eq!(events(&s.app, DELIVERED).await, 1);
    assert_eq!(message(&s.app, &s.tenant, &id).await["status"], "READ");
}

#[actix_web::test]
async fn a_hard_bounce_fails_delivery_and_opts_the_address_out_while_a_spam_report_records_a_complaint()
 {
    let s = setup().await;
    let id = sent(&s).await;
    let bounce = event(
        &id,
        "bounce",
        json!({ "type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 The email account does not exist",
                "bounce_classification": "Invalid Address" }),
    );
    accepted(post(&s, &[bounce], now(), false).await).await;
    let m = message(&s.app, &s.tenant, &id).await;
    assert_eq!(m["status"], "UNDELIVERED");
    assert_eq!(m["error"]["code"], "5.1.1");
    assert_eq!(events(&s.app, FAILED).await, 1);
    let check = opt_out_of(&s.app, &s.tenant, RECIPIENT, "EMAIL").await;
    assert_eq!(check["opt_out"]["source"], "BOUNCE", "{check}");

    let other = "Fan@Example.com";
    let mut spam = event(&id, "spamreport", json!({}));
    spam["email"] = json!(other);
    accepted(post(&s, &[spam], now(), false).await).await;
    let check = opt_out_of(&s.app, &s.tenant, "fan@example.com", "EMAIL").await;
    assert_eq!(check["opt_out"]["source"], "COMPLAINT", "{check}");
}

#[actix_web::test]
async fn a_wrong_signature_a_tampered_body_or_an_old_timestamp_is_refused() {
    let s = setup().await;
    let id = sent(&s).await;
    let batch = [event(&id, "delivered", json!({}))];
    for res in [
        post(&s, &batch, now(), true).await,
        post(&s, &batch, now() - 301, false).await,
        post_callback(
            &s.app,
            &format!("/cpaas/v1/provider-callbacks/sendgrid/{}", s.provider_id),
            "application/json",
            &[],
            serde_json::to_vec(&batch).unwrap(),
        )
        .await,
    ] {
        let (status, body) = json(res).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(code(&body), "ERR_CPAAS_INVALID_SIGNATURE");
    }
    assert_eq!(message(&s.app, &s.tenant, &id).await["status"], "SENT");
}
