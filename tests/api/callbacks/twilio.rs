//! Twilio status callbacks and inbound SMS, signed as Twilio signs them: Base64(HMAC-SHA1(auth
//! token, URL + the form parameters sorted by name, each name followed by its value)).

use base64::Engine as _;
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{
    DELIVERED, FAILED, PHONE, SMS_INBOUND, Tenant, accepted, create_provider, events, message,
    opt_out_of, post_callback, send_and_deliver, sms, stored_outcomes, tenant,
};
use crate::helpers::{TestApp, code, json, spawn_app};

const AUTH_TOKEN: &str = "twilio-auth-token";
/// `PUBLIC_BASE_URL` of the test app.
const PUBLIC: &str = "http://127.0.0.1:9";
const FORM: &str = "application/x-www-form-urlencoded";

fn sign(url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_owned();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let key = aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        AUTH_TOKEN.as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(aws_lc_rs::hmac::sign(&key, data.as_bytes()))
}

fn form(params: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

struct Setup {
    app: TestApp,
    tenant: Tenant,
    provider_id: String,
    twilio: MockServer,
}

async fn setup() -> Setup {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"/Messages\.json$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "sid": format!("SM{}", Uuid::new_v4().simple()), "status": "queued"
        })))
        .mount(&twilio)
        .await;
    let app = spawn_app().await;
    let tenant = tenant();
    let provider_id = create_provider(
        &app,
        &tenant,
        json!({
            "name": "twilio", "kind": "TWILIO", "channels": ["SMS"],
            "config": { "from": "+15005550006", "base_url": twilio.uri() },
            "credentials": { "account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": AUTH_TOKEN }
        }),
    )
    .await;
    Setup {
        app,
        tenant,
        provider_id,
        twilio,
    }
}

/// Sends an SMS; returns (message id, MessageSid, the StatusCallback URL Twilio was given).
async fn sent(s: &Setup) -> (String, String, String) {
    let id = send_and_deliver(&s.app, &s.tenant, sms(PHONE)).await;
    let m = message(&s.app, &s.tenant, &id).await;
    let sid = m["provider_message_id"].as_str().unwrap().to_owned();
    let request = s.twilio.received_requests().await.unwrap().pop().unwrap();
    let callback = url::form_urlencoded::parse(&request.body)
        .find(|(k, _)| k == "StatusCallback")
        .map(|(_, v)| v.into_owned())
        .expect("the send passes a StatusCallback");
    (id, sid, callback)
}

/// Posts a status callback to the URL Twilio was given, signed for it.
async fn status_callback(
    s: &Setup,
    callback_url: &str,
    params: &[(&str, &str)],
) -> reqwest::Response {
    let path = callback_url.strip_prefix(PUBLIC).unwrap();
    post_callback(
        &s.app,
        path,
        FORM,
        &[("X-Twilio-Signature", sign(callback_url, params))],
        form(params),
    )
    .await
}

#[actix_web::test]
async fn a_signed_delivery_receipt_delivers_the_message_once_and_a_replay_changes_nothing() {
    let s = setup().await;
    let (id, sid, callback) = sent(&s).await;
    assert!(callback.starts_with(&format!(
        "{PUBLIC}/cpaas/v1/provider-callbacks/twilio/{}?message_id={id}",
        s.provider_id
    )));
    let params = [
        ("MessageSid", sid.as_str()),
        ("SmsSid", sid.as_str()),
        ("MessageStatus", "delivered"),
        ("SmsStatus", "delivered"),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("To", PHONE),
        ("From", "+15005550006"),
        ("ApiVersion", "2010-04-01"),
    ];
    let first = accepted(status_callback(&s, &callback, &params).await).await;
    assert_eq!(first["duplicate"], false);
    let m = message(&s.app, &s.tenant, &id).await;
    assert_eq!(m["status"], "DELIVERED");
    assert!(m["delivered_at"].is_string());
    assert_eq!(events(&s.app, DELIVERED).await, 1);

    let replay = accepted(status_callback(&s, &callback, &params).await).await;
    assert_eq!(replay["duplicate"], true);
    assert_eq!(events(&s.app, DELIVERED).await, 1, "no second transition");
    assert_eq!(stored_outcomes(&s.app).await, [Some("APPLIED".to_owned())]);
}

#[actix_web::test]
async fn the_same_receipt_arriving_several_times_at_once_is_applied_once() {
    let s = setup().await;
    let (id, sid, callback) = sent(&s).await;
    let params = [("MessageSid", sid.as_str()), ("MessageStatus", "delivered")];
    let answers =
        futures_util::future::join_all((0..6).map(|_| status_callback(&s, &callback, &params)))
            .await;
    let mut duplicates = 0;
    for res in answers {
        if accepted(res).await["duplicate"] == true {
            duplicates += 1;
        }
    }
    assert_eq!(duplicates, 5);
    assert_eq!(message(&s.app, &s.tenant, &id).await["status"], "DELIVERED");
    assert_eq!(events(&s.app, DELIVERED).await, 1);
}

#[actix_web::test]
async fn a_callback_on_one_tenants_provider_cannot_touch_another_tenants_message() {
    let s = setup().await;
    let (id, sid, callback) = sent(&s).await;
    let other = tenant();
    let other_provider = create_provider(
        &s.app,
        &other,
        json!({
            "name": "twilio", "kind": "TWILIO", "channels": ["SMS"],
            "config": { "from": "+15005550006", "base_url": s.twilio.uri() },
            "credentials": { "account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": AUTH_TOKEN }
        }),
    )
    .await;
    let foreign = callback.replace(&s.provider_id, &other_provider);
    let params = [("MessageSid", sid.as_str()), ("MessageStatus", "delivered")];
    accepted(status_callback(&s, &foreign, &params).await).await;
    assert_eq!(message(&s.app, &s.tenant, &id).await["status"], "SENT");
    assert_eq!(
        stored_outcomes(&s.app).await,
        [Some("UNMATCHED".to_owned())]
    );
}

#[actix_web::test]
async fn a_late_sent_after_delivered_leaves_the_message_delivered() {
    let s = setup().await;
    let (id, sid, callback) = sent(&s).await;
    for status in ["delivered", "sent"] {
        let params = [("MessageSid", sid.as_str()), ("MessageStatus", status)];
        accepted(status_callback(&s, &callback, &params).await).await;
    }
    let m = message(&s.app, &s.tenant, &id).await;
    assert_eq!(m["status"], "DELIVERED");
    assert_eq!(
        stored_outcomes(&s.app).await,
        [Some("APPLIED".to_owned()), Some("UNCHANGED".to_owned())]
    );
}

#[actix_web::test]
async fn an_undelivered_receipt_records_twilios_error_code_and_the_failed_event() {
    let s = setup().await;
    let (id, sid, callback) = sent(&s).await;
    let params = [
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30003"),
    ];
    accepted(status_callback(&s, &callback, &params).await).await;
    let m = message(&s.app, &s.tenant, &id).await;
    assert_eq!(m["status"], "UNDELIVERED");
    assert_eq!(m["error"]["code"], "30003");
    assert!(m["failed_at"].is_string());
    assert_eq!(events(&s.app, FAILED).await, 1);
}

#[actix_web::test]
async fn a_wrong_or_missing_signature_is_refused_and_changes_nothing() {
    let s = setup().await;
    let (id, sid, callback) = sent(&s).await;
    let params = [("MessageSid", sid.as_str()), ("MessageStatus", "delivered")];
    let path = callback.strip_prefix(PUBLIC).unwrap();
    // Signed for another URL: the query carries the message id and is part of what is signed.
    let wrong = sign(
        &format!("{PUBLIC}{}", path.split('?').next().unwrap()),
        &params,
    );
    for headers in [vec![("X-Twilio-Signature", wrong)], vec![]] {
        let (status, body) =
            json(post_callback(&s.app, path, FORM, &headers, form(&params)).await).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(code(&body), "ERR_CPAAS_INVALID_SIGNATURE");
    }
    assert_eq!(message(&s.app, &s.tenant, &id).await["status"], "SENT");
    assert!(
        stored_outcomes(&s.app).await.is_empty(),
        "nothing is stored"
    );
}

#[actix_web::test]
async fn a_provider_of_another_kind_or_an_unknown_id_is_not_found() {
    let s = setup().await;
    let params = [("MessageSid", "SM1"), ("MessageStatus", "delivered")];
    for path in [
        format!("/cpaas/v1/provider-callbacks/vonage/{}", s.provider_id),
        format!(
            "/cpaas/v1/provider-callbacks/twilio/prv_{}",
            Uuid::now_v7().simple()
        ),
        format!("/cpaas/v1/provider-callbacks/fax/{}", s.provider_id),
    ] {
        let url = format!("{PUBLIC}{path}");
        let res = post_callback(
            &s.app,
            &path,
            FORM,
            &[("X-Twilio-Signature", sign(&url, &params))],
            form(&params),
        )
        .await;
        let (status, body) = json(res).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(code(&body), "ERR_CPAAS_NOT_FOUND");
    }
    let res = s
        .app
        .client
        .get(s.app.url(&format!(
            "/cpaas/v1/provider-callbacks/twilio/{}",
            s.provider_id
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "POST");
    let (status, body) = json(res).await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(code(&body), "ERR_CPAAS_METHOD_NOT_ALLOWED");
}

async fn inbound(s: &Setup, sid: &str, body: &str) -> reqwest::Response {
    let path = format!("/cpaas/v1/provider-callbacks/twilio/{}", s.provider_id);
    let params = [
        ("MessageSid", sid),
        ("SmsMessageSid", sid),
        ("SmsStatus", "received"),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("From", PHONE),
        ("To", "+15005550006"),
        ("Body", body),
        ("NumMedia", "0"),
    ];
    post_callback(
        &s.app,
        &path,
        FORM,
        &[(
            "X-Twilio-Signature",
            sign(&format!("{PUBLIC}{path}"), &params),
        )],
        form(&params),
    )
    .await
}

#[actix_web::test]
async fn an_inbound_stop_opts_the_sender_out_until_start_and_every_inbound_sms_is_published() {
    let s = setup().await;
    let res = inbound(&s, "SMin1", " Stop ").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/xml")
    );
    assert!(res.text().await.unwrap().ends_with("<Response/>"));
    let check = opt_out_of(&s.app, &s.tenant, PHONE, "SMS").await;
    assert_eq!(check["opted_out"], true, "{check}");
    assert_eq!(check["opt_out"]["source"], "STOP_KEYWORD");

    let (status, body) = json(
        s.app
            .post("/cpaas/v1/messages", &s.tenant.sender, &sms(PHONE))
            .await,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(code(&body), "ERR_CPAAS_RECIPIENT_OPTED_OUT");

    assert_eq!(inbound(&s, "SMin2", "hello there").await.status(), 200);
    assert_eq!(
        opt_out_of(&s.app, &s.tenant, PHONE, "SMS").await["opted_out"],
        true
    );
    assert_eq!(inbound(&s, "SMin3", "START").await.status(), 200);
    assert_eq!(
        opt_out_of(&s.app, &s.tenant, PHONE, "SMS").await["opted_out"],
        false
    );
    let (status, _) = json(
        s.app
            .post("/cpaas/v1/messages", &s.tenant.sender, &sms(PHONE))
            .await,
    )
    .await;
    assert_eq!(status, 202);

    // A redelivered STOP is a duplicate: it does not opt the sender out again.
    assert_eq!(inbound(&s, "SMin1", "STOP").await.status(), 200);
    assert_eq!(
        opt_out_of(&s.app, &s.tenant, PHONE, "SMS").await["opted_out"],
        false
    );

    assert_eq!(events(&s.app, SMS_INBOUND).await, 3);
    let payload = inbound_payloads(&s.app).await;
    let first = &payload[0]["data"];
    assert_eq!(first["tenantId"], s.tenant.id.to_string());
    assert_eq!(first["from"], PHONE);
    assert_eq!(first["to"], "+15005550006");
    assert_eq!(first["body"], " Stop ");
    assert_eq!(first["provider"], "TWILIO");
    assert_eq!(first["providerMessageId"], "SMin1");
    assert_eq!(first["keyword"], "STOP");
    assert_eq!(first["keywordAction"], "OPT_OUT");
    assert!(first["receivedAt"].is_string());
    assert_eq!(payload[1]["data"]["keywordAction"], Value::Null);
    assert_eq!(payload[2]["data"]["keywordAction"], "OPT_IN");
}

async fn inbound_payloads(app: &TestApp) -> Vec<Value> {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        payload: Value,
    }
    let mut conn = app.pool.get().await.unwrap();
    diesel::sql_query(format!(
        "SELECT payload FROM outbox_events WHERE topic = '{SMS_INBOUND}' ORDER BY seq"
    ))
    .load::<Row>(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|r| r.payload)
    .collect()
}
