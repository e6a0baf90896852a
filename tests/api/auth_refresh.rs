//! Refresh-token rotation, re-use detection and logout.

use serde_json::{Value, json};

use crate::helpers::{TestApp, code, json, spawn_app};

async fn login(app: &TestApp) -> Value {
    let (status, body) = json(
        app.login("dev@eventzr.com", cpaas::seed::DEV_PASSWORD)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

async fn refresh(app: &TestApp, token: &str) -> (u16, Value) {
    json(
        app.client
            .post(app.url("/auth/v1/refresh"))
            .json(&json!({ "refreshToken": token }))
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn refresh_token(data: &Value) -> String {
    data["refreshToken"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn a_refresh_rotates_the_pair() {
    let app = spawn_app().await;
    let first = login(&app).await;
    let (status, body) = refresh(&app, &refresh_token(&first)).await;
    assert_eq!(status, 200, "{body}");
    let second = &body["data"];
    assert_ne!(second["refreshToken"], first["refreshToken"]);
    assert_eq!(second["expiresIn"], 3600);
    assert_eq!(second["tokenType"], "Bearer");
    assert_eq!(
        app.get("/auth/v1/me", second["accessToken"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

#[actix_web::test]
async fn reusing_a_rotated_token_revokes_the_whole_family() {
    let app = spawn_app().await;
    let r1 = refresh_token(&login(&app).await);
    let (_, body) = refresh(&app, &r1).await;
    let r2 = refresh_token(&body["data"]);

    let (status, body) = refresh(&app, &r1).await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "ERR_AUTH_REFRESH_TOKEN_REUSED");

    let (status, body) = refresh(&app, &r2).await;
    assert_eq!(status, 401, "the successor dies with its family");
    assert_eq!(code(&body), "ERR_AUTH_INVALID_REFRESH_TOKEN");
}

#[actix_web::test]
async fn another_login_is_a_separate_family() {
    let app = spawn_app().await;
    let a = refresh_token(&login(&app).await);
    let b = refresh_token(&login(&app).await);
    refresh(&app, &a).await;
    assert_eq!(refresh(&app, &a).await.0, 401);
    assert_eq!(
        refresh(&app, &b).await.0,
        200,
        "another session is untouched"
    );
}

#[actix_web::test]
async fn logout_revokes_the_family() {
    let app = spawn_app().await;
    let r1 = refresh_token(&login(&app).await);
    let (_, body) = refresh(&app, &r1).await;
    let r2 = refresh_token(&body["data"]);
    let res = app
        .client
        .post(app.url("/auth/v1/logout"))
        .json(&json!({ "refreshToken": r2 }))
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["revoked"], true);
    let (status, body) = refresh(&app, &r2).await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "ERR_AUTH_INVALID_REFRESH_TOKEN");
}

#[actix_web::test]
async fn an_unknown_refresh_token_is_refused() {
    let app = spawn_app().await;
    let (status, body) = refresh(&app, "rt_not-a-token-we-issued").await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "ERR_AUTH_INVALID_REFRESH_TOKEN");
}

/// Two concurrent refreshes of one token are serialised on the family's row lock: exactly one
/// gets a new pair, the other is a re-use, which revokes the family, so the winner's new
/// refresh token is dead too and the client must log in again.
#[actix_web::test]
async fn two_concurrent_refreshes_of_one_token_let_one_win_and_then_revoke_the_family() {
    let app = spawn_app().await;
    let r1 = refresh_token(&login(&app).await);
    let (a, b) = tokio::join!(refresh(&app, &r1), refresh(&app, &r1));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 401]);
    let (winner, loser) = if a.0 == 200 { (a.1, b.1) } else { (b.1, a.1) };
    assert_eq!(code(&loser), "ERR_AUTH_REFRESH_TOKEN_REUSED");
    let (status, body) = refresh(&app, &refresh_token(&winner["data"])).await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "ERR_AUTH_INVALID_REFRESH_TOKEN");
}
