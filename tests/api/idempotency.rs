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
