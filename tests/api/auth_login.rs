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

async fn login_from(
    app: &crate::helpers::TestApp,
    address: &str,
    email: &str,
    password: &str,
) -> u16 {
    app.client
        .post(app.url("/auth/v1/login"))
        .header("x-forwarded-for", address)
        .json(&serde_json::json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn behind_a_proxy(env: &mut std::collections::HashMap<String, String>) {
    env.insert("TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
    env.insert("LOGIN_MAX_FAILURES".into(), "3".into());
}

#[actix_web::test]
async fn a_victims_correct_login_from_another_address_succeeds_while_an_attacker_hammers_the_account()
 {
    let app = spawn_app_with(behind_a_proxy).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(login_from(&app, "203.0.113.5", "dev@eventzr.com", "guess").await);
    }
    assert_eq!(&statuses[..3], &[401, 401, 401], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(
        login_from(
            &app,
            "203.0.113.5",
            "dev@eventzr.com",
            cpaas::seed::DEV_PASSWORD
        )
        .await,
        429,
        "the attacker's address stays locked for this account"
    );
    assert_eq!(
        login_from(
            &app,
            "198.51.100.7",
            "dev@eventzr.com",
            cpaas::seed::DEV_PASSWORD
        )
        .await,
        200,
        "the owner, from another address, gets in"
    );
}

#[actix_web::test]
async fn concurrent_guesses_cannot_exceed_the_limit() {
    let app = spawn_app_with(behind_a_proxy).await;
    let guesses = (0..20).map(|_| login_from(&app, "203.0.113.9", "dev@eventzr.com", "guess"));
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        checked <= 3,
        "{checked} passwords were checked: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
}

#[actix_web::test]
async fn fifty_concurrent_wrong_logins_leave_other_endpoints_answering() {
    let app = spawn_app_with(|env| {
        env.insert("TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
    })
    .await;
    let token = crate::helpers::admin_token();
    let flood = futures_util::future::join_all((0..50).map(|i| {
        let address = format!("198.51.100.{}", i + 1);
        let app = &app;
        async move { login_from(app, &address, "dev@eventzr.com", "guess").await }
    }));
    let probe = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        let status = app.get("/cpaas/v1/providers", &token).await.status();
        (status, started.elapsed())
    };
    let (statuses, (status, elapsed)) = futures_util::join!(flood, probe);
    assert_eq!(status, 200);
    assert!(
        elapsed < std::time::Duration::from_secs(1),
        "took {elapsed:?} during the flood"
    );
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
}

#[actix_web::test]
async fn oversized_credentials_are_a_validation_error() {
    let app = crate::helpers::spawn_app().await;
    let long_email = format!("{}@example.com", "a".repeat(300));
    let (status, body) = json(app.login(&long_email, "whatever").await).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = json(app.login("dev@eventzr.com", &"p".repeat(2048)).await).await;
    assert_eq!(status, 400, "{body}");
}
