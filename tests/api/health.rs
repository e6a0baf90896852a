//! Liveness, readiness through a database outage, and the API description.

use std::time::Duration;

use crate::helpers::proxy::Proxy;
use crate::helpers::{admin_token, code, db, json, spawn_app, spawn_on};

#[actix_web::test]
async fn healthz_and_readyz_answer_when_all_is_well() {
    let app = spawn_app().await;
    let (status, body) = json(
        app.client
            .get(app.url("/cpaas/v1/_internal/readyz"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["database"], "ok");
}

#[actix_web::test]
async fn readyz_is_503_while_the_database_is_unreachable_and_recovers_without_restart() {
    let seeded = spawn_app().await;
    let proxy = Proxy::start(db::server_authority()).await;
    let via_proxy = db::database_url_via(&format!("127.0.0.1:{}", proxy.port), &seeded.db_name);
    let app = spawn_on(&seeded.db_name, &via_proxy, |_| {}).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let ready = |c: reqwest::Client| {
        let url = app.url("/cpaas/v1/_internal/readyz");
        async move { c.get(url).send().await.expect("an answer, not a hang") }
    };
    assert_eq!(ready(client.clone()).await.status(), 200);

    proxy.cut().await;
    let (status, body) = json(ready(client.clone()).await).await;
    assert_eq!(status, 503);
    assert_eq!(code(&body), "ERR_CPAAS_SERVICE_UNAVAILABLE");
    assert_eq!(body["error"]["details"][0]["dependency"], "database");
    let res = client
        .get(app.url("/cpaas/v1/providers"))
        .bearer_auth(admin_token())
        .send()
        .await
        .expect("an answer, not a hang");
    let (status, body) = json(res).await;
    assert_eq!(status, 503);
    assert_eq!(code(&body), "ERR_CPAAS_SERVICE_UNAVAILABLE");

    proxy.restore();
    let mut recovered = false;
    for _ in 0..40 {
        if ready(client.clone()).await.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        recovered,
        "readyz did not recover after the database came back"
    );
    let res = client
        .get(app.url("/cpaas/v1/providers"))
        .bearer_auth(admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[actix_web::test]
async fn the_openapi_document_describes_every_route() {
    let app = spawn_app().await;
    let (status, doc) = json(
        app.client
            .get(app.url("/cpaas/v1/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let expected = [
        ("/auth/v1/login", "post"),
        ("/auth/v1/refresh", "post"),
        ("/auth/v1/logout", "post"),
        ("/auth/v1/me", "get"),
        ("/auth/v1/.well-known/jwks.json", "get"),
        ("/cpaas/v1/providers", "get"),
        ("/cpaas/v1/providers", "post"),
        ("/cpaas/v1/providers/{id}", "get"),
        ("/cpaas/v1/providers/{id}", "patch"),
        ("/cpaas/v1/providers/{id}", "delete"),
        ("/cpaas/v1/providers/{id}/health", "get"),
        ("/cpaas/v1/templates", "get"),
        ("/cpaas/v1/templates", "post"),
        ("/cpaas/v1/templates/{id}", "get"),
        ("/cpaas/v1/templates/{id}", "patch"),
        ("/cpaas/v1/templates/{id}", "delete"),
        ("/cpaas/v1/templates/{id}/preview", "post"),
        ("/cpaas/v1/templates/{id}/versions", "get"),
        ("/cpaas/v1/opt-outs", "get"),
        ("/cpaas/v1/opt-outs", "post"),
        ("/cpaas/v1/opt-outs/check", "get"),
        ("/cpaas/v1/opt-outs/{id}", "delete"),
        ("/cpaas/v1/webhooks", "get"),
        ("/cpaas/v1/webhooks", "post"),
        ("/cpaas/v1/webhooks/{id}", "get"),
        ("/cpaas/v1/webhooks/{id}", "patch"),
        ("/cpaas/v1/webhooks/{id}", "delete"),
        ("/cpaas/v1/webhooks/{id}/rotate-secret", "post"),
        ("/cpaas/v1/webhooks/{id}/deliveries", "get"),
        (
            "/cpaas/v1/webhooks/{id}/deliveries/{delivery_id}/retry",
            "post",
        ),
        ("/cpaas/v1/_internal/healthz", "get"),
        ("/cpaas/v1/_internal/readyz", "get"),
        ("/cpaas/v1/_internal/metrics", "get"),
        ("/cpaas/v1/_internal/sync-templates", "post"),
        ("/cpaas/v1/jobs/{name}", "post"),
        ("/cpaas/v1/provider-callbacks/{kind}/{provider_id}", "post"),
        (
            "/cpaas/v1/provider-callbacks/meta-whatsapp/{provider_id}",
            "get",
        ),
        ("/cpaas/v1/openapi.json", "get"),
        ("/cpaas/v1/docs", "get"),
    ];
    for (path, method) in expected {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(
            op["responses"].is_object(),
            "{method} {path} has no responses"
        );
    }
    assert!(doc["components"]["schemas"]["ErrorEnvelope"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[actix_web::test]
async fn the_playground_is_served_from_the_binary() {
    let app = spawn_app().await;
    let page = app
        .client
        .get(app.url("/cpaas/v1/docs"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("/cpaas/v1/docs/standalone.js"));
    assert!(html.contains("/cpaas/v1/openapi.json"));
    assert!(
        !html.contains("cdn."),
        "the page must not load anything from a CDN"
    );
    let script = app
        .client
        .get(app.url("/cpaas/v1/docs/standalone.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.bytes().await.unwrap().len() > 1_000_000);
}

#[actix_web::test]
async fn an_exhausted_pool_answers_503_instead_of_hanging() {
    let app = crate::helpers::spawn_app_with(|env| {
        env.insert("DATABASE_POOL_SIZE".into(), "1".into());
        env.insert("DATABASE_POOL_TIMEOUT_MS".into(), "300".into());
    })
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let held = app.pool.get().await.unwrap();
    let res = client
        .get(app.url("/cpaas/v1/providers"))
        .bearer_auth(admin_token())
        .send()
        .await
        .expect("an answer, not a hang");
    let (status, body) = json(res).await;
    assert_eq!(
        (status, code(&body)),
        (503, "ERR_CPAAS_SERVICE_UNAVAILABLE")
    );
    assert_eq!(
        body["error"]["message"], "the service is temporarily unavailable, retry shortly",
        "the cause is logged, not shown"
    );
    drop(held);
    let res = client
        .get(app.url("/cpaas/v1/providers"))
        .bearer_auth(admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
