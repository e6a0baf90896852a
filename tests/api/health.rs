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
