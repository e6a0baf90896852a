//! FCM HTTP v1: the service-account token exchange, its cache, and sends.

use cpaas::domain::{Channel, ProviderKind};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

const DEVICE: &str = "fcm-device-token-0123456789";
const SEND_PATH: &str = "/v1/projects/acme-push/messages:send";
const CLIENT_EMAIL: &str = "cpaas@acme-push.iam.gserviceaccount.com";

fn private_pem() -> String {
    std::fs::read_to_string(crate::helpers::key_path()).unwrap()
}

fn fcm_settings(server: &MockServer) -> (Value, Value) {
    (
        json!({"project_id": "acme-push", "base_url": server.uri()}),
        json!({"service_account": {
            "type": "service_account",
            "client_email": CLIENT_EMAIL,
            "private_key": private_pem(),
            "private_key_id": "k1",
            "token_uri": format!("{}/token", server.uri()),
        }}),
    )
}

fn push() -> cpaas::providers::OutboundMessage {
    let mut push = message(Channel::Push, DEVICE);
    push.subject = Some("Acme".into());
    push
}

async fn mount_token(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(response)
        .mount(server)
        .await;
}

fn token_ok(expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        json!({"access_token": "ya29.test-token", "expires_in": expires_in, "token_type": "Bearer"}),
    )
}

fn rpc_error(status: u16, rpc_status: &str, error_code: Option<&str>) -> ResponseTemplate {
    let details = match error_code {
        Some(code) => {
            json!([{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}])
        }
        None => json!([]),
    };
    ResponseTemplate::new(status).set_body_json(json!({"error": {
        "code": status, "message": format!("{rpc_status} happened"), "status": rpc_status,
        "details": details}}))
}

#[tokio::test]
async fn fcm_exchanges_a_signed_assertion_once_and_sends_with_the_cached_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(token_ok(3599))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"name": "projects/acme-push/messages/0:1500415314455276%31bd1c9631bd1c96"}),
        ))
        .expect(2)
        .mount(&server)
        .await;
    let (config, creds) = fcm_settings(&server);
    let client = client(ProviderKind::Fcm, config, creds);
    let push = push();
    for _ in 0..2 {
        assert_accepted(
            &client.send(&push).await,
            "projects/acme-push/messages/0:1500415314455276%31bd1c9631bd1c96",
        );
    }

    let requests = server.received_requests().await.unwrap();
    let token_request = &requests[0];
    let form = form(token_request);
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let public = rsa::RsaPrivateKey::from_pkcs8_pem(&private_pem())
        .unwrap()
        .to_public_key()
        .to_public_key_pem(Default::default())
        .unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[format!("{}/token", server.uri())]);
    validation.set_issuer(&[CLIENT_EMAIL]);
    let assertion = jsonwebtoken::decode::<Value>(
        &form["assertion"],
        &DecodingKey::from_rsa_pem(public.as_bytes()).unwrap(),
        &validation,
    )
    .expect("an assertion signed with the service account key");
    assert_eq!(assertion.header.kid.as_deref(), Some("k1"));
    let claims = assertion.claims;
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/firebase.messaging"
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );

    for send in &requests[1..] {
        assert_eq!(send.url.path(), SEND_PATH);
        assert_eq!(header(send, "authorization"), "Bearer ya29.test-token");
        let body: Value = send.body_json().unwrap();
        assert_eq!(
            body,
            json!({"message": {"token": DEVICE,
                "notification": {"title": "Acme", "body": push.body},
                "data": {"message_id": MESSAGE_ID, "tenant_id": TENANT.to_string()}}})
        );
    }
}

#[tokio::test]
async fn fcm_fetches_a_new_token_when_the_last_one_is_about_to_expire() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(token_ok(30))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(path(SEND_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name": "projects/acme-push/messages/1"})),
        )
        .mount(&server)
        .await;
    let (config, creds) = fcm_settings(&server);
    let client = client(ProviderKind::Fcm, config, creds);
    for _ in 0..2 {
        assert_accepted(&client.send(&push()).await, "projects/acme-push/messages/1");
    }
}

#[tokio::test]
async fn fcm_outcomes_follow_the_fcm_error_code() {
    let server = MockServer::start().await;
    let (config, creds) = fcm_settings(&server);
    let client = client(ProviderKind::Fcm, config.clone(), creds.clone());
    let push = push();
    let send = |response: ResponseTemplate| {
        let (server, client, push) = (&server, client.clone(), push.clone());
        async move {
            server.reset().await;
            mount_token(server, token_ok(3599)).await;
            Mock::given(path(SEND_PATH))
                .respond_with(response)
                .mount(server)
                .await;
            client.send(&push).await
        }
    };
    let gone = rpc_error(404, "NOT_FOUND", Some("UNREGISTERED"));
    assert_permanent(&send(gone).await, "UNREGISTERED");
    let invalid = rpc_error(400, "INVALID_ARGUMENT", Some("INVALID_ARGUMENT"));
    assert_permanent(&send(invalid).await, "INVALID_ARGUMENT");
    let mismatch = rpc_error(403, "PERMISSION_DENIED", Some("SENDER_ID_MISMATCH"));
    assert_permanent(&send(mismatch).await, "SENDER_ID_MISMATCH");
    let quota = rpc_error(429, "RESOURCE_EXHAUSTED", Some("QUOTA_EXCEEDED"))
        .insert_header("Retry-After", "12");
    assert_rate_limited(&send(quota).await, "QUOTA_EXCEEDED", Some(12));
    let unavailable = rpc_error(503, "UNAVAILABLE", Some("UNAVAILABLE"));
    assert_transient(&send(unavailable).await, "UNAVAILABLE");
    assert_transient(&send(rpc_error(500, "INTERNAL", None)).await, "INTERNAL");

    let impatient = impatient_client(ProviderKind::Fcm, config, creds);
    server.reset().await;
    mount_token(&server, token_ok(3599)).await;
    Mock::given(path(SEND_PATH))
        .respond_with(too_slow(
            ResponseTemplate::new(200).set_body_json(json!({"name": "x"})),
        ))
        .mount(&server)
        .await;
    assert_ambiguous(&impatient.send(&push).await);
}

#[tokio::test]
async fn a_failed_token_exchange_sends_nothing_and_is_transient_unless_the_grant_is_refused() {
    let server = MockServer::start().await;
    let (config, creds) = fcm_settings(&server);
    let client = client(ProviderKind::Fcm, config.clone(), creds.clone());
    let push = push();

    mount_token(&server, ResponseTemplate::new(503)).await;
    assert_transient(&client.send(&push).await, "TOKEN_EXCHANGE_FAILED");

    server.reset().await;
    let refused = ResponseTemplate::new(400).set_body_json(
        json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
    );
    mount_token(&server, refused).await;
    assert_permanent(&client.send(&push).await, "TOKEN_INVALID_GRANT");

    // A token endpoint that never answers is not ambiguous: the message itself was not sent.
    server.reset().await;
    mount_token(&server, too_slow(token_ok(3599))).await;
    let impatient = impatient_client(ProviderKind::Fcm, config, creds);
    assert_transient(&impatient.send(&push).await, "TOKEN_EXCHANGE_FAILED");

    let requests = server.received_requests().await.unwrap();
    assert!(
        requests.iter().all(|r| r.url.path() == "/token"),
        "no send was attempted"
    );
}

#[tokio::test]
async fn an_expired_token_is_dropped_so_the_next_send_fetches_another() {
    let server = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(token_ok(3599))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(path(SEND_PATH))
        .respond_with(rpc_error(401, "UNAUTHENTICATED", None))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path(SEND_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name": "projects/acme-push/messages/2"})),
        )
        .mount(&server)
        .await;
    let (config, creds) = fcm_settings(&server);
    let client = client(ProviderKind::Fcm, config, creds);
    assert_transient(&client.send(&push()).await, "UNAUTHENTICATED");
    assert_accepted(&client.send(&push()).await, "projects/acme-push/messages/2");
}

#[tokio::test]
async fn fcm_carries_the_validity_window_as_android_ttl_and_apns_expiration() {
    let server = MockServer::start().await;
    mount_token(&server, token_ok(3599)).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name": "projects/acme-push/messages/0:1"})),
        )
        .mount(&server)
        .await;
    let (config, creds) = fcm_settings(&server);
    let client = client(ProviderKind::Fcm, config, creds);
    let mut push = push();
    push.validity = Some(std::time::Duration::from_secs(600));
    assert_accepted(&client.send(&push).await, "projects/acme-push/messages/0:1");
    let requests = server.received_requests().await.unwrap();
    let sent: Value = serde_json::from_slice(&requests.last().unwrap().body).unwrap();
    assert_eq!(sent["message"]["android"]["ttl"], "600s");
    let expires: i64 = sent["message"]["apns"]["headers"]["apns-expiration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now + 590..=now + 610).contains(&expires),
        "{expires} vs {now}"
    );
}

#[tokio::test]
async fn fcm_sends_a_push_image_as_the_notifications_image() {
    let server = MockServer::start().await;
    mount_token(&server, token_ok(3599)).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name": "projects/acme-push/messages/1"})),
        )
        .mount(&server)
        .await;
    let (config, creds) = fcm_settings(&server);
    let client = client(ProviderKind::Fcm, config, creds);
    let mut push = push();
    push.media = vec![cpaas::domain::media::MediaItem {
        url: "https://tickets.example.com/banner.png".into(),
        content_type: "image/png".into(),
        filename: "banner.png".into(),
    }];
    assert!(matches!(
        client.send(&push).await,
        cpaas::providers::SendOutcome::Accepted { .. }
    ));
    let sent = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&sent.last().unwrap().body).unwrap();
    assert_eq!(
        body["message"]["notification"]["image"], "https://tickets.example.com/banner.png",
        "{body}"
    );
}
