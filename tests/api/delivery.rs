//! Delivery through real provider wire formats (Twilio against wiremock): sending, retries,
//! failover, permanent failures, the circuit breaker and the ambiguous-outcome rule.

use std::collections::HashMap;

use diesel_async::RunQueryDsl;
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{body_string_contains, method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{TestApp, json, spawn_app, spawn_app_with, token};
use crate::messages::{count, send, sender, sms};

pub const MESSAGES: &str = r"^/2010-04-01/Accounts/AC[0-9a-f]+/Messages\.json$";

pub fn twilio(name: &str, priority: i32, base_url: &str) -> Value {
    json!({
        "name": name, "kind": "TWILIO", "channels": ["SMS"], "priority": priority,
        "config": { "from": "+15005550006", "base_url": base_url },
        "credentials": { "account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "secret" }
    })
}

fn accepted() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "sid": format!("SM{}", Uuid::new_v4().simple()), "status": "queued", "price": null
    }))
}

fn server_error() -> ResponseTemplate {
    ResponseTemplate::new(500)
        .set_body_json(json!({ "code": 20500, "message": "Internal Server Error", "status": 500 }))
}

/// A tenant whose only SMS providers are the given Twilio accounts; returns (tenant, sender token, provider ids).
pub async fn tenant_with(app: &TestApp, providers: &[Value]) -> (Uuid, String, Vec<String>) {
    let tenant = Uuid::now_v7();
    let admin = token(tenant, &["admin"], "enterprise");
    let mut ids = Vec::new();
    for p in providers {
        let (status, body) = json(app.post("/cpaas/v1/providers", &admin, p).await).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["data"]["id"].as_str().unwrap().to_owned());
    }
    (tenant, token(tenant, &["developer"], "enterprise"), ids)
}

async fn message(app: &TestApp, token: &str, id: &str) -> Value {
    json(app.get(&format!("/cpaas/v1/messages/{id}"), token).await)
        .await
        .1["data"]
        .clone()
}

async fn attempts(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    json(
        app.get(&format!("/cpaas/v1/messages/{id}/attempts"), token)
            .await,
    )
    .await
    .1["data"]
        .as_array()
        .unwrap()
        .clone()
}

fn fast_retries(env: &mut HashMap<String, String>) {
    env.insert("DELIVERY_MAX_ATTEMPTS_PER_PROVIDER".into(), "2".into());
    env.insert("DELIVERY_RETRY_BASE_MS".into(), "0".into());
}

#[actix_web::test]
async fn a_sandbox_message_is_sent_with_its_attempt_and_event() {
    let app = spawn_app().await;
    let t = sender("professional");
    let (_, created) = send(&app, &t, &sms("+14155552671")).await;
    let id = created["data"]["id"].as_str().unwrap();
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    let m = message(&app, &t, id).await;
    assert_eq!(m["status"], "SENT");
    assert_eq!(m["provider"], "SANDBOX");
    assert!(
        m["provider_message_id"]
            .as_str()
            .unwrap()
            .starts_with("sbx_")
    );
    assert_eq!(m["attempts"], 1);
    assert!(m["sent_at"].is_string());
    let a = attempts(&app, &t, id).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["outcome"], "ACCEPTED");
    let sent = "SELECT count(*) AS n FROM outbox_events WHERE topic = 'eventzr.cpaas.communication.sent.v1'";
    assert_eq!(count(&app, sent).await, 1);
}

/// Statements stay prepared on each connection. A migration that adds columns while the
/// process runs (a rolling deploy) must not break the statements already prepared.
#[actix_web::test]
async fn columns_added_while_running_break_no_prepared_statement() {
    // One connection: every statement before and after the migration runs on it.
    let app = spawn_app_with(|env| {
        env.insert("DATABASE_POOL_SIZE".into(), "1".into());
    })
    .await;
    let t = sender("professional");
    let send_and_deliver = || async {
        let (status, created) = send(&app, &t, &sms("+14155552671")).await;
        assert_eq!(status, 202, "{created}");
        let report = app
            .internal_post("/cpaas/v1/_internal/process-outbox")
            .await;
        assert_eq!(report["failed"], 0, "{report}");
        let id = created["data"]["id"].as_str().unwrap();
        message(&app, &t, id).await["status"].clone()
    };
    assert_eq!(send_and_deliver().await, "SENT");
    let mut conn = app.pool.get().await.unwrap();
    for table in ["messages", "message_attempts", "outbox_events", "providers"] {
        diesel::sql_query(format!("ALTER TABLE {table} ADD COLUMN rollout_note text"))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    drop(conn);
    assert_eq!(send_and_deliver().await, "SENT");
}

/// The statements over a batch of ids are planned for each batch, never kept: a kept one is
/// given a generic plan after five runs, and one made on the small tables of a new database
/// scans the whole table on every batch after (each batch slower than the one before on a
/// server that has not analysed the table since). The send path's statements stay kept.
#[actix_web::test]
async fn statements_over_a_batch_of_ids_are_planned_for_each_batch() {
    let app = spawn_app_with(|env| {
        env.insert("DATABASE_POOL_SIZE".into(), "1".into());
    })
    .await;
    let t = sender("professional");
    let mut ids = Vec::new();
    // More batches than the five runs after which a kept statement gets its generic plan.
    for _ in 0..7 {
        let (status, created) = send(&app, &t, &sms("+14155552671")).await;
        assert_eq!(status, 202, "{created}");
        let report = app
            .internal_post("/cpaas/v1/_internal/process-outbox")
            .await;
        assert_eq!(report["failed"], 0, "{report}");
        ids.push(created["data"]["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        assert_eq!(message(&app, &t, id).await["status"], "SENT");
    }
    #[derive(diesel::QueryableByName)]
    struct Kept {
        #[diesel(sql_type = diesel::sql_types::Text)]
        statement: String,
    }
    let mut conn = app.pool.get().await.unwrap();
    let kept_over_ids: Vec<String> = diesel::sql_query(
        "SELECT statement FROM pg_prepared_statements \
         WHERE statement LIKE '%= ANY($1)%' \
           AND (statement LIKE '%messages%' OR statement LIKE '%outbox_events%') \
           AND statement NOT LIKE '%pg_prepared_statements%'",
    )
    .load::<Kept>(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|k| k.statement)
    .collect();
    drop(conn);
    assert!(
        kept_over_ids.is_empty(),
        "no statement over a batch of ids is kept: {kept_over_ids:#?}"
    );
    let kept_inserts = count(
        &app,
        "SELECT count(*) AS n FROM pg_prepared_statements \
         WHERE statement LIKE 'WITH blocked AS (%INSERT INTO messages %'",
    )
    .await;
    assert_eq!(kept_inserts, 1, "the send's insert stays prepared");
}
#[actix_web::test]
async fn a_drained_batch_sends_each_message_once_and_a_failure_only_retries_its_own() {
    let twilio_server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .and(body_string_contains("To=%2B14155550100"))
        .respond_with(server_error())
        .with_priority(1)
        .mount(&twilio_server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .respond_with(accepted())
        .with_priority(2)
        .mount(&twilio_server)
        .await;
    let app = spawn_app().await;
    let (_, t, _) = tenant_with(&app, &[twilio("only", 1, &twilio_server.uri())]).await;
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for n in 0..30 {
        let to = if n % 10 == 0 {
            "+14155550100"
        } else {
            "+14155552671"
        };
        let (status, created) = send(&app, &t, &sms(to)).await;
        assert_eq!(status, 202, "{created}");
        let id = created["data"]["id"].as_str().unwrap().to_owned();
        if n % 10 == 0 {
            bad.push(id)
        } else {
            good.push(id)
        }
    }
    // One drain claims all of them in one batch; three failures stay below the circuit's
    // threshold, so the failed ones wait for their retry on the same provider.
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    for id in &good {
        let m = message(&app, &t, id).await;
        assert_eq!(m["status"], "SENT", "{m}");
        assert_eq!(m["attempts"], 1);
        let a = attempts(&app, &t, id).await;
        assert_eq!(a.len(), 1);
        assert_eq!(a[0]["outcome"], "ACCEPTED");
    }
    for id in &bad {
        let m = message(&app, &t, id).await;
        assert_eq!(m["status"], "QUEUED", "{m}");
        let a = attempts(&app, &t, id).await;
        assert_eq!(a.len(), 1);
        assert_eq!(a[0]["outcome"], "TRANSIENT_FAILURE");
    }
    assert_eq!(twilio_server.received_requests().await.unwrap().len(), 30);
    let sent = "SELECT count(*) AS n FROM outbox_events WHERE topic = 'eventzr.cpaas.communication.sent.v1'";
    assert_eq!(count(&app, sent).await, good.len() as i64);
    let open = "SELECT count(*) AS n FROM message_attempts WHERE finished_at IS NULL";
    assert_eq!(count(&app, open).await, 0);
}

#[actix_web::test]
async fn a_primary_that_keeps_failing_hands_the_message_to_the_secondary_once() {
    let primary = MockServer::start().await;
    let secondary = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .respond_with(server_error())
        .mount(&primary)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .respond_with(accepted())
        .mount(&secondary)
        .await;
    let app = spawn_app_with(fast_retries).await;
    let (_, t, ids) = tenant_with(
        &app,
        &[
            twilio("primary", 1, &primary.uri()),
            twilio("secondary", 2, &secondary.uri()),
        ],
    )
    .await;
    let (status, created) = send(&app, &t, &sms("+14155552671")).await;
    assert_eq!(status, 202);
    let id = created["data"]["id"].as_str().unwrap();

    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    assert_eq!(
        message(&app, &t, id).await["status"],
        "QUEUED",
        "first failure: retry later"
    );
    let report = app.internal_post("/cpaas/v1/jobs/retry-due").await;
    assert_eq!(report["counts"]["sent"], 1, "{report}");

    let m = message(&app, &t, id).await;
    assert_eq!(m["status"], "SENT");
    assert_eq!(m["provider_id"], ids[1]);
    let a = attempts(&app, &t, id).await;
    let outcomes: Vec<&str> = a.iter().map(|x| x["outcome"].as_str().unwrap()).collect();
    assert_eq!(
        outcomes,
        ["TRANSIENT_FAILURE", "TRANSIENT_FAILURE", "ACCEPTED"]
    );
    assert_eq!(a[0]["provider_id"], ids[0]);
    assert_eq!(a[2]["provider_id"], ids[1]);
    assert_eq!(primary.received_requests().await.unwrap().len(), 2);
    assert_eq!(secondary.received_requests().await.unwrap().len(), 1);

    #[derive(diesel::QueryableByName)]
    struct Payload {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        payload: Value,
    }
    use diesel_async::RunQueryDsl;
    let mut conn = app.pool.get().await.unwrap();
    let failovers: Vec<Payload> = diesel::sql_query(
        "SELECT payload FROM outbox_events WHERE topic = 'eventzr.cpaas.provider.failover.v1'",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert_eq!(failovers.len(), 1);
    let data = &failovers[0].payload["data"];
    assert_eq!(data["messageId"], id);
    assert_eq!(data["fromProvider"], "TWILIO");
    assert_eq!(data["toProvider"], "TWILIO");
    assert_eq!(data["fromProviderId"], ids[0]);
    assert_eq!(data["toProviderId"], ids[1]);
    assert_eq!(data["reason"], "retries_exhausted");
}

#[actix_web::test]
async fn a_permanent_refusal_fails_the_message_without_failover() {
    let primary = MockServer::start().await;
    let secondary = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400})))
        .mount(&primary)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .respond_with(accepted())
        .mount(&secondary)
        .await;
    let app = spawn_app_with(fast_retries).await;
    let (_, t, _) = tenant_with(
        &app,
        &[
            twilio("primary", 1, &primary.uri()),
            twilio("secondary", 2, &secondary.uri()),
        ],
    )
    .await;
    let (_, created) = send(&app, &t, &sms("+14155552671")).await;
    let id = created["data"]["id"].as_str().unwrap();
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    app.internal_post("/cpaas/v1/jobs/retry-due").await;
    let m = message(&app, &t, id).await;
    assert_eq!(m["status"], "FAILED");
    assert_eq!(m["error"]["code"], "21211");
    assert!(m["failed_at"].is_string());
    assert_eq!(secondary.received_requests().await.unwrap().len(), 0);
    let failed = "SELECT count(*) AS n FROM outbox_events WHERE topic = 'eventzr.cpaas.communication.failed.v1'";
    assert_eq!(count(&app, failed).await, 1);
}

#[actix_web::test]
async fn the_circuit_opens_after_repeated_failures_and_half_opens_after_the_cool_down() {
    let primary = MockServer::start().await;
    let secondary = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .respond_with(server_error())
        .mount(&primary)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .respond_with(accepted())
        .mount(&secondary)
        .await;
    let app = spawn_app_with(|env| {
        env.insert("DELIVERY_MAX_ATTEMPTS_PER_PROVIDER".into(), "5".into());
        env.insert("DELIVERY_RETRY_BASE_MS".into(), "0".into());
        env.insert("CIRCUIT_FAILURE_THRESHOLD".into(), "2".into());
        env.insert("CIRCUIT_COOLDOWN_SECS".into(), "1".into());
    })
    .await;
    let (_, t, ids) = tenant_with(
        &app,
        &[
            twilio("primary", 1, &primary.uri()),
            twilio("secondary", 2, &secondary.uri()),
        ],
    )
    .await;
    let health = |id: String| {
        let app = &app;
        let t = t.clone();
        async move {
            json(
                app.get(&format!("/cpaas/v1/providers/{id}/health"), &t)
                    .await,
            )
            .await
            .1["data"]
                .clone()
        }
    };

    let (_, first) = send(&app, &t, &sms("+14155552671")).await;
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    app.internal_post("/cpaas/v1/jobs/retry-due").await;
    assert_eq!(
        message(&app, &t, first["data"]["id"].as_str().unwrap()).await["status"],
        "SENT"
    );
    assert_eq!(
        primary.received_requests().await.unwrap().len(),
        2,
        "two failures open the circuit"
    );
    let h = health(ids[0].clone()).await;
    assert_eq!(h["state"], "UNHEALTHY");
    assert_eq!(h["consecutive_failures"], 2);

    let (_, second) = send(&app, &t, &sms("+14155552671")).await;
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    assert_eq!(
        message(&app, &t, second["data"]["id"].as_str().unwrap()).await["provider_id"],
        ids[1]
    );
    assert_eq!(
        primary.received_requests().await.unwrap().len(),
        2,
        "an open circuit is skipped"
    );

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    primary.reset().await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .respond_with(accepted())
        .mount(&primary)
        .await;
    let (_, third) = send(&app, &t, &sms("+14155552671")).await;
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    let m = message(&app, &t, third["data"]["id"].as_str().unwrap()).await;
    assert_eq!(
        m["provider_id"], ids[0],
        "after the cool-down the primary gets a trial"
    );
    assert_eq!(m["status"], "SENT");
    let h = health(ids[0].clone()).await;
    assert_eq!(h["state"], "HEALTHY", "a success closes the circuit");
    assert_eq!(h["consecutive_failures"], 0);
}

#[actix_web::test]
async fn a_timeout_after_sending_is_never_resent_through_another_provider() {
    let primary = MockServer::start().await;
    let secondary = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .respond_with(accepted().set_delay(std::time::Duration::from_millis(1500)))
        .mount(&primary)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .respond_with(accepted())
        .mount(&secondary)
        .await;
    let app = spawn_app_with(|env| {
        fast_retries(env);
        env.insert("PROVIDER_TIMEOUT_MS".into(), "300".into());
    })
    .await;
    let (_, t, ids) = tenant_with(
        &app,
        &[
            twilio("primary", 1, &primary.uri()),
            twilio("secondary", 2, &secondary.uri()),
        ],
    )
    .await;
    let (_, created) = send(&app, &t, &sms("+14155552671")).await;
    let id = created["data"]["id"].as_str().unwrap();
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    let m = message(&app, &t, id).await;
    assert_eq!(m["status"], "QUEUED");
    assert_eq!(m["error"]["code"], "AMBIGUOUS_OUTCOME");
    app.internal_post("/cpaas/v1/jobs/retry-due").await;
    let m = message(&app, &t, id).await;
    assert_eq!(m["status"], "FAILED");
    assert_eq!(m["error"]["code"], "AMBIGUOUS_OUTCOME");
    let a = attempts(&app, &t, id).await;
    assert_eq!(a.len(), 2);
    assert!(
        a.iter()
            .all(|x| x["provider_id"] == ids[0] && x["outcome"] == "AMBIGUOUS")
    );
    assert_eq!(
        secondary.received_requests().await.unwrap().len(),
        0,
        "never through the secondary"
    );
}
