//! Provider callbacks end to end: a message is sent through a provider faked by wiremock, then
//! the provider's callback is posted with a signature computed here from the provider's
//! documented algorithm, and the message, its events and the opt-out ledger are checked.

mod aws_sns;
mod meta_whatsapp;
mod sendgrid;
mod twilio;
mod vonage;

use reqwest::Response;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{INTERNAL_KEY, TestApp, json, token};
use crate::messages::count;

pub const PHONE: &str = "+14155552671";
pub const DELIVERED: &str = "eventzr.cpaas.communication.delivered.v1";
pub const FAILED: &str = "eventzr.cpaas.communication.failed.v1";
pub const SMS_INBOUND: &str = "eventzr.cpaas.sms.inbound.v1";

/// A tenant of its own: (admin token, sender token).
pub struct Tenant {
    pub id: Uuid,
    pub admin: String,
    pub sender: String,
}

pub fn tenant() -> Tenant {
    let id = Uuid::now_v7();
    Tenant {
        id,
        admin: token(id, &["admin"], "enterprise"),
        sender: token(id, &["developer"], "enterprise"),
    }
}

/// Creates a provider and returns its id.
pub async fn create_provider(app: &TestApp, tenant: &Tenant, body: Value) -> String {
    let (status, created) = json(app.post("/cpaas/v1/providers", &tenant.admin, &body).await).await;
    assert_eq!(status, 201, "{created}");
    created["data"]["id"].as_str().unwrap().to_owned()
}

/// Sends a message, drains the outbox (so the provider is called) and returns its id.
pub async fn send_and_deliver(app: &TestApp, tenant: &Tenant, body: Value) -> String {
    let (status, created) = json(app.post("/cpaas/v1/messages", &tenant.sender, &body).await).await;
    assert_eq!(status, 202, "{created}");
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    drain(app).await;
    let m = message(app, tenant, &id).await;
    assert_eq!(m["status"], "SENT", "{m}");
    id
}

pub fn sms(to: &str) -> Value {
    json!({ "channel": "SMS", "recipient": to, "message_body": "Your code is 123456" })
}

pub async fn drain(app: &TestApp) {
    let res = app
        .client
        .post(app.url("/cpaas/v1/_internal/process-outbox"))
        .header("x-internal-api-key", INTERNAL_KEY)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

pub async fn message(app: &TestApp, tenant: &Tenant, id: &str) -> Value {
    json(
        app.get(&format!("/cpaas/v1/messages/{id}"), &tenant.sender)
            .await,
    )
    .await
    .1["data"]
        .clone()
}

/// How many outbox events of `topic` exist.
pub async fn events(app: &TestApp, topic: &str) -> i64 {
    count(
        app,
        &format!("SELECT count(*) AS n FROM outbox_events WHERE topic = '{topic}'"),
    )
    .await
}

/// Posts a callback body with the given headers.
pub async fn post_callback(
    app: &TestApp,
    path_and_query: &str,
    content_type: &str,
    headers: &[(&str, String)],
    body: impl Into<reqwest::Body>,
) -> Response {
    let mut req = app
        .client
        .post(app.url(path_and_query))
        .header("content-type", content_type)
        .body(body);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    req.send().await.unwrap()
}

/// `data` of an accepted callback's envelope.
pub async fn accepted(res: Response) -> Value {
    let (status, body) = json(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["accepted"], true, "{body}");
    body["data"].clone()
}

/// The opt-out check of a recipient on a channel.
pub async fn opt_out_of(app: &TestApp, tenant: &Tenant, recipient: &str, channel: &str) -> Value {
    let recipient = url::form_urlencoded::byte_serialize(recipient.as_bytes()).collect::<String>();
    let (status, body) = json(
        app.get(
            &format!("/cpaas/v1/opt-outs/check?recipient={recipient}&channel={channel}"),
            &tenant.sender,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

/// The `outcome` stored for every callback of a provider, oldest first.
pub async fn stored_outcomes(app: &TestApp) -> Vec<Option<String>> {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        outcome: Option<String>,
    }
    let mut conn = app.pool.get().await.unwrap();
    diesel::sql_query("SELECT outcome FROM provider_callbacks ORDER BY received_at, id")
        .load::<Row>(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.outcome)
        .collect()
}
