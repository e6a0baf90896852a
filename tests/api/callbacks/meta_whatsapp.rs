//! Meta WhatsApp webhooks: the hub handshake, statuses, inbound messages and template status
//! updates, signed as Meta signs them: `sha256=` + hex HMAC-SHA256(app secret, raw body).

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{
    DELIVERED, PHONE, SMS_INBOUND, Tenant, accepted, create_provider, events, message, opt_out_of,
    post_callback, send_and_deliver, tenant,
};
use crate::helpers::{TestApp, code, json, spawn_app};

const APP_SECRET: &str = "meta-app-secret";
const VERIFY_TOKEN: &str = "meta-verify-token";
const PHONE_NUMBER_ID: &str = "106540352242922";
const WABA_ID: &str = "102290129340398";
const WAMID: &str = "wamid.HBgLMTQxNTU1NTI2NzEVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA";

fn signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

struct Setup {
    app: TestApp,
    tenant: Tenant,
    provider_id: String,
    _graph: MockServer,
}

async fn setup() -> Setup {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PHONE_NUMBER_ID}/messages")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": "14155552671", "wa_id": "14155552671"}],
            "messages": [{"id": WAMID}]
        })))
        .mount(&graph)
        .await;
    let app = spawn_app().await;
    let tenant = tenant();
    let provider_id = create_provider(
        &app,
        &tenant,
        json!({
            "name": "meta", "kind": "META_WHATSAPP", "channels": ["WHATSAPP"],
            "config": { "phone_number_id": PHONE_NUMBER_ID, "waba_id": WABA_ID, "base_url": graph.uri() },
            "credentials": { "access_token": "EAAG", "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN }
        }),
    )
    .await;
    Setup {
        app,
        tenant,
        provider_id,
        _graph: graph,
    }
}

fn notification(field: &str, value: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": WABA_ID, "time": 1767225600, "changes": [{ "field": field, "value": value }] }]
    })
}

fn metadata() -> Value {
    json!({ "display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID })
}

async fn post(s: &Setup, body: &Value, signed: bool) -> reqwest::Response {
    let bytes = serde_json::to_vec(body).unwrap();
    let headers = if signed {
        vec![("X-Hub-Signature-256", signature(&bytes))]
    } else {
        vec![("X-Hub-Signature-256", signature(b"something else"))]
    };
    post_callback(
        &s.app,
        &format!(
            "/cpaas/v1/provider-callbacks/meta-whatsapp/{}",
            s.provider_id
        ),
        "application/json",
        &headers,
        bytes,
    )
    .await
}

#[actix_web::test]
async fn the_hub_handshake_echoes_the_challenge_only_for_the_verify_token() {
    let s = setup().await;
    let url = |token: &str| {
        s.app.url(&format!(
            "/cpaas/v1/provider-callbacks/meta-whatsapp/{}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444",
            s.provider_id
        ))
    };
    let ok = s.app.client.get(url(VERIFY_TOKEN)).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        ok.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(ok.text().await.unwrap(), "1158201444");

    let (status, body) = json(s.app.client.get(url("guess")).send().await.unwrap()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(code(&body), "ERR_CPAAS_FORBIDDEN");

    let twilio = create_provider(
        &s.app,
        &s.tenant,
        json!({
            "name": "twilio", "kind": "TWILIO", "channels": ["SMS"], "config": { "from": "+15005550006" },
            "credentials": { "account_sid": "AC1", "auth_token": "t" }
        }),
    )
    .await;
    let res = s
        .app
        .client
        .get(s.app.url(&format!(
            "/cpaas/v1/provider-callbacks/meta-whatsapp/{twilio}?hub.mode=subscribe&hub.verify_token=t&hub.challenge=1"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[actix_web::test]
async fn statuses_move_the_message_forward_by_our_echoed_id_and_a_bad_signature_is_refused() {
    let s = setup().await;
    let id = send_and_deliver(
        &s.app,
        &s.tenant,
        json!({ "channel": "WHATSAPP", "recipient": PHONE, "message_body": "Your table is ready" }),
    )
    .await;
    let status = |status: &str| {
        notification(
            "messages",
            json!({
                "messaging_product": "whatsapp",
                "metadata": metadata(),
                "statuses": [{
                    "id": WAMID, "status": status, "timestamp": "1767225660", "recipient_id": "14155552671",
                    "biz_opaque_callback_data": id,
                    "pricing": { "billable": true, "pricing_model": "CBP", "category": "service" }
                }]
            }),
        )
    };
    let (code_status, body) = json(post(&s, &status("delivered"), false).await).await;
    assert_eq!(code_status, 401, "{body}");
    assert_eq!(code(&body), "ERR_CPAAS_INVALID_SIGNATURE");
    assert_eq!(message(&s.app, &s.tenant, &id).await["status"], "SENT");

    accepted(post(&s, &status("delivered"), true).await).await;
    let m = message(&s.app, &s.tenant, &id).await;
    assert_eq!(m["status"], "DELIVERED");
    assert_eq!(m["delivered_at"], "2026-01-01T00:01:00.000Z");
    accepted(post(&s, &status("read"), true).await).await;
    let m = message(&s.app, &s.tenant, &id).await;
    assert_eq!(m["status"], "READ");
    assert!(m["read_at"].is_string());
    let again = accepted(post(&s, &status("delivered"), true).await).await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(message(&s.app, &s.tenant, &id).await["status"], "READ");
    assert_eq!(events(&s.app, DELIVERED).await, 1);
}

#[actix_web::test]
async fn an_inbound_whatsapp_stop_opts_the_sender_out_of_whatsapp_only() {
    let s = setup().await;
    let body = notification(
        "messages",
        json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "contacts": [{ "profile": { "name": "Ana" }, "wa_id": "14155552671" }],
            "messages": [{
                "from": "14155552671", "id": "wamid.inbound1", "timestamp": "1767225600",
                "type": "text", "text": { "body": "stop" }
            }]
        }),
    );
    accepted(post(&s, &body, true).await).await;
    let whatsapp = opt_out_of(&s.app, &s.tenant, PHONE, "WHATSAPP").await;
    assert_eq!(whatsapp["opted_out"], true);
    assert_eq!(whatsapp["opt_out"]["source"], "STOP_KEYWORD");
    assert_eq!(
        opt_out_of(&s.app, &s.tenant, PHONE, "SMS").await["opted_out"],
        false
    );
    assert_eq!(events(&s.app, SMS_INBOUND).await, 1);
}

#[actix_web::test]
async fn a_template_status_update_changes_the_matching_template_and_bumps_its_version() {
    let s = setup().await;
    let (status, created) = json(
        s.app
            .post(
                "/cpaas/v1/templates",
                &s.tenant.sender,
                &json!({
                    "name": "table-ready", "channel": "WHATSAPP", "locale": "en_US",
                    "body": "Hi {{ name }}, your table is ready.", "status": "PENDING",
                    "provider_template_name": "table_ready"
                }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let template_id = created["data"]["id"].as_str().unwrap().to_owned();
    let update = |event: &str| {
        notification(
            "message_template_status_update",
            json!({
                "event": event, "message_template_id": 594425479261596u64,
                "message_template_name": "table_ready", "message_template_language": "en_US",
                "reason": "NONE"
            }),
        )
    };
    accepted(post(&s, &update("APPROVED"), true).await).await;
    let get = || async {
        json(
            s.app
                .get(
                    &format!("/cpaas/v1/templates/{template_id}"),
                    &s.tenant.sender,
                )
                .await,
        )
        .await
        .1["data"]
            .clone()
    };
    let t = get().await;
    assert_eq!(t["status"], "APPROVED");
    assert_eq!(t["version"], 2);
    let replay = accepted(post(&s, &update("APPROVED"), true).await).await;
    assert_eq!(replay["duplicate"], true);
    assert_eq!(get().await["version"], 2);

    let mut paused = update("PAUSED");
    paused["entry"][0]["time"] = json!(1767229200);
    accepted(post(&s, &paused, true).await).await;
    let t = get().await;
    assert_eq!(t["status"], "PAUSED");
    assert_eq!(t["version"], 3);
}
