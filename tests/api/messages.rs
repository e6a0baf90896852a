//! Sending: validation, acceptance with its outbox event, bulk, rate limits, reads, cancel.

use std::collections::HashSet;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    DEV_TENANT, TestApp, admin_token, code, json, spawn_app, spawn_app_with, token,
};

pub fn sender(tier: &str) -> String {
    token(DEV_TENANT, &["developer"], tier)
}

pub fn sms(to: &str) -> Value {
    json!({ "channel": "SMS", "recipient": to, "message_body": "Your code is 123456" })
}

pub async fn send(app: &TestApp, token: &str, body: &Value) -> (u16, Value) {
    json(app.post("/cpaas/v1/messages", token, body).await).await
}

pub async fn count(app: &TestApp, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.pool.get().await.unwrap();
    diesel::sql_query(sql)
        .get_result::<N>(&mut conn)
        .await
        .unwrap()
        .n
}

/// A tenant of its own with an active SANDBOX provider for every channel.
pub async fn tenant_with_sandbox(app: &TestApp, tier: &str) -> (Uuid, String) {
    let tenant = Uuid::now_v7();
    let admin = token(tenant, &["admin"], tier);
    let res = app
        .post(
            "/cpaas/v1/providers",
            &admin,
            &json!({ "name": "sandbox", "kind": "SANDBOX" }),
        )
        .await;
    assert_eq!(res.status(), 201);
    (tenant, token(tenant, &["developer"], tier))
}

/// The statements of a send are prepared once per connection and reused by the next sends
/// (one round trip each instead of two), and a send without an Idempotency-Key runs two: the
/// shared limit, then one statement that checks the opt-outs and providers and inserts the
/// message with its event.
#[actix_web::test]
async fn sends_reuse_their_prepared_statements() {
    let app = spawn_app_with(|env| {
        env.insert("DATABASE_POOL_SIZE".into(), "1".into());
    })
    .await;
    let prepared = "SELECT count(*) AS n FROM pg_prepared_statements";
    let executed = "SELECT coalesce(sum(generic_plans + custom_plans), 0)::int8 AS n \
                    FROM pg_prepared_statements";
    let t = sender("professional");
    let (status, body) = send(&app, &t, &sms("+14155552671")).await;
    assert_eq!(status, 202, "{body}");
    let after_first = count(&app, prepared).await;
    let kept = count(
        &app,
        "SELECT count(*) AS n FROM pg_prepared_statements \
         WHERE statement LIKE 'WITH blocked AS (%FROM opt_outs%FROM providers%\
                              INSERT INTO messages %INSERT INTO outbox_events %'",
    )
    .await;
    assert_eq!(
        kept, 1,
        "the checked insert of the message with its event stays prepared"
    );
    let before = count(&app, executed).await;
    let mut sent = Vec::new();
    for to in ["+447911123456", "+33612345678", "+4915123456789"] {
        let (status, body) = send(&app, &t, &sms(to)).await;
        assert_eq!(status, 202, "{body}");
        sent.push(body["data"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        count(&app, prepared).await,
        after_first,
        "later sends prepare nothing new"
    );
    assert_eq!(
        count(&app, executed).await - before,
        6,
        "two statements a send"
    );
    for id in sent {
        let uuid = id.trim_start_matches("msg_");
        let events = count(
            &app,
            &format!(
                "SELECT count(*) AS n FROM outbox_events \
                 WHERE replace(aggregate_id::text, '-', '') = '{uuid}' \
                   AND topic = 'eventzr.cpaas.communication.requested.v1'"
            ),
        )
        .await;
        assert_eq!(events, 1, "{id} has its requested event");
    }
}

#[actix_web::test]
async fn an_accepted_sms_is_queued_with_its_requested_event_in_the_outbox() {
    let app = spawn_app().await;
    let (status, body) = send(&app, &sender("professional"), &sms("+1 415 555 2671")).await;
    assert_eq!(status, 202, "{body}");
    let m = &body["data"];
    assert!(m["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(m["status"], "QUEUED");
    assert_eq!(m["recipient"], "+14155552671");
    assert_eq!(m["body"], "Your code is 123456");
    assert_eq!(m["attempts"], 0);
    assert_eq!(m["error"], Value::Null);

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        topic: String,
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        payload: Value,
    }
    let mut conn = app.pool.get().await.unwrap();
    let rows: Vec<Row> = diesel::sql_query("SELECT topic, payload FROM outbox_events")
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].topic, "eventzr.cpaas.communication.requested.v1");
    let event = &rows[0].payload;
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["source"], "cpaas-orchestrator-svc");
    assert_eq!(event["subject"], DEV_TENANT.to_string());
    assert!(event["id"].as_str().unwrap().starts_with("evt-"));
    assert_eq!(event["data"]["messageId"], m["id"]);
    assert_eq!(event["data"]["tenantId"], DEV_TENANT.to_string());
    assert_eq!(event["data"]["channel"], "SMS");
    assert_eq!(event["data"]["recipient"], "+14155552671");
    assert_eq!(event["data"]["status"], "QUEUED");
}

#[actix_web::test]
async fn the_send_answer_carries_the_rate_limit_headers() {
    let app = spawn_app().await;
    let res = app
        .post(
            "/cpaas/v1/messages",
            &sender("professional"),
            &sms("+14155552671"),
        )
        .await;
    assert_eq!(res.status(), 202);
    assert_eq!(res.headers()["x-ratelimit-limit"], "300");
    assert_eq!(res.headers()["x-ratelimit-remaining"], "299");
    assert!(res.headers().contains_key("x-ratelimit-reset"));
}

#[actix_web::test]
async fn numbers_that_are_not_real_e164_numbers_are_refused() {
    let app = spawn_app().await;
    for bad in [
        "+1415555267",
        "+999123456",
        "14155552671",
        "+44 20 7946 09",
        "call me",
    ] {
        let (status, body) = send(&app, &sender("professional"), &sms(bad)).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(code(&body), "ERR_CPAAS_INVALID_PHONE_NUMBER", "{bad}");
    }
    assert_eq!(count(&app, "SELECT count(*) AS n FROM messages").await, 0);
}

#[actix_web::test]
async fn email_needs_a_valid_address_and_a_subject() {
    let app = spawn_app().await;
    let t = sender("professional");
    let (status, body) = send(&app, &t, &json!({"channel": "EMAIL", "recipient": "not-an-address", "subject": "Hi", "message_body": "x"})).await;
    assert_eq!((status, code(&body)), (400, "ERR_CPAAS_INVALID_EMAIL"));
    let (status, body) = send(
        &app,
        &t,
        &json!({"channel": "EMAIL", "recipient": "a@example.com", "message_body": "x"}),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "ERR_CPAAS_VALIDATION_FAILED"));
    let (status, body) = send(&app, &t, &json!({"channel": "EMAIL", "recipient": "Ann@Example.COM", "subject": "Hi", "message_body": "x"})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["recipient"], "ann@example.com");
}

#[actix_web::test]
async fn bad_channels_and_empty_bodies_have_their_own_codes() {
    let app = spawn_app().await;
    let t = sender("professional");
    let (status, body) = send(
        &app,
        &t,
        &json!({"channel": "FAX", "recipient": "+14155552671", "message_body": "x"}),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "ERR_CPAAS_INVALID_CHANNEL"));
    let (status, body) = send(
        &app,
        &t,
        &json!({"channel": "SMS", "recipient": "+14155552671", "message_body": "   "}),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "ERR_CPAAS_EMPTY_MESSAGE_BODY"));
    let (status, body) = send(
        &app,
        &t,
        &json!({"channel": "SMS", "recipient": "+14155552671"}),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "ERR_CPAAS_EMPTY_MESSAGE_BODY"));
    let mut big = sms("+14155552671");
    big["metadata"] = json!({ "blob": "x".repeat(5000) });
    let (status, body) = send(&app, &t, &big).await;
    assert_eq!((status, code(&body)), (400, "ERR_CPAAS_VALIDATION_FAILED"));
    assert_eq!(body["error"]["details"][0]["field"], "metadata");
}

#[actix_web::test]
async fn a_channel_without_an_active_provider_is_refused() {
    let app = spawn_app().await;
    let tenant = Uuid::now_v7();
    let (status, body) = send(
        &app,
        &token(tenant, &["developer"], "enterprise"),
        &sms("+14155552671"),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(code(&body), "ERR_CPAAS_NO_PROVIDER_CONFIGURED");
    let mut pinned = sms("+14155552671");
    pinned["provider_id"] = json!(format!("prv_{}", Uuid::now_v7().simple()));
    let (status, body) = send(&app, &sender("professional"), &pinned).await;
    assert_eq!(
        (status, code(&body)),
        (422, "ERR_CPAAS_NO_PROVIDER_CONFIGURED")
    );
}

#[actix_web::test]
async fn an_opted_out_recipient_is_refused() {
    let app = spawn_app().await;
    let t = sender("professional");
    let res = app
        .post(
            "/cpaas/v1/opt-outs",
            &t,
            &json!({"recipient": "+14155552671", "channel": "SMS"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let (status, body) = send(&app, &t, &sms("+1 (415) 555-2671")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(code(&body), "ERR_CPAAS_RECIPIENT_OPTED_OUT");
    let whatsapp =
        json!({"channel": "WHATSAPP", "recipient": "+14155552671", "message_body": "hi"});
    assert_eq!(
        send(&app, &t, &whatsapp).await.0,
        202,
        "the opt-out is for SMS only"
    );
}

/// A refused send writes nothing (its checks and its inserts are one statement): a recipient
/// opted out of all channels is refused on every one, a pinned provider that is not the
/// tenant's is refused, and neither leaves a message or an event behind; the next good send
/// writes one of each.
#[actix_web::test]
async fn a_refused_send_writes_no_message_and_no_event() {
    let app = spawn_app().await;
    let (tenant, t) = tenant_with_sandbox(&app, "professional").await;
    let res = app
        .post(
            "/cpaas/v1/opt-outs",
            &t,
            &json!({"recipient": "+14155552671", "channel": "ALL"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let whatsapp =
        json!({"channel": "WHATSAPP", "recipient": "+14155552671", "message_body": "hi"});
    for body in [sms("+14155552671"), whatsapp] {
        let (status, answer) = send(&app, &t, &body).await;
        assert_eq!(
            (status, code(&answer)),
            (422, "ERR_CPAAS_RECIPIENT_OPTED_OUT"),
            "{answer}"
        );
    }
    let mut pinned = sms("+447911123456");
    pinned["provider_id"] = json!(format!("prv_{}", Uuid::now_v7().simple()));
    let (status, answer) = send(&app, &t, &pinned).await;
    assert_eq!(
        (status, code(&answer)),
        (422, "ERR_CPAAS_NO_PROVIDER_CONFIGURED"),
        "{answer}"
    );
    let written =
        |table: &str| format!("SELECT count(*) AS n FROM {table} WHERE tenant_id = '{tenant}'");
    assert_eq!(count(&app, &written("messages")).await, 0);
    assert_eq!(count(&app, &written("outbox_events")).await, 0);
    let (status, answer) = send(&app, &t, &sms("+447911123456")).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(count(&app, &written("messages")).await, 1);
    assert_eq!(count(&app, &written("outbox_events")).await, 1);
}

#[actix_web::test]
async fn the_free_tier_cannot_send_voice_and_is_limited_to_ten_sms_a_minute() {
    let app = spawn_app().await;
    let (_, t) = tenant_with_sandbox(&app, "free").await;
    let voice = json!({"channel": "VOICE", "recipient": "+14155552671", "message_body": "hello"});
    let (status, body) = send(&app, &t, &voice).await;
    assert_eq!((status, code(&body)), (403, "ERR_CPAAS_TIER_INSUFFICIENT"));
    for i in 0..10 {
        let (status, body) = send(&app, &t, &sms("+14155552671")).await;
        assert_eq!(status, 202, "send {i}: {body}");
    }
    let res = app
        .post("/cpaas/v1/messages", &t, &sms("+14155552671"))
        .await;
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(res.headers()["x-ratelimit-limit"], "10");
    assert_eq!(res.headers()["x-ratelimit-remaining"], "0");
    let (status, body) = json(res).await;
    assert_eq!(
        (status, code(&body)),
        (429, "ERR_CPAAS_RATE_LIMIT_EXCEEDED")
    );
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM messages").await,
        10,
        "nothing written for the refused one"
    );
}

#[actix_web::test]
async fn a_user_reads_messages_but_cannot_send() {
    let app = spawn_app().await;
    let user = token(DEV_TENANT, &["user"], "professional");
    let (status, body) = send(&app, &user, &sms("+14155552671")).await;
    assert_eq!((status, code(&body)), (403, "ERR_CPAAS_FORBIDDEN"));
    assert_eq!(app.get("/cpaas/v1/messages", &user).await.status(), 200);
}

#[actix_web::test]
async fn a_scheduled_message_is_scheduled_and_can_be_cancelled_once() {
    let app = spawn_app().await;
    let t = sender("professional");
    let mut body = sms("+14155552671");
    body["scheduled_at"] = json!((chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339());
    let (status, created) = send(&app, &t, &body).await;
    assert_eq!(status, 202, "{created}");
    assert_eq!(created["data"]["status"], "SCHEDULED");
    let id = created["data"]["id"].as_str().unwrap();

    let (status, cancelled) = json(
        app.post(&format!("/cpaas/v1/messages/{id}/cancel"), &t, &json!({}))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["data"]["status"], "CANCELLED");
    let (status, again) = json(
        app.post(&format!("/cpaas/v1/messages/{id}/cancel"), &t, &json!({}))
            .await,
    )
    .await;
    assert_eq!((status, code(&again)), (409, "ERR_CPAAS_INVALID_STATE"));

    body["scheduled_at"] = json!((chrono::Utc::now() + chrono::Duration::days(36)).to_rfc3339());
    let (status, too_far) = send(&app, &t, &body).await;
    assert_eq!(
        (status, code(&too_far)),
        (400, "ERR_CPAAS_VALIDATION_FAILED")
    );
}

#[actix_web::test]
async fn a_message_and_its_attempts_are_readable_by_id() {
    let app = spawn_app().await;
    let (_, created) = send(&app, &sender("professional"), &sms("+14155552671")).await;
    let id = created["data"]["id"].as_str().unwrap();
    let (status, got) = json(
        app.get(&format!("/cpaas/v1/messages/{id}"), &admin_token())
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(got["data"], created["data"]);
    let (status, attempts) = json(
        app.get(&format!("/cpaas/v1/messages/{id}/attempts"), &admin_token())
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(attempts["data"], json!([]));
}

#[actix_web::test]
async fn another_tenants_message_is_not_found_on_every_route() {
    let app = spawn_app().await;
    let (_, created) = send(&app, &sender("professional"), &sms("+14155552671")).await;
    let id = created["data"]["id"].as_str().unwrap();
    let (_, other) = tenant_with_sandbox(&app, "enterprise").await;
    for res in [
        app.get(&format!("/cpaas/v1/messages/{id}"), &other).await,
        app.get(&format!("/cpaas/v1/messages/{id}/attempts"), &other)
            .await,
        app.post(
            &format!("/cpaas/v1/messages/{id}/cancel"),
            &other,
            &json!({}),
        )
        .await,
    ] {
        let (status, body) = json(res).await;
        assert_eq!(
            (status, code(&body)),
            (404, "ERR_CPAAS_NOT_FOUND"),
            "{body}"
        );
        assert_eq!(body["error"]["message"], "message not found");
    }
    let (_, list) = json(app.get("/cpaas/v1/messages", &other).await).await;
    assert_eq!(list["data"], json!([]));
    let (_, mine) = json(
        app.get(&format!("/cpaas/v1/messages/{id}"), &admin_token())
            .await,
    )
    .await;
    assert_eq!(
        mine["data"]["status"], "QUEUED",
        "the other tenant's cancel did nothing"
    );
}

#[actix_web::test]
async fn the_list_filters_by_status_channel_recipient_and_time() {
    let app = spawn_app().await;
    let t = sender("enterprise");
    send(&app, &t, &sms("+14155552671")).await;
    send(&app, &t, &sms("+447911123456")).await;
    send(
        &app,
        &t,
        &json!({"channel": "PUSH", "recipient": "device-token-1", "message_body": "hi"}),
    )
    .await;
    let ids = |body: &Value| body["data"].as_array().unwrap().len();
    let (_, all) = json(app.get("/cpaas/v1/messages", &t).await).await;
    assert_eq!(ids(&all), 3);
    let (_, by_channel) = json(app.get("/cpaas/v1/messages?channel=PUSH", &t).await).await;
    assert_eq!(ids(&by_channel), 1);
    let (_, by_recipient) = json(
        app.get("/cpaas/v1/messages?recipient=%2B44%207911%20123456", &t)
            .await,
    )
    .await;
    assert_eq!(ids(&by_recipient), 1);
    let (_, by_status) = json(app.get("/cpaas/v1/messages?status=SENT", &t).await).await;
    assert_eq!(ids(&by_status), 0);
    let later = (chrono::Utc::now() + chrono::Duration::minutes(1))
        .to_rfc3339()
        .replace('+', "%2B");
    let (_, after) = json(
        app.get(&format!("/cpaas/v1/messages?created_after={later}"), &t)
            .await,
    )
    .await;
    assert_eq!(ids(&after), 0);
    let (status, bad) = json(
        app.get("/cpaas/v1/messages?created_after=yesterday", &t)
            .await,
    )
    .await;
    assert_eq!((status, code(&bad)), (400, "ERR_CPAAS_VALIDATION_FAILED"));
    let (status, bad) = json(app.get("/cpaas/v1/messages?status=LOST", &t).await).await;
    assert_eq!((status, code(&bad)), (400, "ERR_CPAAS_VALIDATION_FAILED"));
}

#[actix_web::test]
async fn walking_all_pages_while_sends_continue_returns_every_row_exactly_once() {
    let app = spawn_app().await;
    let t = sender("enterprise");
    let items: Vec<Value> = (0..60).map(|_| sms("+14155552671")).collect();
    let (status, _) = json(
        app.post("/cpaas/v1/messages/bulk", &t, &json!({ "messages": items }))
            .await,
    )
    .await;
    assert_eq!(status, 202);
    let existing: HashSet<String> = {
        let mut conn = app.pool.get().await.unwrap();
        use cpaas::db::schema::messages::dsl;
        dsl::messages
            .select(dsl::id)
            .load::<Uuid>(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .map(|id| format!("msg_{}", id.simple()))
            .collect()
    };
    let writer = async {
        for _ in 0..15 {
            send(&app, &t, &sms("+447911123456")).await;
        }
    };
    let reader = async {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/cpaas/v1/messages?limit=7&cursor={c}"),
                None => "/cpaas/v1/messages?limit=7".to_owned(),
            };
            let (_, page) = json(app.get(&path, &t).await).await;
            seen.extend(
                page["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["id"].as_str().unwrap().to_owned()),
            );
            match page["page"]["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break seen,
            }
        }
    };
    let ((), seen) = tokio::join!(writer, reader);
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no row twice");
    assert!(
        existing.is_subset(&unique),
        "every row that existed is seen"
    );
}

#[actix_web::test]
async fn usage_counts_messages_by_channel_and_status() {
    let app = spawn_app().await;
    let t = sender("enterprise");
    send(&app, &t, &sms("+14155552671")).await;
    send(&app, &t, &sms("+14155552671")).await;
    send(
        &app,
        &t,
        &json!({"channel": "PUSH", "recipient": "tok", "message_body": "hi"}),
    )
    .await;
    let (status, body) = json(
        app.get("/cpaas/v1/usage?group_by=channel", &admin_token())
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["total"], 3);
    let groups = body["data"]["groups"].as_array().unwrap();
    let sms_group = groups.iter().find(|g| g["key"] == "SMS").unwrap();
    assert_eq!(sms_group["total"], 2);
    assert_eq!(sms_group["by_status"]["QUEUED"], 2);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let (_, by_day) = json(
        app.get(
            &format!("/cpaas/v1/usage?group_by=day&from={today}&to={today}"),
            &admin_token(),
        )
        .await,
    )
    .await;
    assert_eq!(by_day["data"]["groups"][0]["key"], today);
    assert_eq!(by_day["data"]["groups"][0]["total"], 3);
    let (status, _) = json(app.get("/cpaas/v1/usage", &t).await).await;
    assert_eq!(status, 403, "usage is for admins");
    let (status, _) = json(
        app.get("/cpaas/v1/usage?group_by=colour", &admin_token())
            .await,
    )
    .await;
    assert_eq!(status, 400);
}

#[actix_web::test]
async fn a_send_renders_a_template_found_by_id_or_by_name() {
    let app = spawn_app().await;
    let t = sender("professional");
    let (status, created) = json(
        app.post(
            "/cpaas/v1/templates",
            &t,
            &json!({
                "name": "login-code",
                "channel": "SMS",
                "body": "Hello {{ first_name }}, your code is {{ code }}"
            }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let by_id = |variables: Value| {
        json!({
            "channel": "SMS",
            "recipient": "+14155552671",
            "template_id": id,
            "template_variables": variables,
        })
    };

    let (status, body) = send(&app, &t, &by_id(json!({ "first_name": "Ann" }))).await;
    assert_eq!(
        (status, code(&body)),
        (400, "ERR_CPAAS_TEMPLATE_VARIABLES_MISSING"),
        "{body}"
    );
    assert_eq!(body["error"]["details"], json!([{ "variable": "code" }]));

    let both = json!({ "first_name": "Ann", "code": "123456" });
    let (status, body) = send(&app, &t, &by_id(both.clone())).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["body"], "Hello Ann, your code is 123456");
    assert_eq!(body["data"]["template_id"], id.as_str());

    let by_name = json!({
        "channel": "SMS",
        "recipient": "+14155552671",
        "template_name": "login-code",
        "template_variables": both,
    });
    let (status, body) = send(&app, &t, &by_name).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["body"], "Hello Ann, your code is 123456");
    assert_eq!(body["data"]["template_id"], id.as_str());

    // The SMS template cannot be sent on another channel, by id or by name.
    let mut whatsapp = by_id(both.clone());
    whatsapp["channel"] = json!("WHATSAPP");
    let (status, body) = send(&app, &t, &whatsapp).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["details"][0]["field"], "template_id",
        "{body}"
    );
    let mut whatsapp = by_name.clone();
    whatsapp["channel"] = json!("WHATSAPP");
    let (status, body) = send(&app, &t, &whatsapp).await;
    assert_eq!(
        (status, code(&body)),
        (400, "ERR_CPAAS_TEMPLATE_NOT_FOUND"),
        "{body}"
    );

    let mut missing = by_id(both.clone());
    missing["template_id"] = json!(format!("tpl_{}", Uuid::now_v7().simple()));
    let (status, body) = send(&app, &t, &missing).await;
    assert_eq!(
        (status, code(&body)),
        (400, "ERR_CPAAS_TEMPLATE_NOT_FOUND"),
        "{body}"
    );
    let mut missing = by_name.clone();
    missing["template_name"] = json!("no-such-template");
    let (status, body) = send(&app, &t, &missing).await;
    assert_eq!(
        (status, code(&body)),
        (400, "ERR_CPAAS_TEMPLATE_NOT_FOUND"),
        "{body}"
    );

    let mut conn = app.pool.get().await.unwrap();
    diesel::sql_query("UPDATE templates SET status = 'PENDING' WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(Uuid::parse_str(id.trim_start_matches("tpl_")).unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    for body in [by_id(both.clone()), by_name] {
        let (status, answer) = send(&app, &t, &body).await;
        assert_eq!(
            (status, code(&answer)),
            (422, "ERR_CPAAS_TEMPLATE_NOT_APPROVED"),
            "{answer}"
        );
    }

    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM messages").await,
        2,
        "only the two rendered sends were accepted"
    );
}
