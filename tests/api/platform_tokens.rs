//! Access tokens minted by the platform's auth service: RS256 with exactly the seven claims
//! `sub`, `tenantId`, `email`, `roles`, `planTier`, `iat`, `exp`, and a `kid` of its own (or
//! none), verified against its PEM key or its JWKS.

use std::path::PathBuf;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, code, json, spawn_app_with};

/// One RSA key pair of the auth service, with its PEM files and a JWKS naming it `kid`.
struct AuthServiceKey {
    private_pem: String,
    public_pem_path: PathBuf,
    jwks_path: PathBuf,
}

fn key(name: &str, kid: &str) -> AuthServiceKey {
    let dir = std::env::temp_dir().join(format!("cpaas-auth-svc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let public = private.to_public_key();
    let public_pem_path = dir.join(format!("{name}.pub.pem"));
    std::fs::write(
        &public_pem_path,
        public.to_public_key_pem(LineEnding::LF).unwrap(),
    )
    .unwrap();
    let jwks = json!({ "keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    }]});
    let jwks_path = dir.join(format!("{name}.jwks.json"));
    std::fs::write(&jwks_path, jwks.to_string()).unwrap();
    AuthServiceKey {
        private_pem: private.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        public_pem_path,
        jwks_path,
    }
}

fn platform_key() -> &'static AuthServiceKey {
    static KEY: OnceLock<AuthServiceKey> = OnceLock::new();
    KEY.get_or_init(|| key("platform", "auth-svc-2026-11"))
}

fn other_key() -> &'static AuthServiceKey {
    static KEY: OnceLock<AuthServiceKey> = OnceLock::new();
    KEY.get_or_init(|| key("other", "someone-else"))
}

/// The auth service's claims, exactly: no `iss`, `aud`, `jti` or `nbf`.
fn platform_claims(tenant: Uuid, roles: &[&str], tier: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "sub": "usr_7f3a9c",
        "tenantId": tenant,
        "email": "organizer@example.com",
        "roles": roles,
        "planTier": tier,
        "iat": now,
        "exp": now + 900,
    })
}

fn sign(key: &AuthServiceKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(key.private_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn with_pem(extra: &[(&str, &str)]) -> TestApp {
    let path = platform_key().public_pem_path.display().to_string();
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    spawn_app_with(move |env| {
        env.insert("JWT_EXTERNAL_PUBLIC_KEY_PATH".into(), path);
        env.extend(extra);
    })
    .await
}

async fn providers(app: &TestApp, token: &str) -> (u16, Value) {
    json(app.get("/cpaas/v1/providers", token).await).await
}

#[actix_web::test]
async fn a_token_of_the_platform_auth_service_with_only_its_seven_claims_reads_providers() {
    let app = with_pem(&[]).await;
    let tenant = Uuid::now_v7();
    let claims = platform_claims(tenant, &["user"], "free");
    assert_eq!(claims.as_object().unwrap().len(), 7);
    for kid in [Some("auth-svc-2026-11"), Some("rotated-key"), None] {
        let (status, body) = providers(&app, &sign(platform_key(), kid, &claims)).await;
        assert_eq!(status, 200, "kid {kid:?}: {body}");
        assert_eq!(body["meta"]["tenant_id"], tenant.to_string());
    }
    let (status, me) = json(
        app.get("/auth/v1/me", &sign(platform_key(), None, &claims))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["sub"], "usr_7f3a9c");
    assert!(me["data"].get("iss").is_none(), "{me}");
}

#[actix_web::test]
async fn with_an_external_issuer_configured_a_platform_token_must_carry_it() {
    let app = with_pem(&[("JWT_EXTERNAL_ISSUER", "https://auth.eventzr.example")]).await;
    let tenant = Uuid::now_v7();
    let mut claims = platform_claims(tenant, &["user"], "free");
    let (status, body) = providers(&app, &sign(platform_key(), None, &claims)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(code(&body), "ERR_CPAAS_UNAUTHORIZED");
    claims["iss"] = json!("https://someone-else.example");
    let (status, _) = providers(&app, &sign(platform_key(), None, &claims)).await;
    assert_eq!(status, 401);
    claims["iss"] = json!("https://auth.eventzr.example");
    let (status, body) = providers(&app, &sign(platform_key(), None, &claims)).await;
    assert_eq!(status, 200, "{body}");
}

#[actix_web::test]
async fn with_an_external_audience_configured_a_platform_token_must_carry_it() {
    let app = with_pem(&[("JWT_EXTERNAL_AUDIENCE", "cpaas")]).await;
    let mut claims = platform_claims(Uuid::now_v7(), &["user"], "free");
    let (status, _) = providers(&app, &sign(platform_key(), None, &claims)).await;
    assert_eq!(status, 401);
    claims["aud"] = json!(["notify", "cpaas"]);
    let (status, body) = providers(&app, &sign(platform_key(), None, &claims)).await;
    assert_eq!(status, 200, "{body}");
}

#[actix_web::test]
async fn a_jwks_selects_the_platform_key_by_kid() {
    let jwks = platform_key().jwks_path.display().to_string();
    let app = spawn_app_with(move |env| {
        env.insert("JWT_EXTERNAL_JWKS_PATH".into(), jwks);
    })
    .await;
    let claims = platform_claims(Uuid::now_v7(), &["user"], "free");
    let (status, body) = providers(
        &app,
        &sign(platform_key(), Some("auth-svc-2026-11"), &claims),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for kid in [Some("another-kid"), None] {
        let (status, body) = providers(&app, &sign(platform_key(), kid, &claims)).await;
        assert_eq!(status, 401, "kid {kid:?}: {body}");
    }
}

#[actix_web::test]
async fn a_platform_token_signed_by_another_key_expired_or_not_yet_valid_is_refused() {
    let app = with_pem(&[]).await;
    let claims = platform_claims(Uuid::now_v7(), &["user"], "free");
    let (status, body) = providers(&app, &sign(other_key(), None, &claims)).await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "ERR_CPAAS_UNAUTHORIZED");

    let now = chrono::Utc::now().timestamp();
    let mut expired = claims.clone();
    expired["iat"] = json!(now - 7200);
    expired["exp"] = json!(now - 3600);
    let (status, body) = providers(&app, &sign(platform_key(), None, &expired)).await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "ERR_CPAAS_TOKEN_EXPIRED");

    let mut early = claims.clone();
    early["nbf"] = json!(now + 3600);
    let (status, _) = providers(&app, &sign(platform_key(), None, &early)).await;
    assert_eq!(status, 401);
    let mut started = claims.clone();
    started["nbf"] = json!(now - 60);
    let (status, _) = providers(&app, &sign(platform_key(), None, &started)).await;
    assert_eq!(status, 200);

    let mut nobody = claims.clone();
    nobody["sub"] = json!("  ");
    let (status, _) = providers(&app, &sign(platform_key(), None, &nobody)).await;
    assert_eq!(status, 401);
}

#[actix_web::test]
async fn unsigned_and_hs256_platform_tokens_are_refused() {
    let app = with_pem(&[]).await;
    let claims = platform_claims(Uuid::now_v7(), &["admin"], "enterprise");
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let none = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT"}).to_string());
    let (status, _) = providers(&app, &format!("{none}.{payload}.")).await;
    assert_eq!(status, 401);
    let public_pem = std::fs::read(&platform_key().public_pem_path).unwrap();
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&public_pem).unwrap(),
    )
    .unwrap();
    let (status, body) = providers(&app, &hs256).await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "ERR_CPAAS_UNAUTHORIZED");
}

#[actix_web::test]
async fn platform_roles_and_plan_tiers_compare_case_insensitively_and_pro_is_professional() {
    let app = with_pem(&[]).await;
    let tenant = Uuid::now_v7();
    let admin = sign(
        platform_key(),
        None,
        &platform_claims(tenant, &["ADMIN"], "PRO"),
    );
    let res = app
        .post(
            "/cpaas/v1/providers",
            &admin,
            &json!({ "name": "sandbox", "kind": "SANDBOX" }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let sender = sign(
        platform_key(),
        None,
        &platform_claims(tenant, &["Developer"], "PRO"),
    );
    let res = app
        .post(
            "/cpaas/v1/messages",
            &sender,
            &json!({ "channel": "SMS", "recipient": "+14155552671", "message_body": "hi" }),
        )
        .await;
    assert_eq!(res.status(), 202);
    assert_eq!(res.headers()["x-ratelimit-limit"], "300");
    let unknown = sign(
        platform_key(),
        None,
        &platform_claims(tenant, &["developer"], "platinum"),
    );
    let res = app
        .post(
            "/cpaas/v1/messages",
            &unknown,
            &json!({ "channel": "SMS", "recipient": "+14155552672", "message_body": "hi" }),
        )
        .await;
    assert_eq!(res.status(), 202);
    assert_eq!(res.headers()["x-ratelimit-limit"], "10");
}
