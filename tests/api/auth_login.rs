//! Login: credentials, the same answer for unknown accounts, and durable throttling.

use serde_json::json;

use crate::helpers::{code, json, spawn_app, spawn_app_with, spawn_on};

#[actix_web::test]
async fn the_seeded_user_logs_in() {
    let app = spawn_app().await;
    let (status, body) = json(
        app.login("DEV@eventzr.com ", cpaas::seed::DEV_PASSWORD)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["expiresIn"], 3600);
    assert_eq!(body["data"]["tokenType"], "Bearer");
    assert!(body["data"]["refreshToken"].as_str().unwrap().len() > 40);
}

#[actix_web::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = spawn_app().await;
    let (s1, wrong_password) = json(app.login("dev@eventzr.com", "Password124!").await).await;
    let (s2, unknown) = json(app.login("nobody@eventzr.com", "Password123!").await).await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(code(&wrong_password), "ERR_AUTH_INVALID_CREDENTIALS");
    assert_eq!(wrong_password["error"], unknown["error"]);
}

#[actix_web::test]
async fn empty_fields_are_a_validation_error() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/auth/v1/login"))
        .json(&json!({ "email": "", "password": "" }))
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "ERR_CPAAS_VALIDATION_FAILED");
    assert_eq!(body["error"]["details"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn repeated_failures_lock_the_account_and_the_lock_survives_a_restart() {
    let limits = |env: &mut std::collections::HashMap<String, String>| {
        env.insert("LOGIN_MAX_FAILURES".into(), "3".into());
        env.insert("LOGIN_LOCKOUT_SECS".into(), "600".into());
    };
    let app = spawn_app_with(limits).await;
    for _ in 0..3 {
        assert_eq!(app.login("dev@eventzr.com", "wrong").await.status(), 401);
    }
    let res = app
        .login("dev@eventzr.com", cpaas::seed::DEV_PASSWORD)
        .await;
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry_after));
    let (status, body) = json(res).await;
    assert_eq!(status, 429);
    assert_eq!(code(&body), "ERR_AUTH_TOO_MANY_ATTEMPTS");

    app.stop().await;
    let restarted = spawn_on(&app.db_name, &app.database_url, limits).await;
    let res = restarted
        .login("dev@eventzr.com", cpaas::seed::DEV_PASSWORD)
        .await;
    assert_eq!(res.status(), 429, "the lock is kept in the database");
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(
        restarted
            .login("admin@eventzr.com", cpaas::seed::DEV_PASSWORD)
            .await
            .status(),
        200,
        "other accounts are not affected"
    );
}

#[actix_web::test]
async fn a_success_clears_earlier_failures() {
    let app = spawn_app_with(|env| {
        env.insert("LOGIN_MAX_FAILURES".into(), "3".into());
    })
    .await;
    for _ in 0..2 {
        app.login("dev@eventzr.com", "wrong").await;
    }
    assert_eq!(
        app.login("dev@eventzr.com", cpaas::seed::DEV_PASSWORD)
            .await
            .status(),
        200
    );
    for _ in 0..2 {
        app.login("dev@eventzr.com", "wrong").await;
    }
    assert_eq!(
        app.login("dev@eventzr.com", cpaas::seed::DEV_PASSWORD)
            .await
            .status(),
        200
    );
}

#[actix_web::test]
async fn one_address_spraying_many_accounts_is_throttled() {
    let app = spawn_app_with(|env| {
        env.insert("LOGIN_MAX_FAILURES_PER_IP".into(), "4".into());
    })
    .await;
    for i in 0..4 {
        assert_eq!(
            app.login(&format!("user{i}@example.com"), "guess")
                .await
                .status(),
            401
        );
    }
    let res = app
        .login("dev@eventzr.com", cpaas::seed::DEV_PASSWORD)
        .await;
    assert!(res.headers().contains_key("retry-after"));
    let (status, body) = json(res).await;
    assert_eq!(status, 429);
    assert_eq!(code(&body), "ERR_AUTH_TOO_MANY_ATTEMPTS");
}
