//! SES events through SNS: an RSA key and a self-signed X.509 certificate made here and served
//! by wiremock (the provider's `sns_cert_base_url` lets the test server stand in for
//! `sns.<region>.amazonaws.com`), envelopes signed over SNS's canonical string with SHA1withRSA
//! (SignatureVersion 1) or SHA256withRSA (2).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs8::EncodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{
    DELIVERED, Tenant, accepted, create_provider, events, message, opt_out_of, post_callback,
    send_and_deliver, stored_outcomes, tenant,
};
use crate::helpers::{TestApp, code, json, spawn_app};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-events";
const SES_ID: &str = "0100019a2b3c4d5e-6f708192-a3b4-c5d6-e7f8-091a2b3c4d5e-000000";
const RECIPIENT: &str = "guest@example.com";
const CERT_PATH: &str = "/SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem";
/// DigestInfo prefix of a SHA-1 hash (RFC 8017, section 9.2).
const SHA1_PREFIX: [u8; 15] = [
    0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
];

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    der(0x30, &parts.concat())
}

/// A self-signed X.509 v3 certificate of `key`, as PEM.
fn certificate(key: &RsaPrivateKey) -> String {
    let sha256_with_rsa = seq(&[
        der(
            0x06,
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b],
        ),
        der(0x05, &[]),
    ]);
    let name = seq(&[der(
        0x31,
        &seq(&[
            der(0x06, &[0x55, 0x04, 0x03]),
            der(0x0c, b"sns.amazonaws.com"),
        ]),
    )]);
    let spki = key
        .to_public_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec();
    let tbs = seq(&[
        der(0xa0, &der(0x02, &[2])),
        der(0x02, &[0x01]),
        sha256_with_rsa.clone(),
        name.clone(),
        seq(&[der(0x17, b"250101000000Z"), der(0x17, b"350101000000Z")]),
        name,
        spki,
    ]);
    let signature = key
        .sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(&tbs))
        .unwrap();
    let cert = seq(&[
        tbs,
        sha256_with_rsa,
        der(0x03, &[&[0u8][..], &signature].concat()),
    ]);
    let body = STANDARD.encode(cert);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

struct Setup {
    app: TestApp,
    tenant: Tenant,
    provider_id: String,
    key: RsaPrivateKey,
    aws: MockServer,
}

async fn setup() -> Setup {
    let aws = MockServer::start().await;
    let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    Mock::given(method("POST"))
        .and(path("/v2/email/outbound-emails"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "MessageId": SES_ID })))
        .mount(&aws)
        .await;
    Mock::given(method("GET"))
        .and(path(CERT_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_string(certificate(&key)))
        .mount(&aws)
        .await;
    Mock::given(method("GET"))
        .and(path("/confirm"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<ConfirmSubscriptionResponse/>"))
        .mount(&aws)
        .await;
    let app = spawn_app().await;
    let tenant = tenant();
    let provider_id = create_provider(
        &app,
        &tenant,
        json!({
            "name": "ses", "kind": "AWS_SES", "channels": ["EMAIL"],
            "config": { "region": "us-east-1", "from_email": "events@example.com", "base_url": aws.uri(),
                        "sns_cert_base_url": aws.uri(), "sns_topic_arn": TOPIC },
            "credentials": { "access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG" }
        }),
    )
    .await;
    Setup {
        app,
        tenant,
        provider_id,
        key,
        aws,
    }
}

/// Signs an envelope as SNS does and returns its JSON.
fn signed(s: &Setup, mut envelope: Value, version: &str) -> Vec<u8> {
    let fields: &[&str] = if envelope["Type"] == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let mut canonical = String::new();
    for field in fields {
        if let Some(value) = envelope[*field].as_str() {
            canonical.push_str(&format!("{field}\n{value}\n"));
        }
    }
    let signature = if version == "1" {
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            canonical.as_bytes(),
        );
        let scheme = Pkcs1v15Sign {
            hash_len: Some(20),
            prefix: SHA1_PREFIX.to_vec().into_boxed_slice(),
        };
        s.key.sign(scheme, digest.as_ref()).unwrap()
    } else {
        s.key
            .sign(
                Pkcs1v15Sign::new::<Sha256>(),
                &Sha256::digest(canonical.as_bytes()),
            )
            .unwrap()
    };
    envelope["SignatureVersion"] = json!(version);
    envelope["Signature"] = json!(STANDARD.encode(signature));
    envelope["SigningCertURL"] = json!(format!("{}{CERT_PATH}", s.aws.uri()));
    serde_json::to_vec(&envelope).unwrap()
}

fn notification(id: &str, sns_id: &str, ses_event: Value) -> Value {
    let mut event = ses_event;
    event["mail"] = json!({
        "timestamp": "2026-01-01T00:00:00.000Z", "source": "events@example.com",
        "messageId": SES_ID, "destination": [RECIPIENT],
        "tags": { "message_id": [id], "ses:configuration-set": ["events"] }
    });
    json!({
        "Type": "Notification", "MessageId": sns_id, "TopicArn": TOPIC,
        "Message": event.to_string(), "Timestamp": "2026-01-01T00:00:05.000Z",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
    })
}

async fn post(s: &Setup, body: Vec<u8>) -> reqwest::Response {
    post_callback(
        &s.app,
        &format!("/cpaas/v1/provider-callbacks/aws-sns/{}", s.provider_id),
        "text/plain; charset=UTF-8",
        &[("x-amz-sns-message-type", "Notification".to_owned())],
        body,
    )
    .await
}

async fn sent(s: &Setup) -> String {
    send_and_deliver(
        &s.app,
        &s.tenant,
        json!({ "channel": "EMAIL", "recipient": RECIPIENT, "subject": "Your tickets", "message_body": "Enjoy" }),
    )
    .await
}

#[actix_web::test]
async fn a_subscription_confirmation_is_confirmed_by_a_get_of_its_subscribe_url() {
    let s = setup().await;
    let envelope = json!({
        "Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e2425c464de12884c",
        "TopicArn": TOPIC, "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": format!("{}/confirm?Action=ConfirmSubscription&Token=2336412f", s.aws.uri()),
        "Timestamp": "2026-01-01T00:00:00.000Z"
    });
    accepted(post(&s, signed(&s, envelope, "1")).await).await;
    let confirmations = s
        .aws
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/confirm")
        .count();
    assert_eq!(confirmations, 1);
    assert_eq!(
        stored_outcomes(&s.app).await,
        [Some("CONFIRMED".to_owned())]
    );
}

#[actix_web::test]
async fn a_confirmation_that_fails_is_kept_unprocessed_and_retried_by_the_redelivery() {
    let s = setup().await;
    Mock::given(method("GET"))
        .and(path("/flaky-confirm"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&s.aws)
        .await;
    Mock::given(method("GET"))
        .and(path("/flaky-confirm"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&s.aws)
        .await;
    let envelope = json!({
        "Type": "SubscriptionConfirmation", "MessageId": "2f3e4d5c-0000-4000-8000-000000000001",
        "Token": "tok", "TopicArn": TOPIC, "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": format!("{}/flaky-confirm?Token=tok", s.aws.uri()),
        "Timestamp": "2026-01-01T00:00:00.000Z"
    });
    let body = signed(&s, envelope, "2");
    let (status, answer) = json(post(&s, body.clone()).await).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(code(&answer), "ERR_CPAAS_SERVICE_UNAVAILABLE");
    assert_eq!(
        stored_outcomes(&s.app).await,
        [None],
        "stored, not processed"
    );
    accepted(post(&s, body).await).await;
    assert_eq!(
        stored_outcomes(&s.app).await,
        [Some("CONFIRMED".to_owned())]
    );
}

#[actix_web::test]
async fn a_signed_delivery_notification_delivers_the_email_once() {
    let s = setup().await;
    let id = sent(&s).await;
    let delivery = json!({ "eventType": "Delivery", "delivery": {
        "timestamp": "2026-01-01T00:00:03.000Z", "recipients": [RECIPIENT], "smtpResponse": "250 2.0.0 OK" } });
    for version in ["1", "2"] {
        let body = signed(
            &s,
            notification(&id, "a1b2c3d4-0001", delivery.clone()),
            version,
        );
        let data = accepted(post(&s, body).await).await;
        assert_eq!(
            data["duplicate"],
            version == "2",
            "the same SNS MessageId is a replay"
        );
    }
    let m = message(&s.app, &s.tenant, &id).await;
    assert_eq!(m["status"], "DELIVERED");
    assert_eq!(m["delivered_at"], "2026-01-01T00:00:03.000Z");
    assert_eq!(events(&s.app, DELIVERED).await, 1);
    let certificate_fetches = s
        .aws
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == CERT_PATH)
        .count();
    assert_eq!(certificate_fetches, 1, "the certificate is cached");
}

#[actix_web::test]
async fn a_permanent_bounce_opts_the_address_out_and_a_complaint_records_it() {
    let s = setup().await;
    let id = sent(&s).await;
    let bounce = json!({ "eventType": "Bounce", "bounce": {
        "bounceType": "Permanent", "bounceSubType": "General", "timestamp": "2026-01-01T00:00:04.000Z",
        "bouncedRecipients": [{ "emailAddress": RECIPIENT, "action": "failed", "status": "5.1.1",
            "diagnosticCode": "smtp; 550 5.1.1 user unknown" }] } });
    accepted(post(&s, signed(&s, notification(&id, "b-1", bounce), "2")).await).await;
    let m = message(&s.app, &s.tenant, &id).await;
    assert_eq!(m["status"], "UNDELIVERED");
    assert_eq!(m["error"]["code"], "Permanent:General");
    assert_eq!(
        opt_out_of(&s.app, &s.tenant, RECIPIENT, "EMAIL").await["opt_out"]["source"],
        "BOUNCE"
    );

    let complaint = json!({ "eventType": "Complaint", "complaint": {
        "complainedRecipients": [{ "emailAddress": "Other@Example.com" }], "complaintFeedbackType": "abuse" } });
    accepted(post(&s, signed(&s, notification(&id, "c-1", complaint), "2")).await).await;
    let check = opt_out_of(&s.app, &s.tenant, "other@example.com", "EMAIL").await;
    assert_eq!(check["opt_out"]["source"], "COMPLAINT");
}

#[actix_web::test]
async fn a_bad_signature_a_foreign_certificate_url_or_another_topic_is_refused() {
    let s = setup().await;
    let id = sent(&s).await;
    let delivery =
        json!({ "eventType": "Delivery", "delivery": { "timestamp": "2026-01-01T00:00:03.000Z" } });
    let good = notification(&id, "d-1", delivery);

    let mut tampered: Value = serde_json::from_slice(&signed(&s, good.clone(), "2")).unwrap();
    tampered["Timestamp"] = json!("2026-01-02T00:00:00.000Z");
    let mut foreign: Value = serde_json::from_slice(&signed(&s, good.clone(), "2")).unwrap();
    foreign["SigningCertURL"] = json!(format!("https://evil.example.com{CERT_PATH}"));
    let mut topic = good.clone();
    topic["TopicArn"] = json!("arn:aws:sns:us-east-1:999999999999:someone-elses");
    for body in [
        serde_json::to_vec(&tampered).unwrap(),
        serde_json::to_vec(&foreign).unwrap(),
        signed(&s, topic, "2"),
    ] {
        let (status, body) = json(post(&s, body).await).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(code(&body), "ERR_CPAAS_INVALID_SIGNATURE");
    }
    assert_eq!(message(&s.app, &s.tenant, &id).await["status"], "SENT");
}

#[actix_web::test]
async fn a_certificate_that_cannot_be_fetched_is_not_fetched_again_for_every_notification() {
    let s = setup().await;
    Mock::given(method("GET"))
        .and(path("/broken.pem"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&s.aws)
        .await;
    let id = sent(&s).await;
    let delivery =
        json!({ "eventType": "Delivery", "delivery": { "timestamp": "2026-01-01T00:00:03.000Z" } });
    let mut forged: Value =
        serde_json::from_slice(&signed(&s, notification(&id, "d-9", delivery), "2")).unwrap();
    forged["SigningCertURL"] = json!(format!("{}/broken.pem", s.aws.uri()));
    for _ in 0..5 {
        let res = post(&s, serde_json::to_vec(&forged).unwrap()).await;
        assert_eq!(res.status(), 503);
    }
    let fetches = s
        .aws
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/broken.pem")
        .count();
    assert_eq!(fetches, 1, "a failed fetch is remembered");
    assert_eq!(message(&s.app, &s.tenant, &id).await["status"], "SENT");
}

#[actix_web::test]
async fn a_bounce_naming_no_message_of_this_provider_adds_no_opt_out() {
    let s = setup().await;
    let stranger = "msg_0192f0c1a2b37c4d8e9f00112233aabb";
    let bounce = json!({ "eventType": "Bounce", "bounce": {
        "bounceType": "Permanent", "bounceSubType": "General", "timestamp": "2026-01-01T00:00:04.000Z",
        "bouncedRecipients": [{ "emailAddress": "victim@example.com", "action": "failed",
            "status": "5.1.1" }] } });
    let mut forged = notification(stranger, "b-forged", bounce);
    let mut event: Value = serde_json::from_str(forged["Message"].as_str().unwrap()).unwrap();
    event["mail"]["messageId"] = json!("not-one-of-ours");
    forged["Message"] = json!(event.to_string());
    accepted(post(&s, signed(&s, forged, "2")).await).await;
    let check = opt_out_of(&s.app, &s.tenant, "victim@example.com", "EMAIL").await;
    assert_eq!(check["opted_out"], false, "{check}");
}
