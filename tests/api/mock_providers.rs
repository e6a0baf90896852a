//! `cpaas mock-providers` in-process, driven by the real adapters: realistic answers, the
//! control endpoints, and fail / rate-limit / timeout behaviours as the adapters classify them.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use cpaas::domain::{Channel, ProviderKind};
use cpaas::providers::{ProviderClient, SendOutcome};
use serde_json::{Value, json};

use crate::provider_wire::{
    MESSAGE_ID, assert_ambiguous, assert_permanent, assert_rate_limited, assert_transient, client,
    impatient_client, message,
};

struct Mock {
    base: String,
    http: reqwest::Client,
}

impl Mock {
    fn start() -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = cpaas::mock_providers::mock_server(listener).unwrap();
        actix_web::rt::spawn(server);
        Mock {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        }
    }

    async fn behave(&self, behaviour: Value) {
        let response = self
            .http
            .post(format!("{}/_mock/behaviour", self.base))
            .json(&behaviour)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    fn twilio(&self) -> Arc<dyn ProviderClient> {
        client(
            ProviderKind::Twilio,
            json!({"from": "+15005550006", "base_url": self.base}),
            json!({"account_sid": "AC0123", "auth_token": "tok"}),
        )
    }
}

fn sid(outcome: &SendOutcome) -> String {
    match outcome {
        SendOutcome::Accepted {
            provider_message_id,
            ..
        } => provider_message_id.clone(),
        other => panic!("expected ACCEPTED, got {other:?}"),
    }
}

#[actix_web::test]
async fn twilio_through_the_mock_is_accepted_then_fails_as_told_then_recovers() {
    let mock = Mock::start();
    let twilio = mock.twilio();
    let mut sms = message(Channel::Sms, "+14155550100");
    sms.status_callback_url = Some("https://api.example.com/callbacks/twilio".into());

    let first = sid(&twilio.send(&sms).await);
    assert!(first.starts_with("SM") && first.len() == 34, "{first}");
    assert!(first[2..].bytes().all(|b| b.is_ascii_hexdigit()));

    mock.behave(json!({"kind": "twilio", "mode": "fail_5xx", "count": 1}))
        .await;
    assert_transient(&twilio.send(&sms).await, "20500");
    mock.behave(json!({"kind": "*", "mode": "fail_4xx", "count": 1}))
        .await;
    assert_permanent(&twilio.send(&sms).await, "21211");
    mock.behave(json!({"kind": "twilio", "mode": "rate_limit", "count": 1}))
        .await;
    assert_rate_limited(&twilio.send(&sms).await, "20429", Some(1));
    sid(&twilio.send(&sms).await);

    let listed = mock.get("/_mock/requests?kind=twilio").await;
    assert_eq!(listed["count"], 5);
    let first_seen = &listed["requests"][0];
    assert_eq!(first_seen["message_id"], MESSAGE_ID);
    assert_eq!(first_seen["provider_message_id"], first);
    assert_eq!(
        first_seen["path"],
        "/2010-04-01/Accounts/AC0123/Messages.json"
    );
    let outcomes: Vec<&str> = listed["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["ok", "fail_5xx", "fail_4xx", "rate_limited", "ok"]
    );

    let stats = mock.get("/_mock/stats").await;
    assert_eq!(stats["kinds"]["twilio"]["requests"], 5);
    assert_eq!(stats["kinds"]["twilio"]["ok"], 2);
    assert_eq!(stats["total"], 5);
    // The wildcard's count applied to every kind: the next Vonage request fails once.
    let behaviours = mock.get("/_mock/behaviour").await;
    assert_eq!(behaviours["behaviours"]["vonage"]["mode"], "fail_4xx");

    let cleared = mock
        .http
        .delete(format!("{}/_mock/requests", mock.base))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 204);
    assert_eq!(mock.get("/_mock/stats").await["total"], 0);
}

#[actix_web::test]
async fn a_mock_that_holds_the_request_past_the_client_timeout_is_ambiguous() {
    let mock = Mock::start();
    let whatsapp = impatient_client(
        ProviderKind::MetaWhatsapp,
        json!({"phone_number_id": "1098765", "waba_id": "1", "base_url": mock.base}),
        json!({"access_token": "EAAG", "app_secret": "s", "verify_token": "v"}),
    );
    let wa = message(Channel::Whatsapp, "+14155550100");
    mock.behave(json!({"kind": "meta_whatsapp", "mode": "timeout", "delay_ms": 2000, "count": 1}))
        .await;
    assert_ambiguous(&whatsapp.send(&wa).await);
    let id = sid(&whatsapp.send(&wa).await);
    assert!(id.starts_with("wamid."), "{id}");

    mock.behave(json!({"kind": "meta_whatsapp", "mode": "rate_limit"}))
        .await;
    assert_rate_limited(&whatsapp.send(&wa).await, "130429", None);
    let requests = mock.get("/_mock/requests?kind=meta_whatsapp").await;
    assert_eq!(requests["requests"][0]["outcome"], "timed_out");
    assert_eq!(requests["requests"][0]["message_id"], MESSAGE_ID);
}

#[actix_web::test]
async fn fcm_through_the_mock_fetches_one_token_and_reports_unregistered_devices() {
    let mock = Mock::start();
    let pem = std::fs::read_to_string(crate::helpers::key_path()).unwrap();
    let fcm = client(
        ProviderKind::Fcm,
        json!({"project_id": "acme-push", "base_url": mock.base}),
        json!({"service_account": {"client_email": "svc@acme-push.iam.gserviceaccount.com",
            "private_key": pem, "token_uri": format!("{}/token", mock.base)}}),
    );
    let push = message(Channel::Push, "device-token-1");
    let name = sid(&fcm.send(&push).await);
    assert!(name.starts_with("projects/acme-push/messages/0:"), "{name}");
    mock.behave(json!({"kind": "fcm", "mode": "fail_4xx", "count": 1}))
        .await;
    assert_permanent(&fcm.send(&push).await, "UNREGISTERED");
    mock.behave(json!({"kind": "fcm", "mode": "rate_limit", "count": 1}))
        .await;
    assert_rate_limited(&fcm.send(&push).await, "QUOTA_EXCEEDED", Some(1));

    let stats = mock.get("/_mock/stats").await;
    assert_eq!(stats["kinds"]["fcm_token"]["requests"], 1);
    assert_eq!(stats["kinds"]["fcm"]["requests"], 3);
}

#[actix_web::test]
async fn a_counted_failure_hits_exactly_that_many_of_many_concurrent_sends() {
    let mock = Mock::start();
    let vonage = client(
        ProviderKind::Vonage,
        json!({"from": "Acme", "base_url": mock.base}),
        json!({"api_key": "k", "api_secret": "s", "signature_secret": "x"}),
    );
    mock.behave(json!({"kind": "vonage", "mode": "fail_5xx", "count": 100}))
        .await;
    let sms = message(Channel::Sms, "+447700900000");
    let sends = (0..400).map(|_| {
        let (vonage, sms) = (vonage.clone(), sms.clone());
        async move { vonage.send(&sms).await }
    });
    let outcomes = tokio::time::timeout(
        Duration::from_secs(60),
        futures_util::future::join_all(sends),
    )
    .await
    .expect("400 sends in time");
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o, SendOutcome::TransientFailure { code, .. } if code == "5"))
        .count();
    let accepted = outcomes
        .iter()
        .filter(|o| matches!(o, SendOutcome::Accepted { .. }))
        .count();
    assert_eq!((failed, accepted), (100, 300));
    let stats = mock.get("/_mock/stats").await;
    assert_eq!(stats["kinds"]["vonage"]["fail_5xx"], 100);
    assert_eq!(stats["kinds"]["vonage"]["ok"], 300);
}

#[actix_web::test]
async fn every_adapter_probe_is_answered_by_the_mock_and_fails_when_told() {
    let mock = Mock::start();
    let pem = std::fs::read_to_string(crate::helpers::key_path()).unwrap();
    let aws = json!({"access_key_id": "AKIDEXAMPLE", "secret_access_key": "secret"});
    let clients = [
        mock.twilio(),
        client(
            ProviderKind::MetaWhatsapp,
            json!({"phone_number_id": "1098765", "waba_id": "2233", "base_url": mock.base}),
            json!({"access_token": "EAAG", "app_secret": "s", "verify_token": "v"}),
        ),
        client(
            ProviderKind::Vonage,
            json!({"from": "Acme", "base_url": mock.base}),
            json!({"api_key": "k", "api_secret": "s", "signature_secret": "x"}),
        ),
        client(
            ProviderKind::AwsSns,
            json!({"region": "us-east-1", "base_url": mock.base}),
            aws.clone(),
        ),
        client(
            ProviderKind::Sendgrid,
            json!({"from_email": "noreply@acme.example", "base_url": mock.base}),
            json!({"api_key": "SG.key"}),
        ),
        client(
            ProviderKind::AwsSes,
            json!({"region": "us-east-1", "from_email": "noreply@acme.example", "base_url": mock.base}),
            aws,
        ),
        client(
            ProviderKind::Fcm,
            json!({"project_id": "acme-push", "base_url": mock.base}),
            json!({"service_account": {"client_email": "svc@acme-push.iam.gserviceaccount.com",
                "private_key": pem, "token_uri": format!("{}/token", mock.base)}}),
        ),
    ];
    for client in &clients {
        assert_eq!(client.probe().await, Ok(()), "{:?}", client.kind());
    }
    mock.behave(json!({"kind": "*", "mode": "fail_5xx"})).await;
    for client in &clients {
        assert!(client.probe().await.is_err(), "{:?}", client.kind());
    }
    let stats = mock.get("/_mock/stats").await;
    for kind in [
        "twilio",
        "meta_whatsapp",
        "vonage",
        "aws_sns",
        "sendgrid",
        "aws_ses",
    ] {
        assert_eq!(stats["kinds"][kind]["requests"], 2, "{kind}: {stats}");
    }
    assert_eq!(stats["kinds"]["fcm_token"]["requests"], 2);
}

#[actix_web::test]
async fn the_template_sync_pages_through_the_mock_catalogue() {
    use crate::helpers::{INTERNAL_KEY, json as read};

    let mock = Mock::start();
    let mut templates: Vec<Value> = (0..129)
        .map(|n| json!({"name": format!("bulk_{n}"), "language": "en_US", "status": "APPROVED"}))
        .collect();
    templates.push(json!({"name": "table_ready", "language": "en_US", "status": "REJECTED"}));
    let put = mock
        .http
        .put(format!("{}/_mock/templates", mock.base))
        .json(&json!({ "templates": templates }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);

    let app = crate::helpers::spawn_app().await;
    let tenant = crate::callbacks::tenant();
    crate::callbacks::create_provider(
        &app,
        &tenant,
        json!({
            "name": "meta", "kind": "META_WHATSAPP", "channels": ["WHATSAPP"],
            "config": { "phone_number_id": "1098765", "waba_id": "2233", "base_url": mock.base },
            "credentials": { "access_token": "EAAG", "app_secret": "s", "verify_token": "v" }
        }),
    )
    .await;
    let (status, created) = read(
        app.post(
            "/cpaas/v1/templates",
            &tenant.sender,
            &json!({"name": "table-ready", "channel": "WHATSAPP", "locale": "en_US",
                    "body": "Hi {{ name }}", "status": "PENDING",
                    "provider_template_name": "table_ready"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let res = app
        .client
        .post(app.url("/cpaas/v1/_internal/sync-templates"))
        .header("x-internal-api-key", INTERNAL_KEY)
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, 200, "{body}");
    let report = &body["data"];
    assert_eq!(report["pages"], 2, "{report}");
    assert_eq!(report["templates_seen"], 130);
    assert_eq!(report["updated"], 1);
    assert_eq!(report["errors"], 0);
    let id = created["data"]["id"].as_str().unwrap();
    let (_, template) = read(
        app.get(&format!("/cpaas/v1/templates/{id}"), &tenant.sender)
            .await,
    )
    .await;
    assert_eq!(template["data"]["status"], "REJECTED");
}
