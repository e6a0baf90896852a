//! Sessions end when they should: a password change revokes every session of the user and
//! the access tokens issued before it; a disabled user's tokens stop working within a minute.

use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::{TestApp, json, spawn_app, spawn_app_with};

const DEV: &str = "dev@eventzr.com";
const PASSWORD: &str = cpaas::seed::DEV_PASSWORD;

async fn login(app: &TestApp, email: &str, password: &str) -> (u16, Value) {
    json(app.login(email, password).await).await
}

async fn refresh(app: &TestApp, token: &str) -> u16 {
    app.client
        .post(app.url("/auth/v1/refresh"))
        .json(&json!({ "refreshToken": token }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn change(app: &TestApp, token: &str, current: &str, new: &str) -> (u16, Value) {
    json(
        app.post(
            "/auth/v1/password",
            token,
            &json!({ "current_password": current, "new_password": new }),
        )
        .await,
    )
    .await
}

#[actix_web::test]
async fn a_password_change_revokes_every_session_and_earlier_access_tokens() {
    let app = spawn_app().await;
    let (_, first) = login(&app, DEV, PASSWORD).await;
    let (_, second) = login(&app, DEV, PASSWORD).await;
    let access = first["data"]["accessToken"].as_str().unwrap().to_owned();
    let refresh_tokens = [
        first["data"]["refreshToken"].as_str().unwrap().to_owned(),
        second["data"]["refreshToken"].as_str().unwrap().to_owned(),
    ];
    // Tokens carry whole seconds: the change must come in a later second than their issue.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let (status, body) = change(&app, &access, "wrong password", "N3w-Passw0rd!").await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = change(&app, &access, PASSWORD, &"x".repeat(2000)).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = change(&app, &access, PASSWORD, "short").await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = change(&app, &access, PASSWORD, "N3w-Passw0rd!").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["revoked_sessions"], 2, "{body}");
    for token in &refresh_tokens {
        assert_eq!(refresh(&app, token).await, 401, "a revoked session");
    }
    let (status, _) = json(app.get("/cpaas/v1/providers", &access).await).await;
    assert_eq!(status, 401, "an access token from before the change");
    assert_eq!(login(&app, DEV, PASSWORD).await.0, 401);
    let (status, fresh) = login(&app, DEV, "N3w-Passw0rd!").await;
    assert_eq!(status, 200, "{fresh}");
    let token = fresh["data"]["accessToken"].as_str().unwrap();
    assert_eq!(
        json(app.get("/cpaas/v1/providers", token).await).await.0,
        200
    );
}

#[actix_web::test]
async fn a_disabled_user_can_no_longer_log_in_refresh_or_use_an_access_token() {
    let app = spawn_app_with(|env| {
        env.insert("ACCOUNT_CHECK_TTL_MS".into(), "0".into());
    })
    .await;
    let (_, session) = login(&app, DEV, PASSWORD).await;
    let access = session["data"]["accessToken"].as_str().unwrap().to_owned();
    let refresh_token = session["data"]["refreshToken"].as_str().unwrap().to_owned();
    assert_eq!(
        json(app.get("/cpaas/v1/providers", &access).await).await.0,
        200
    );
    let out = Command::new(env!("CARGO_BIN_EXE_cpaas"))
        .args(["user", "disable", "--email", "Dev@Eventzr.com"])
        .env_clear()
        .env("DATABASE_URL", &app.database_url)
        .env("APP_ENV", "development")
        .env("CPAAS_ENCRYPTION_KEY", crate::helpers::ENCRYPTION_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 sessions revoked"));
    assert_eq!(
        json(app.get("/cpaas/v1/providers", &access).await).await.0,
        401
    );
    assert_eq!(refresh(&app, &refresh_token).await, 401);
    assert_eq!(login(&app, DEV, PASSWORD).await.0, 401);
}
