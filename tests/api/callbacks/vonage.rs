//! Vonage signed delivery receipts: `sig` = upper-case hex HMAC-SHA256(signature secret,
//! `&name=value` for every other parameter sorted by name, `&` and `=` in values replaced by
//! `_`), as a form and as JSON.

use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{
    DELIVERED, FAILED, PHONE, Tenant, accepted, create_provider, events, message, post_callback,
    send_and_deliver, sms, tenant,
};
use crate::helpers::{TestApp, code, json, spawn_app};

const SECRET: &str = "vonage-signature-secret";
const VONAGE_ID: &str = "0A0000000123ABCD1";

struct Setup {
    app: TestApp,
    tenant: Tenant,
    provider_id: String,
    _vonage: MockServer,
}

async fn setup() -> Setup {
    let vonage = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "message-count": "1",
            "messages": [{ "to": "14155552671", "message-id": VONAGE_ID, "status": "0",
                "remaining-balance": "3.14159265", "message-price": "0.03330000", "network": "310004" }]
        })))
        .mount(&vonage)
        .await;
    let app = spawn_app().await;
    let tenant = tenant();
    let provider_id = create_provider(
        &app,
        &tenant,
        json!({
            "name": "vonage", "kind": "VONAGE", "channels": ["SMS"],
            "config": { "from": "AcmeTix", "base_url": vonage.uri() },
            "credentials": { "api_key": "abcd1234", "api_secret": "s3cr3t", "signature_secret": SECRET }
        }),
    )
    .await;
    Setup {
        app,
        tenant,
        provider_id,
        _vonage: vonage,
    }
}

fn signed(params: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut sorted: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.replace(['&', '='], "_")))
        .collect();
    sorted.sort();
    let base: String = sorted.iter().map(|(k, v)| format!("&{k}={v}")).collect();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(base.as_bytes());
    let sig = hex::encode_upper(mac.finalize().into_bytes());
    let mut out: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    out.push(("sig".into(), sig));
    out
}

fn receipt<'a>(message_id: &'a str, status: &'a str, err: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("msisdn", "14155552671"),
        ("to", "AcmeTix"),
        ("network-code", "310004"),
        ("messageId", VONAGE_ID),
        ("price", "0.04210000"),
        ("status", status),
        ("scts", "2601010000"),
        ("err-code", err),
        ("api-key", "abcd1234"),
        ("client-ref", message_id),
        ("message-timestamp", "2026-01-01 00:00:00"),
        ("timestamp", "1767225600"),
        ("nonce", "a3c5e7f9-note=&this"),
    ]
}

async fn post_form(s: &Setup, params: &[(String, String)]) -> reqwest::Response {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    post_callback(
        &s.app,
        &format!("/cpaas/v1/provider-callbacks/vonage/{}", s.provider_id),
        "application/x-www-form-urlencoded",
        &[],
        body,
    )
    .await
}

#[actix_web::test]
async fn a_signed_form_receipt_delivers_the_message_with_its_price() {
    let s = setup().await;
    let id = send_and_deliver(&s.app, &s.tenant, sms(PHONE)).await;
    let params = signed(&receipt(&id, "delivered", "0"));
    let first = accepted(post_form(&s, &params).await).await;
    assert_eq!(first["duplicate"], false);
    let m = message(&s.app, &s.tenant, &id).await;
    assert_eq!(m["status"], "DELIVERED");
    // Vonage reports its price in the account's currency (EUR here), converted by the price
    // table's rate (1.08).
    assert_eq!(m["cost_currency"], "EUR", "{m}");
    assert_eq!(m["cost_amount"], 0.0421, "{m}");
    assert_eq!(m["cost_usd"], 0.045468, "{m}");
    let replay = accepted(post_form(&s, &params).await).await;
    assert_eq!(replay["duplicate"], true);
    assert_eq!(events(&s.app, DELIVERED).await, 1);
}

#[actix_web::test]
async fn a_signed_json_receipt_reports_a_failure_with_vonages_error_code() {
    let s = setup().await;
    let id = send_and_deliver(&s.app, &s.tenant, sms(PHONE)).await;
    let params = signed(&receipt(&id, "failed", "6"));
    let object: Map<String, Value> = params
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let res = post_callback(
        &s.app,
        &format!("/cpaas/v1/provider-callbacks/vonage/{}", s.provider_id),
        "application/json",
        &[],
        serde_json::to_vec(&object).unwrap(),
    )
    .await;
    accepted(res).await;
    let m = message(&s.app, &s.tenant, &id).await;
    assert_eq!(m["status"], "UNDELIVERED");
    assert_eq!(m["error"]["code"], "6");
    assert_eq!(events(&s.app, FAILED).await, 1);
}

#[actix_web::test]
async fn a_receipt_with_a_wrong_or_missing_sig_is_refused() {
    let s = setup().await;
    let id = send_and_deliver(&s.app, &s.tenant, sms(PHONE)).await;
    let mut forged = signed(&receipt(&id, "delivered", "0"));
    if let Some(status) = forged.iter_mut().find(|(k, _)| k == "price") {
        status.1 = "0.00000001".into();
    }
    let unsigned: Vec<(String, String)> = receipt(&id, "delivered", "0")
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for params in [forged, unsigned] {
        let (status, body) = json(post_form(&s, &params).await).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(code(&body), "ERR_CPAAS_INVALID_SIGNATURE");
    }
    assert_eq!(message(&s.app, &s.tenant, &id).await["status"], "SENT");
}
