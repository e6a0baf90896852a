//! The internal API key guards operator endpoints.

use crate::helpers::{INTERNAL_KEY, code, json, spawn_app, spawn_app_with};

async fn run_cleanup(app: &crate::helpers::TestApp, key: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = app.client.post(app.url("/cpaas/v1/jobs/cleanup"));
    if let Some(key) = key {
        req = req.header("x-internal-api-key", key);
    }
    json(req.send().await.unwrap()).await
}

#[actix_web::test]
async fn the_configured_key_runs_a_job() {
    let app = spawn_app().await;
    let (status, body) = run_cleanup(&app, Some(INTERNAL_KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["job"], "cleanup");
    assert!(body["data"]["counts"]["expired_refresh_tokens"].is_number());
}

#[actix_web::test]
async fn a_missing_key_is_refused() {
    let app = spawn_app().await;
    let (status, body) = run_cleanup(&app, None).await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "ERR_CPAAS_INVALID_API_KEY");
}

#[actix_web::test]
async fn a_wrong_key_is_refused() {
    let app = spawn_app().await;
    for wrong in [
        "test-internal-kez",
        "test-internal-key-and-more",
        "",
        "TEST-INTERNAL-KEY",
    ] {
        let (status, body) = run_cleanup(&app, Some(wrong)).await;
        assert_eq!(status, 401, "key {wrong:?}");
        assert_eq!(code(&body), "ERR_CPAAS_INVALID_API_KEY");
    }
}

#[actix_web::test]
async fn with_no_key_configured_everything_is_refused() {
    let app = spawn_app_with(|env| {
        env.remove("INTERNAL_API_KEY");
    })
    .await;
    for key in [Some(INTERNAL_KEY), Some(""), None] {
        let (status, body) = run_cleanup(&app, key).await;
        assert_eq!(status, 401, "key {key:?}");
        assert_eq!(code(&body), "ERR_CPAAS_INVALID_API_KEY");
    }
}

#[actix_web::test]
async fn an_unknown_job_is_a_404() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/cpaas/v1/jobs/make-coffee"))
        .header("x-internal-api-key", INTERNAL_KEY)
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, 404);
    assert_eq!(code(&body), "ERR_CPAAS_NOT_FOUND");
}

/// Operator endpoints called without an Idempotency-Key hold no connection while their work
/// takes its own: with a pool of one connection, the drain, a job and the template sync all
/// answer, and the drain does its work.
#[actix_web::test]
async fn work_without_an_idempotency_key_pins_no_connection() {
    let app = spawn_app_with(|env| {
        env.insert("DATABASE_POOL_SIZE".into(), "1".into());
    })
    .await;
    let (status, body) = crate::messages::send(
        &app,
        &crate::messages::sender("professional"),
        &crate::messages::sms("+14155552671"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    for (path, field) in [
        ("/cpaas/v1/_internal/process-outbox", "claimed"),
        ("/cpaas/v1/jobs/retry-due", "job"),
        ("/cpaas/v1/_internal/sync-templates", "providers"),
    ] {
        let data = app.internal_post(path).await;
        assert!(!data[field].is_null(), "{path}: {data}");
    }
    let sent = "SELECT count(*) AS n FROM messages WHERE status = 'SENT'";
    assert_eq!(crate::messages::count(&app, sent).await, 1);
}
