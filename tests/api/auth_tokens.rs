//! The bearer-token matrix: what is accepted and what each refusal says.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::json;

use crate::helpers::{DEV_TENANT, claims, code, json, key_path, spawn_app, test_keys, token};

async fn me(app: &crate::helpers::TestApp, token: &str) -> (u16, serde_json::Value) {
    json(app.get("/auth/v1/me", token).await).await
}

fn sign_with(header: Header, claims: &cpaas::auth::Claims) -> String {
    let pem = std::fs::read_to_string(key_path()).unwrap();
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn rs256_with_kid(kid: &str) -> Header {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    header
}

#[actix_web::test]
async fn a_valid_token_is_accepted_and_its_claims_returned() {
    let app = spawn_app().await;
    let (status, body) = me(&app, &token(DEV_TENANT, &["developer"], "starter")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["tenantId"], DEV_TENANT.to_string());
    assert_eq!(body["data"]["planTier"], "starter");
    assert_eq!(body["meta"]["tenant_id"], DEV_TENANT.to_string());
}

#[actix_web::test]
async fn an_unsigned_alg_none_token_is_refused() {
    let app = spawn_app().await;
    let header = URL_SAFE_NO_PAD
        .encode(json!({"alg": "none", "typ": "JWT", "kid": test_keys().kid()}).to_string());
    let payload = URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&claims(DEV_TENANT, &["admin"], "free")).unwrap());
    let (status, body) = me(&app, &format!("{header}.{payload}.")).await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "ERR_CPAAS_UNAUTHORIZED");
}

#[actix_web::test]
async fn an_hs256_token_signed_with_the_public_key_is_refused() {
    let app = spawn_app().await;
    let private =
        rsa::RsaPrivateKey::from_pkcs8_pem(&std::fs::read_to_string(key_path()).unwrap()).unwrap();
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(test_keys().kid().to_owned());
    let forged = jsonwebtoken::encode(
        &header,
        &claims(DEV_TENANT, &["admin"], "enterprise"),
        &EncodingKey::from_secret(public_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let (status, body) = me(&app, &forged).await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "ERR_CPAAS_UNAUTHORIZED");
}

#[actix_web::test]
async fn a_token_with_an_unknown_kid_is_refused() {
    let app = spawn_app().await;
    let t = sign_with(
        rs256_with_kid("some-other-key"),
        &claims(DEV_TENANT, &["admin"], "free"),
    );
    let (status, body) = me(&app, &t).await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "ERR_CPAAS_UNAUTHORIZED");
    let t = sign_with(
        Header::new(Algorithm::RS256),
        &claims(DEV_TENANT, &["admin"], "free"),
    );
    assert_eq!(me(&app, &t).await.0, 401, "a token without kid");
}

#[actix_web::test]
async fn a_token_for_another_issuer_or_audience_is_refused() {
    let app = spawn_app().await;
    let kid = test_keys().kid().to_owned();
    let mut wrong_iss = claims(DEV_TENANT, &["admin"], "free");
    wrong_iss.iss = Some("someone-else".into());
    let mut wrong_aud = claims(DEV_TENANT, &["admin"], "free");
    wrong_aud.aud = Some("another-audience".into());
    for c in [wrong_iss, wrong_aud] {
        let (status, body) = me(&app, &sign_with(rs256_with_kid(&kid), &c)).await;
        assert_eq!(status, 401);
        assert_eq!(code(&body), "ERR_CPAAS_UNAUTHORIZED");
    }
}

#[actix_web::test]
async fn an_expired_token_says_so() {
    let app = spawn_app().await;
    let mut c = claims(DEV_TENANT, &["admin"], "free");
    c.iat -= 7200;
    c.exp = chrono::Utc::now().timestamp() - 120;
    let (status, body) = me(&app, &test_keys().sign(&c).unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "ERR_CPAAS_TOKEN_EXPIRED");
}

#[actix_web::test]
async fn a_token_within_the_clock_leeway_is_accepted() {
    let app = spawn_app().await;
    let mut c = claims(DEV_TENANT, &["admin"], "free");
    c.exp = chrono::Utc::now().timestamp() - 5;
    assert_eq!(me(&app, &test_keys().sign(&c).unwrap()).await.0, 200);
}

#[actix_web::test]
async fn a_refresh_token_is_not_an_access_token() {
    let app = spawn_app().await;
    let (_, login) = json(
        app.login("dev@eventzr.com", cpaas::seed::DEV_PASSWORD)
            .await,
    )
    .await;
    let refresh = login["data"]["refreshToken"].as_str().unwrap();
    let (status, body) = me(&app, refresh).await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "ERR_CPAAS_UNAUTHORIZED");
}

#[actix_web::test]
async fn a_missing_or_malformed_authorization_header_is_refused() {
    let app = spawn_app().await;
    let (status, body) = json(app.client.get(app.url("/auth/v1/me")).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "ERR_CPAAS_UNAUTHORIZED");
    let res = app
        .client
        .get(app.url("/cpaas/v1/providers"))
        .header(
            "authorization",
            format!("Basic {}", token(DEV_TENANT, &["admin"], "free")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(json(res).await.0, 401);
}

#[actix_web::test]
async fn x_tenant_id_must_match_the_token() {
    let app = spawn_app().await;
    let t = token(DEV_TENANT, &["admin"], "free");
    let with = |tenant: String| {
        app.client
            .get(app.url("/cpaas/v1/providers"))
            .bearer_auth(&t)
            .header("x-tenant-id", tenant)
            .send()
    };
    assert_eq!(with(DEV_TENANT.to_string()).await.unwrap().status(), 200);
    let (status, body) = json(with(uuid::Uuid::now_v7().to_string()).await.unwrap()).await;
    assert_eq!(status, 403);
    assert_eq!(code(&body), "ERR_CPAAS_TENANT_MISMATCH");
    assert_eq!(json(with("garbage".into()).await.unwrap()).await.0, 403);
}

#[actix_web::test]
async fn tokens_verify_against_the_published_jwks() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/auth/v1/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let set: jsonwebtoken::jwk::JwkSet = res.json().await.unwrap();
    let (_, login) = json(
        app.login("admin@eventzr.com", cpaas::seed::DEV_PASSWORD)
            .await,
    )
    .await;
    let access = login["data"]["accessToken"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(access).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let jwk = set
        .find(header.kid.as_deref().unwrap())
        .expect("the token's kid is published");
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.set_audience(&["eventzr"]);
    validation.set_issuer(&["cpaas-orchestrator"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(
        access,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap();
    assert_eq!(data.claims["email"], "admin@eventzr.com");
    assert_eq!(data.claims["roles"], json!(["admin"]));
    assert_eq!(data.claims["planTier"], "professional");
    assert_eq!(
        data.claims["exp"].as_i64().unwrap() - data.claims["iat"].as_i64().unwrap(),
        3600
    );
    assert!(data.claims["jti"].is_string());
}
