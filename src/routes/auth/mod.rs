//! `/auth/v1`: login, refresh, logout, me, password change and the JWKS.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::actors::token::{Login, Logout, Refresh};
use crate::auth::Claims;
use crate::auth::sessions::{SessionError, TokenPair};
use crate::error::{ApiError, ApiResult, ErrorCode, FieldError};
use crate::http::AuthUser;
use crate::http::envelope::ApiResponse;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(login)
        .service(refresh)
        .service(logout)
        .service(me)
        .service(change_password)
        .service(jwks);
}

/// Body of `POST /auth/v1/login`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "dev@eventzr.com")]
    pub email: String,
    #[schema(example = "Password123!")]
    pub password: String,
}

/// Body of `POST /auth/v1/refresh` and `POST /auth/v1/logout`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[serde(rename = "refreshToken")]
    pub refresh_token: String,
}

/// Answer of logout.
#[derive(Serialize, ToSchema)]
pub struct LogoutResponse {
    pub revoked: bool,
}

impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> Self {
        match err {
            SessionError::InvalidCredentials => {
                ApiError::new(ErrorCode::InvalidCredentials, "invalid e-mail or password")
            }
            SessionError::TooManyAttempts { retry_after_secs } => ApiError::new(
                ErrorCode::TooManyAttempts,
                "too many failed login attempts; try again later",
            )
            .with_retry_after(retry_after_secs),
            SessionError::InvalidRefreshToken => ApiError::new(
                ErrorCode::InvalidRefreshToken,
                "the refresh token is invalid, expired or revoked",
            ),
            SessionError::RefreshTokenReused => ApiError::new(
                ErrorCode::RefreshTokenReused,
                "this refresh token was already used; the session has been revoked, log in again",
            ),
            SessionError::Db(e) => e.into(),
            SessionError::Signing(e) => ApiError::internal(e),
            SessionError::Hashing(e) => ApiError::internal(anyhow::anyhow!(e)),
        }
    }
}

fn mailbox(err: actix::MailboxError) -> ApiError {
    ApiError::unavailable(anyhow::anyhow!("token service unavailable: {err}"))
}

fn require_non_empty(fields: &[(&str, &str)]) -> ApiResult<()> {
    let missing: Vec<FieldError> = fields
        .iter()
        .filter(|(_, v)| v.trim().is_empty())
        .map(|(name, _)| FieldError::new(*name, "must not be empty"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(missing))
    }
}

/// Log in with e-mail and password.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A new token pair", body = crate::routes::auth::TokenPairEnvelope),
        (status = 400, description = "Invalid body", body = crate::http::envelope::ErrorEnvelope),
        (status = 401, description = "ERR_AUTH_INVALID_CREDENTIALS", body = crate::http::envelope::ErrorEnvelope),
        (status = 429, description = "ERR_AUTH_TOO_MANY_ATTEMPTS, with Retry-After", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[post("/auth/v1/login")]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> ApiResult<ApiResponse<TokenPair>> {
    let body = body.into_inner();
    require_non_empty(&[("email", &body.email), ("password", &body.password)])?;
    if body.email.len() > MAX_EMAIL_BYTES {
        return Err(ApiError::invalid_field(
            "email",
            "must be at most 254 characters",
        ));
    }
    if body.password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::invalid_field("password", "must be at most 1 KiB"));
    }
    let client = crate::http::client_address::client_address(&req, &state.settings.trusted_proxies);
    let pair = state
        .tokens
        .send(Login {
            email: body.email,
            password: body.password,
            client,
        })
        .await
        .map_err(mailbox)??;
    Ok(ApiResponse::ok(pair))
}

/// Exchange a refresh token for a new pair; the presented token is spent.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = crate::routes::auth::TokenPairEnvelope),
        (status = 401, description = "ERR_AUTH_INVALID_REFRESH_TOKEN or ERR_AUTH_REFRESH_TOKEN_REUSED (the family is revoked)", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[post("/auth/v1/refresh")]
pub async fn refresh(
    state: web::Data<AppState>,
    body: web::Json<RefreshRequest>,
) -> ApiResult<ApiResponse<TokenPair>> {
    let body = body.into_inner();
    require_non_empty(&[("refreshToken", &body.refresh_token)])?;
    let pair = state
        .tokens
        .send(Refresh {
            refresh_token: body.refresh_token,
        })
        .await
        .map_err(mailbox)??;
    Ok(ApiResponse::ok(pair))
}

/// Revoke the session (refresh-token family) of a refresh token.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "The family is revoked", body = crate::routes::auth::LogoutEnvelope),
        (status = 401, description = "ERR_AUTH_INVALID_REFRESH_TOKEN", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[post("/auth/v1/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    body: web::Json<RefreshRequest>,
) -> ApiResult<ApiResponse<LogoutResponse>> {
    let body = body.into_inner();
    require_non_empty(&[("refreshToken", &body.refresh_token)])?;
    state
        .tokens
        .send(Logout {
            refresh_token: body.refresh_token,
        })
        .await
        .map_err(mailbox)??;
    Ok(ApiResponse::ok(LogoutResponse { revoked: true }))
}

/// The caller's claims.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The verified claims of the access token", body = crate::routes::auth::ClaimsEnvelope),
        (status = 401, description = "ERR_CPAAS_UNAUTHORIZED or ERR_CPAAS_TOKEN_EXPIRED", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[get("/auth/v1/me")]
pub async fn me(user: AuthUser) -> ApiResult<ApiResponse<Claims>> {
    Ok(ApiResponse::ok(user.claims))
}

/// The public keys that verify access tokens (a JWK set; not enveloped, as JWKS clients expect).
#[utoipa::path(
    tag = "auth",
    responses((status = 200, description = "JWK set", body = Object, content_type = "application/jwk-set+json"))
)]
#[get("/auth/v1/.well-known/jwks.json")]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("cache-control", "public, max-age=300"))
        .content_type("application/jwk-set+json")
        .body(state.keys.jwks().to_string())
}

crate::http::envelope::envelope_schema! {
    TokenPairEnvelope => crate::auth::sessions::TokenPair,
    LogoutEnvelope => LogoutResponse,
    ClaimsEnvelope => crate::auth::Claims,
}

/// Body of `POST /auth/v1/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    /// 8 bytes to 1 KiB.
    pub new_password: String,
}

/// What a password change did.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordChanged {
    pub changed: bool,
    /// Refresh-token families (sessions) revoked: every one of the user's.
    pub revoked_sessions: usize,
}

/// Longest accepted password, in bytes.
const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest accepted e-mail address (RFC 5321's path limit).
const MAX_EMAIL_BYTES: usize = 254;

/// Change the caller's password (current and new). Every refresh family of the user is
/// revoked, and access tokens issued before the change are refused from then on.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed; the user's sessions are revoked", body = crate::routes::auth::PasswordChangedEnvelope),
        (status = 400, description = "ERR_CPAAS_VALIDATION_FAILED naming the field", body = crate::http::envelope::ErrorEnvelope),
        (status = 401, description = "ERR_AUTH_INVALID_CREDENTIALS (the current password is wrong) or an invalid token", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[post("/auth/v1/password")]
pub async fn change_password(
    req: actix_web::HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    body: web::Json<ChangePasswordRequest>,
) -> ApiResult<ApiResponse<PasswordChanged>> {
    let body = body.into_inner();
    let user_id = uuid::Uuid::parse_str(&user.subject).map_err(|_| {
        ApiError::forbidden("only users of this service change their password here")
    })?;
    for (field, value) in [
        ("current_password", &body.current_password),
        ("new_password", &body.new_password),
    ] {
        if value.len() > MAX_PASSWORD_BYTES {
            return Err(ApiError::invalid_field(field, "must be at most 1 KiB"));
        }
    }
    if body.new_password.len() < 8 {
        return Err(ApiError::invalid_field(
            "new_password",
            "must be at least 8 characters",
        ));
    }
    let deps = crate::auth::sessions::SessionDeps {
        pool: state.pool.clone(),
        keys: state.keys.clone(),
        settings: state.settings.clone(),
    };
    let audit =
        crate::http::audit::AuditActor::of(&user, &crate::http::envelope::Meta::of(&req)).entry(
            crate::http::audit::Change::new("password_changed", "user", user_id),
        );
    let revoked = crate::auth::sessions::change_password(
        &deps,
        user_id,
        body.current_password,
        body.new_password,
        audit,
    )
    .await?;
    state.accounts.forget(user_id);
    Ok(ApiResponse::ok(PasswordChanged {
        changed: true,
        revoked_sessions: revoked,
    }))
}

crate::http::envelope::envelope_schema! {
    PasswordChangedEnvelope => PasswordChanged,
}
