//! Cross-channel fallback chains: WhatsApp first, SMS when WhatsApp fails or is late, against
//! Meta's and Twilio's wire formats (wiremock), counting what each provider received.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::delivery::{MESSAGES, tenant_with, twilio};
use crate::helpers::{TestApp, code, json, spawn_app, spawn_app_with, token};
use crate::messages::count;

const TO: &str = "+14155552671";
const GRAPH_MESSAGES: &str = r"^/v[0-9.]+/1098765/messages$";

fn meta(base_url: &str) -> Value {
    json!({
        "name": "meta", "kind": "META_WHATSAPP", "channels": ["WHATSAPP"], "priority": 1,
        "config": { "phone_number_id": "1098765", "waba_id": "2233", "base_url": base_url },
        "credentials": { "access_token": "EAAG-token", "app_secret": "s", "verify_token": "v" }
    })
}

/// Meta refusing for good: more than 24 hours since the customer last wrote.
fn meta_refuses() -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({"error": {
        "message": "(#131047) Re-engagement message", "type": "OAuthException",
        "code": 131047, "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"}}))
}

fn meta_accepts() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"messaging_product": "whatsapp",
        "contacts": [{"input": "14155552671", "wa_id": "14155552671"}],
        "messages": [{"id": format!("wamid.{}", Uuid::new_v4().simple())}]}))
}

fn twilio_accepts() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "sid": format!("SM{}", Uuid::new_v4().simple()), "status": "queued", "price": null
    }))
}

/// A tenant with a Meta WhatsApp account and a Twilio SMS account, each on its own mock.
struct Setup {
    app: TestApp,
    meta: MockServer,
    twilio: MockServer,
    tenant: Uuid,
    sender: String,
}

async fn setup(meta_answer: ResponseTemplate) -> Setup {
    setup_with(meta_answer, |_| {}).await
}

async fn setup_with(
    meta_answer: ResponseTemplate,
    configure: impl FnOnce(&mut std::collections::HashMap<String, String>),
) -> Setup {
    let app = spawn_app_with(configure).await;
    let (meta_server, twilio_server) = (MockServer::start().await, MockServer::start().await);
    Mock::given(method("POST"))
        .and(path_regex(GRAPH_MESSAGES))
        .respond_with(meta_answer)
        .mount(&meta_server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .respond_with(twilio_accepts())
        .mount(&twilio_server)
        .await;
    let (tenant, sender, _) = tenant_with(
        &app,
        &[
            meta(&meta_server.uri()),
            twilio("sms", 1, &twilio_server.uri()),
        ],
    )
    .await;
    Setup {
        app,
        meta: meta_server,
        twilio: twilio_server,
        tenant,
        sender,
    }
}

fn whatsapp_then_sms(after_secs: Option<i64>) -> Value {
    let mut step = json!({ "channel": "SMS" });
    if let Some(secs) = after_secs {
        step["after_secs"] = json!(secs);
    }
    json!({ "channel": "WHATSAPP", "recipient": TO, "message_body": "Doors open at 19:00",
            "fallback": [step] })
}

async fn message(s: &Setup, id: &str) -> Value {
    s.app.message(&s.sender, id).await
}

async fn send(s: &Setup, body: &Value) -> String {
    let (status, created) = json(s.app.post("/cpaas/v1/messages", &s.sender, body).await).await;
    assert_eq!(status, 202, "{created}");
    created["data"]["id"].as_str().unwrap().to_owned()
}

fn uuid_of(id: &str) -> Uuid {
    Uuid::parse_str(id.trim_start_matches("msg_")).unwrap()
}

async fn fallback_events(s: &Setup) -> Vec<Value> {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        payload: Value,
    }
    let mut conn = s.app.pool.get().await.unwrap();
    diesel::sql_query(
        "SELECT payload FROM outbox_events \
         WHERE topic = 'eventzr.cpaas.communication.fallback.v1' ORDER BY seq",
    )
    .load::<Row>(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|r| r.payload)
    .collect()
}

async fn job(app: &TestApp, name: &str) -> Value {
    app.internal_post(&format!("/cpaas/v1/jobs/{name}")).await
}

#[actix_web::test]
async fn whatsapp_refused_for_good_sends_the_sms_step_once_with_one_fallback_event() {
    let s = setup(meta_refuses()).await;
    let (status, created) = json(
        s.app
            .post("/cpaas/v1/messages", &s.sender, &whatsapp_then_sms(None))
            .await,
    )
    .await;
    assert_eq!(status, 202, "{created}");
    let wa = created["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["data"]["chain_id"], wa.as_str(), "{created}");
    let chain = &created["data"]["chain"];
    assert_eq!(chain[0]["status"], "QUEUED", "{created}");
    assert_eq!(
        (&chain[1]["channel"], &chain[1]["status"]),
        (&json!("SMS"), &json!("PENDING"))
    );

    s.app.drain_until_dry().await;

    assert_eq!(s.meta.received_requests().await.unwrap().len(), 1);
    let sms_calls = s.twilio.received_requests().await.unwrap();
    assert_eq!(sms_calls.len(), 1, "the SMS step is sent once");
    let form = String::from_utf8_lossy(&sms_calls[0].body).into_owned();
    assert!(form.contains("To=%2B14155552671"), "{form}");
    assert!(form.contains("Body=Doors+open+at+19%3A00"), "{form}");

    let first = message(&s, &wa).await;
    assert_eq!(first["status"], "FAILED", "{first}");
    assert_eq!(first["error"]["code"], "131047", "{first}");
    let sms = first["chain"][1]["message_id"].as_str().unwrap().to_owned();
    assert_eq!(first["chain"][1]["status"], "SENT", "{first}");
    assert_eq!(first["chain"][1]["reason"], "FAILED", "{first}");
    let second = message(&s, &sms).await;
    assert_eq!(second["channel"], "SMS");
    assert_eq!(second["recipient"], TO);
    assert_eq!(second["chain_id"], wa.as_str(), "{second}");
    assert_eq!(
        second["chain"], first["chain"],
        "both messages show the chain"
    );

    let events = fallback_events(&s).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let data = &events[0]["data"];
    assert_eq!(data["tenantId"], s.tenant.to_string());
    assert_eq!(data["messageId"], wa.as_str());
    assert_eq!(data["nextMessageId"], sms.as_str());
    assert_eq!(
        (&data["fromChannel"], &data["toChannel"]),
        (&json!("WHATSAPP"), &json!("SMS"))
    );
    assert_eq!(data["reason"], "FAILED");
    assert_eq!(data["chainId"], wa.as_str());

    // Draining again, or the job, starts nothing more.
    s.app.drain_until_dry().await;
    job(&s.app, "advance-chains").await;
    assert_eq!(s.twilio.received_requests().await.unwrap().len(), 1);
    assert_eq!(fallback_events(&s).await.len(), 1);
}

#[actix_web::test]
async fn a_delivered_whatsapp_step_sends_no_sms_even_when_its_after_secs_runs_out() {
    let app = spawn_app().await;
    let (tenant, sender) = crate::messages::tenant_with_sandbox(&app, "professional").await;
    let (status, created) = json(
        app.post("/cpaas/v1/messages", &sender, &whatsapp_then_sms(Some(1)))
            .await,
    )
    .await;
    assert_eq!(status, 202, "{created}");
    let wa = created["data"]["id"].as_str().unwrap().to_owned();
    app.drain_until_dry().await;
    job(&app, "sandbox-reports").await;
    app.drain_until_dry().await;
    let (_, m) = json(app.get(&format!("/cpaas/v1/messages/{wa}"), &sender).await).await;
    assert_eq!(m["data"]["status"], "DELIVERED", "{m}");
    assert_eq!(m["data"]["chain"][1]["status"], "SKIPPED", "{m}");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = job(&app, "advance-chains").await;
    assert_eq!(report["counts"].get("started"), None, "{report}");
    app.drain_until_dry().await;
    let sms = format!(
        "SELECT count(*) AS n FROM messages WHERE tenant_id = '{tenant}' AND channel = 'SMS'"
    );
    assert_eq!(count(&app, &sms).await, 0, "no SMS");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM outbox_events \
             WHERE topic = 'eventzr.cpaas.communication.fallback.v1'"
        )
        .await,
        0
    );
}

#[actix_web::test]
async fn a_whatsapp_step_not_delivered_within_after_secs_moves_the_chain_to_sms() {
    let s = setup(meta_accepts()).await;
    let wa = send(&s, &whatsapp_then_sms(Some(1))).await;
    s.app.drain_until_dry().await;
    assert_eq!(message(&s, &wa).await["status"], "SENT");
    let early = job(&s.app, "advance-chains").await;
    assert_eq!(early["counts"].get("started"), None, "not due yet: {early}");
    assert!(s.twilio.received_requests().await.unwrap().is_empty());

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let report = job(&s.app, "advance-chains").await;
    assert_eq!(report["counts"]["started"], 1, "{report}");
    s.app.drain_until_dry().await;
    assert_eq!(s.twilio.received_requests().await.unwrap().len(), 1);
    let first = message(&s, &wa).await;
    assert_eq!(
        first["status"], "SENT",
        "a message already sent stays as it is"
    );
    assert_eq!(first["chain"][1]["reason"], "TIMEOUT", "{first}");
    let events = fallback_events(&s).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["reason"], "TIMEOUT");
}

#[actix_web::test]
async fn a_late_step_not_yet_handed_to_a_provider_is_cancelled_when_the_next_one_starts() {
    // WhatsApp is down and its retry is a minute away: once after_secs runs out, SMS goes and
    // the WhatsApp message is cancelled, so the recipient does not get both.
    let s = setup_with(
        ResponseTemplate::new(503).set_body_json(json!({"error": {"message": "down", "code": 1}})),
        |env| {
            env.insert("DELIVERY_RETRY_BASE_MS".into(), "60000".into());
        },
    )
    .await;
    let wa = send(&s, &whatsapp_then_sms(Some(1))).await;
    s.app.drain_until_dry().await;
    assert_eq!(message(&s, &wa).await["status"], "QUEUED");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(job(&s.app, "advance-chains").await["counts"]["started"], 1);
    s.app.drain_until_dry().await;
    let first = message(&s, &wa).await;
    assert_eq!(first["status"], "CANCELLED", "{first}");
    assert_eq!(first["chain"][1]["status"], "SENT", "{first}");
    assert_eq!(s.twilio.received_requests().await.unwrap().len(), 1);
}

#[actix_web::test]
async fn cancelling_a_step_cancels_what_is_left_of_its_chain() {
    let s = setup(meta_accepts()).await;
    // Scheduled: cancelling the first message cancels the step after it.
    let mut later = whatsapp_then_sms(None);
    later["scheduled_at"] = json!((chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339());
    let wa = send(&s, &later).await;
    let (status, cancelled) = json(
        s.app
            .post(
                &format!("/cpaas/v1/messages/{wa}/cancel"),
                &s.sender,
                &json!({}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["data"]["status"], "CANCELLED");
    assert_eq!(
        cancelled["data"]["chain"][1]["status"], "CANCELLED",
        "{cancelled}"
    );

    // Already sent: cancelling stops the steps after it, and answers 200 while some were left.
    let wa = send(&s, &whatsapp_then_sms(Some(60))).await;
    s.app.drain_until_dry().await;
    let path = format!("/cpaas/v1/messages/{wa}/cancel");
    let (status, answer) = json(s.app.post(&path, &s.sender, &json!({})).await).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["status"], "SENT");
    assert_eq!(
        answer["data"]["chain"][1]["status"], "CANCELLED",
        "{answer}"
    );
    let (status, again) = json(s.app.post(&path, &s.sender, &json!({})).await).await;
    assert_eq!((status, code(&again)), (409, "ERR_CPAAS_INVALID_STATE"));

    // Its failure no longer moves the chain on.
    let chain = uuid_of(&wa);
    let mut conn = s.app.pool.get().await.unwrap();
    use diesel_async::RunQueryDsl;
    diesel::sql_query(format!(
        "UPDATE message_chain_steps SET due_at = now() - interval '1 second' WHERE chain_id = '{chain}'"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    job(&s.app, "advance-chains").await;
    s.app.drain_until_dry().await;
    assert!(s.twilio.received_requests().await.unwrap().is_empty());
    assert!(fallback_events(&s).await.is_empty());
}

#[actix_web::test]
async fn an_opted_out_sms_recipient_ends_the_chain_with_the_steps_error() {
    let s = setup(meta_refuses()).await;
    let (status, body) = json(
        s.app
            .post(
                "/cpaas/v1/opt-outs",
                &s.sender,
                &json!({ "recipient": TO, "channel": "SMS", "reason": "asked" }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let wa = send(&s, &whatsapp_then_sms(None)).await;
    s.app.drain_until_dry().await;
    let first = message(&s, &wa).await;
    assert_eq!(first["status"], "FAILED");
    let step = &first["chain"][1];
    assert_eq!(step["status"], "REFUSED", "{first}");
    assert_eq!(
        step["error"]["code"], "ERR_CPAAS_RECIPIENT_OPTED_OUT",
        "{first}"
    );
    assert!(step["message_id"].is_null());
    assert!(s.twilio.received_requests().await.unwrap().is_empty());
    assert!(fallback_events(&s).await.is_empty());
}

#[actix_web::test]
async fn a_chain_that_could_never_be_sent_is_refused_naming_the_step_and_writes_nothing() {
    let s = setup(meta_accepts()).await;
    let mut no_address = whatsapp_then_sms(None);
    no_address["fallback"] = json!([{ "channel": "SMS" }, { "channel": "EMAIL" }]);
    let (status, answer) = json(
        s.app
            .post("/cpaas/v1/messages", &s.sender, &no_address)
            .await,
    )
    .await;
    assert_eq!(
        (status, code(&answer)),
        (400, "ERR_CPAAS_VALIDATION_FAILED"),
        "{answer}"
    );
    assert_eq!(
        answer["error"]["details"][0]["field"],
        "fallback[1].recipient"
    );

    let mut no_template = whatsapp_then_sms(None);
    no_template["fallback"] =
        json!([{ "channel": "SMS", "template_name": "nowhere", "template_variables": {} }]);
    let (status, answer) = json(
        s.app
            .post("/cpaas/v1/messages", &s.sender, &no_template)
            .await,
    )
    .await;
    assert_eq!(
        (status, code(&answer)),
        (400, "ERR_CPAAS_TEMPLATE_NOT_FOUND"),
        "{answer}"
    );
    assert_eq!(
        answer["error"]["details"][0]["field"],
        "fallback[0].template"
    );

    let free = token(s.tenant, &["developer"], "free");
    let mut voice = whatsapp_then_sms(None);
    voice["fallback"] = json!([{ "channel": "VOICE" }]);
    let (status, answer) = json(s.app.post("/cpaas/v1/messages", &free, &voice).await).await;
    assert_eq!(
        (status, code(&answer)),
        (403, "ERR_CPAAS_TIER_INSUFFICIENT"),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("fallback[0]")
    );

    assert_eq!(count(&s.app, "SELECT count(*) AS n FROM messages").await, 0);
    assert_eq!(
        count(&s.app, "SELECT count(*) AS n FROM message_chain_steps").await,
        0
    );
}

#[actix_web::test]
async fn the_api_description_shows_fallback_steps_and_chains() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/cpaas/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    let doc: Value = res.json().await.unwrap();
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["FallbackStep"]["properties"]["after_secs"].is_object());
    assert!(schemas["ChainStepView"]["properties"]["status"].is_object());
    assert!(schemas["SendRequest"]["properties"]["fallback"].is_object());
    assert!(schemas["MessageView"]["properties"]["chain"].is_object());
}

#[actix_web::test]
async fn bulk_items_carry_their_own_chains_and_a_replayed_send_makes_no_second_chain() {
    let s = setup(meta_refuses()).await;
    let items = json!({ "messages": [
        whatsapp_then_sms(None),
        { "channel": "WHATSAPP", "recipient": "+14155550100", "message_body": "Gate B",
          "fallback": [{ "channel": "SMS", "message_body": "Gate B (SMS)" }] },
    ]});
    let (status, answer) = json(
        s.app
            .post("/cpaas/v1/messages/bulk", &s.sender, &items)
            .await,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["data"]["accepted"], 2, "{answer}");
    s.app.drain_until_dry().await;
    let sms = s.twilio.received_requests().await.unwrap();
    assert_eq!(sms.len(), 2);
    let bodies: Vec<String> = sms
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        bodies.iter().any(|b| b.contains("Body=Gate+B+%28SMS%29")),
        "{bodies:?}"
    );
    assert_eq!(fallback_events(&s).await.len(), 2);

    let keyed = || {
        s.app
            .client
            .post(s.app.url("/cpaas/v1/messages"))
            .bearer_auth(&s.sender)
            .header("Idempotency-Key", "chain-once")
            .json(&whatsapp_then_sms(Some(30)))
            .send()
    };
    let (status, first) = json(keyed().await.unwrap()).await;
    assert_eq!(status, 202, "{first}");
    let res = keyed().await.unwrap();
    assert_eq!(res.headers()["idempotent-replayed"], "true");
    let (_, replayed) = json(res).await;
    assert_eq!(replayed, first);
    assert_eq!(
        count(&s.app, "SELECT count(*) AS n FROM message_chain_steps").await,
        2 * 3,
        "three chains of two steps"
    );
}
