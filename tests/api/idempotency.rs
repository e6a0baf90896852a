//! Idempotency-Key: replays, reuse, concurrency, tenant scope; and the atomicity of a send.

use diesel_async::RunQueryDsl;

use crate::helpers::{TestApp, code, json, spawn_app, token};
use crate::messages::{count, sender, sms, tenant_with_sandbox};

async fn keyed(
    app: &TestApp,
    token: &str,
    key: &str,
    body: &serde_json::Value,
) -> reqwest::Response {
    app.client
        .post(app.url("/cpaas/v1/messages"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn twenty_concurrent_identical_sends_make_one_message() {
    let app = spawn_app().await;
    let t = sender("enterprise");
    let body = sms("+14155552671");
    let answers =
        futures_util::future::join_all((0..20).map(|_| keyed(&app, &t, "order-42-receipt", &body)))
            .await;
    let mut first: Option<Vec<u8>> = None;
    let (mut fresh, mut replays, mut in_flight) = (0, 0, 0);
    for res in answers {
        let status = res.status().as_u16();
        let replayed = res.headers().get("idempotent-replayed").is_some();
        let bytes = res.bytes().await.unwrap().to_vec();
        match (status, replayed) {
            (202, false) => fresh += 1,
            (202, true) => replays += 1,
            (409, _) => {
                in_flight += 1;
                let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(code(&body), "ERR_CPAAS_DUPLICATE_REQUEST");
                continue;
            }
            other => panic!(
                "unexpected answer {other:?}: {}",
                String::from_utf8_lossy(&bytes)
            ),
        }
        match &first {
            None => first = Some(bytes),
            Some(f) => assert_eq!(f, &bytes, "replays are byte-identical"),
        }
    }
    assert_eq!(fresh, 1);
    assert_eq!(fresh + replays + in_flight, 20);
    assert_eq!(count(&app, "SELECT count(*) AS n FROM messages").await, 1);
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM outbox_events").await,
        1
    );

    let late = keyed(&app, &t, "order-42-receipt", &body).await;
    assert_eq!(late.headers()["idempotent-replayed"], "true");
    assert_eq!(late.bytes().await.unwrap().to_vec(), first.unwrap());
}

#[actix_web::test]
async fn the_same_key_with_another_body_is_refused() {
    let app = spawn_app().await;
    let t = sender("enterprise");
    assert_eq!(
        keyed(&app, &t, "k1", &sms("+14155552671")).await.status(),
        202
    );
    let (status, body) = json(keyed(&app, &t, "k1", &sms("+447911123456")).await).await;
    assert_eq!(
        (status, code(&body)),
        (422, "ERR_CPAAS_IDEMPOTENCY_KEY_REUSED")
    );
    assert_eq!(count(&app, "SELECT count(*) AS n FROM messages").await, 1);
}

#[actix_web::test]
async fn keys_are_scoped_by_tenant() {
    let app = spawn_app().await;
    let (_, other) = tenant_with_sandbox(&app, "enterprise").await;
    let body = sms("+14155552671");
    let a = keyed(&app, &sender("enterprise"), "shared-key", &body).await;
    let b = keyed(&app, &other, "shared-key", &body).await;
    assert_eq!(a.status(), 202);
    assert_eq!(b.status(), 202);
    assert!(b.headers().get("idempotent-replayed").is_none());
    assert_eq!(count(&app, "SELECT count(*) AS n FROM messages").await, 2);
}

#[actix_web::test]
async fn a_failed_request_stores_nothing_under_its_key() {
    let app = spawn_app().await;
    let t = sender("enterprise");
    let (status, _) = json(keyed(&app, &t, "k2", &sms("+1415555267")).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        keyed(&app, &t, "k2", &sms("+1415555267")).await.status(),
        400,
        "re-executed, not replayed"
    );
    let too_long = "k".repeat(256);
    let (status, body) = json(keyed(&app, &t, &too_long, &sms("+14155552671")).await).await;
    assert_eq!((status, code(&body)), (400, "ERR_CPAAS_VALIDATION_FAILED"));
}

#[actix_web::test]
async fn a_failure_after_the_message_insert_leaves_neither_message_nor_event() {
    let app = spawn_app().await;
    let mut conn = app.pool.get().await.unwrap();
    diesel::sql_query(
        "CREATE FUNCTION refuse_outbox() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'injected outbox failure'; END $$",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query(
        "CREATE TRIGGER refuse_outbox BEFORE INSERT ON outbox_events \
         FOR EACH ROW EXECUTE FUNCTION refuse_outbox()",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let t = token(crate::helpers::DEV_TENANT, &["developer"], "enterprise");
    let (status, body) = json(keyed(&app, &t, "atomic-1", &sms("+14155552671")).await).await;
    assert_eq!((status, code(&body)), (500, "ERR_CPAAS_INTERNAL_ERROR"));
    assert_eq!(
        body["error"]["message"], "internal error",
        "the cause is not shown"
    );
    assert_eq!(count(&app, "SELECT count(*) AS n FROM messages").await, 0);
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM outbox_events").await,
        0
    );
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM idempotency_keys").await,
        0
    );
}

/// A request to `path` carrying `key`; the caller adds credentials and a body.
fn keyed_to(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: &str,
) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .header("idempotency-key", key)
}

/// Sends the request twice: the first answer is fresh, the second is its byte-identical
/// replay with `Idempotent-Replayed: true`. Returns the status and the parsed answer.
async fn answered_then_replayed(
    request: impl Fn() -> reqwest::RequestBuilder,
) -> (u16, serde_json::Value) {
    let first = request().send().await.unwrap();
    let status = first.status().as_u16();
    assert!(
        first.headers().get("idempotent-replayed").is_none(),
        "the first answer is not a replay"
    );
    let first = first.bytes().await.unwrap();
    let second = request().send().await.unwrap();
    assert_eq!(
        second.status().as_u16(),
        status,
        "the replay keeps the status"
    );
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(
        second.headers()["content-type"],
        "application/json",
        "a replay is JSON like the first answer"
    );
    let second = second.bytes().await.unwrap();
    assert_eq!(
        first,
        second,
        "the replay is byte-identical: {}",
        String::from_utf8_lossy(&first)
    );
    (status, serde_json::from_slice(&first).unwrap())
}

async fn assert_key_reused(res: reqwest::Response) {
    let (status, body) = json(res).await;
    assert_eq!(
        (status, code(&body)),
        (422, "ERR_CPAAS_IDEMPOTENCY_KEY_REUSED"),
        "{body}"
    );
}

#[actix_web::test]
async fn a_keyed_template_create_is_replayed_and_creates_one_template() {
    let app = spawn_app().await;
    let t = crate::templates::developer();
    let body = crate::templates::sms("welcome");
    let post = || {
        keyed_to(&app, reqwest::Method::POST, "/cpaas/v1/templates", "tpl-1")
            .bearer_auth(&t)
            .json(&body)
    };
    let (status, created) = answered_then_replayed(post).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["data"]["name"], "welcome");
    assert_eq!(count(&app, "SELECT count(*) AS n FROM templates").await, 1);
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM template_versions").await,
        1
    );

    let other = keyed_to(&app, reqwest::Method::POST, "/cpaas/v1/templates", "tpl-1")
        .bearer_auth(&t)
        .json(&crate::templates::sms("farewell"))
        .send()
        .await
        .unwrap();
    assert_key_reused(other).await;
    assert_eq!(count(&app, "SELECT count(*) AS n FROM templates").await, 1);
}

#[actix_web::test]
async fn a_keyed_opt_out_create_replays_the_status_it_first_answered() {
    let app = spawn_app().await;
    let t = sender("professional");
    let body = serde_json::json!({ "recipient": "+14155552671", "channel": "SMS" });
    let post = |key: &'static str| {
        let (t, body) = (&t, &body);
        let app = &app;
        move || {
            keyed_to(app, reqwest::Method::POST, "/cpaas/v1/opt-outs", key)
                .bearer_auth(t)
                .json(body)
        }
    };
    let (status, created) = answered_then_replayed(post("opt-1")).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["data"]["recipient"], "+14155552671");
    assert_eq!(count(&app, "SELECT count(*) AS n FROM opt_outs").await, 1);

    // Under a new key the recipient is already opted out: 200, and that is what is replayed.
    let (status, existing) = answered_then_replayed(post("opt-2")).await;
    assert_eq!(status, 200, "{existing}");
    assert_eq!(existing["data"]["id"], created["data"]["id"]);
    assert_eq!(count(&app, "SELECT count(*) AS n FROM opt_outs").await, 1);

    let other = keyed_to(&app, reqwest::Method::POST, "/cpaas/v1/opt-outs", "opt-1")
        .bearer_auth(&t)
        .json(&serde_json::json!({ "recipient": "+447911123456", "channel": "SMS" }))
        .send()
        .await
        .unwrap();
    assert_key_reused(other).await;
    assert_eq!(count(&app, "SELECT count(*) AS n FROM opt_outs").await, 1);
}

#[actix_web::test]
async fn a_keyed_webhook_create_replays_the_same_secret_and_creates_one_webhook() {
    let app = spawn_app().await;
    let t = sender("professional");
    let body = serde_json::json!({
        "url": "https://hooks.example.com/cpaas",
        "events": ["eventzr.cpaas.communication.delivered.v1"],
    });
    let post = || {
        keyed_to(&app, reqwest::Method::POST, "/cpaas/v1/webhooks", "whk-1")
            .bearer_auth(&t)
            .json(&body)
    };
    let (status, created) = answered_then_replayed(post).await;
    assert_eq!(status, 201, "{created}");
    assert!(
        created["data"]["secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_"),
        "the replay carried the same secret (compared byte for byte)"
    );
    assert_eq!(count(&app, "SELECT count(*) AS n FROM webhooks").await, 1);

    let mut changed = body.clone();
    changed["url"] = serde_json::json!("https://hooks.example.com/other");
    let other = keyed_to(&app, reqwest::Method::POST, "/cpaas/v1/webhooks", "whk-1")
        .bearer_auth(&t)
        .json(&changed)
        .send()
        .await
        .unwrap();
    assert_key_reused(other).await;
    assert_eq!(count(&app, "SELECT count(*) AS n FROM webhooks").await, 1);
}

#[actix_web::test]
async fn a_keyed_provider_delete_is_replayed_and_the_key_cannot_delete_another() {
    let app = spawn_app().await;
    let admin = crate::helpers::admin_token();
    let mut ids = Vec::new();
    for name in ["spare-1", "spare-2"] {
        let (status, body) = json(
            app.post(
                "/cpaas/v1/providers",
                &admin,
                &serde_json::json!({ "name": name, "kind": "SANDBOX" }),
            )
            .await,
        )
        .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["data"]["id"].as_str().unwrap().to_owned());
    }
    let live = "SELECT count(*) AS n FROM providers WHERE deleted_at IS NULL";
    let before = count(&app, live).await;

    let path = format!("/cpaas/v1/providers/{}", ids[0]);
    let delete = || keyed_to(&app, reqwest::Method::DELETE, &path, "del-1").bearer_auth(&admin);
    let (status, deleted) = answered_then_replayed(delete).await;
    assert_eq!(
        status, 200,
        "replayed, not re-executed (that would be 404): {deleted}"
    );
    assert_eq!(
        deleted["data"],
        serde_json::json!({ "id": ids[0], "deleted": true })
    );
    assert_eq!(count(&app, live).await, before - 1);

    let other = keyed_to(
        &app,
        reqwest::Method::DELETE,
        &format!("/cpaas/v1/providers/{}", ids[1]),
        "del-1",
    )
    .bearer_auth(&admin)
    .send()
    .await
    .unwrap();
    assert_key_reused(other).await;
    assert_eq!(
        count(&app, live).await,
        before - 1,
        "the other provider is untouched"
    );
}

#[actix_web::test]
async fn a_keyed_job_run_is_replayed_without_running_again() {
    let app = spawn_app().await;
    let run = |key: Option<&'static str>| {
        let mut req = app
            .client
            .post(app.url("/cpaas/v1/jobs/cleanup"))
            .header("x-internal-api-key", crate::helpers::INTERNAL_KEY);
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        req
    };
    let (status, first) = answered_then_replayed(|| run(Some("cleanup-2026-01-01"))).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["data"]["counts"]["login_throttles"], 0);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM idempotency_keys \
             WHERE tenant_id = '00000000-0000-0000-0000-000000000000'"
        )
        .await,
        1,
        "kept in the internal scope"
    );

    // Something for the job to clean up: a replay leaves it, a fresh run removes it.
    let mut conn = app.pool.get().await.unwrap();
    diesel::sql_query(
        "INSERT INTO login_throttles (account, failures, window_start, updated_at) \
         VALUES ('stale@example.com', 3, now() - interval '2 days', now())",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    let replay = run(Some("cleanup-2026-01-01")).send().await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let (_, replayed) = json(replay).await;
    assert_eq!(replayed, first);
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM login_throttles").await,
        1,
        "the replay did not run the job"
    );
    let (status, fresh) = json(run(Some("cleanup-2026-01-02")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(fresh["data"]["counts"]["login_throttles"], 1);
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM login_throttles").await,
        0
    );

    let (status, body) = json(
        app.client
            .post(app.url("/cpaas/v1/jobs/make-coffee"))
            .header("x-internal-api-key", crate::helpers::INTERNAL_KEY)
            .header("idempotency-key", "cleanup-2026-01-01")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (404, "ERR_CPAAS_NOT_FOUND"),
        "an unknown job is refused before the key is looked at"
    );
    let unkeyed = run(None).send().await.unwrap();
    assert_eq!(unkeyed.status(), 200);
    assert!(unkeyed.headers().get("idempotent-replayed").is_none());
}
