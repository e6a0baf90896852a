//! Login, refresh-token rotation with family re-use detection, and logout.
//!
//! A login starts a family. Each refresh marks the presented token rotated and issues its
//! successor in the same family, under a row lock. Presenting a rotated token again means it
//! leaked (or two clients raced with one token): the whole family is revoked, so the thief's and
//! the owner's tokens both stop working. Only SHA-256 digests of refresh tokens are stored.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration as ChronoDuration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::throttle::{self, ThrottlePolicy};
use super::{Claims, SigningKeys, passwords};
use crate::config::Settings;
use crate::db::schema::{refresh_token_families, refresh_tokens, tenants};
use crate::db::users::{self, User};
use crate::db::{DbError, DbPool};

/// A new access and refresh token pair, in the platform's camelCase.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TokenPair {
    #[serde(rename = "accessToken")]
    pub access_token: String,
    #[serde(rename = "refreshToken")]
    pub refresh_token: String,
    #[serde(rename = "expiresIn")]
    pub expires_in: u64,
    #[serde(rename = "tokenType")]
    pub token_type: &'static str,
}

/// Why an authentication call was refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("invalid e-mail or password")]
    InvalidCredentials,
    #[error("too many failed attempts")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidRefreshToken,
    #[error("the refresh token was already used; its session has been revoked")]
    RefreshTokenReused,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("token signing failed: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

impl From<diesel::result::Error> for SessionError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

impl From<crate::db::PoolError> for SessionError {
    fn from(e: crate::db::PoolError) -> Self {
        Self::Db(DbError::Pool(e))
    }
}

/// What the session functions need.
#[derive(Clone)]
pub struct SessionDeps {
    pub pool: DbPool,
    pub keys: Arc<SigningKeys>,
    pub settings: Arc<Settings>,
}

impl SessionDeps {
    /// The per-account throttle policy from settings.
    pub fn account_policy(&self) -> ThrottlePolicy {
        ThrottlePolicy {
            max_failures: self.settings.login_max_failures,
            window: self.settings.login_failure_window,
            lockout: self.settings.login_lockout,
        }
    }
}

/// Outcome of a login, with what the address throttle needs to know.
pub struct LoginOutcome {
    pub result: Result<TokenPair, SessionError>,
    /// True when the credentials were wrong (counts against the client address).
    pub failed_credentials: bool,
}

/// Checks credentials and starts a new refresh family.
pub async fn login(
    deps: &SessionDeps,
    email: &str,
    password: String,
    client: Option<IpAddr>,
) -> LoginOutcome {
    let account = users::normalize_email(email);
    let result = login_inner(deps, &account, password, client).await;
    let failed_credentials = matches!(result, Err(SessionError::InvalidCredentials));
    LoginOutcome {
        result,
        failed_credentials,
    }
}

async fn login_inner(
    deps: &SessionDeps,
    account: &str,
    password: String,
    client: Option<IpAddr>,
) -> Result<TokenPair, SessionError> {
    let policy = deps.account_policy();
    let pair = throttle::pair_key(account, client);
    // The attempt is charged before the password is checked, and the connection is given back
    // before Argon2 runs: a flood of logins holds no connection other requests need.
    let (user, attempts) = {
        let mut conn = deps.pool.get().await?;
        if let Some(retry_after_secs) = throttle::charge(&mut conn, &pair, policy).await? {
            return Err(SessionError::TooManyAttempts { retry_after_secs });
        }
        let attempts = throttle::charge_account(&mut conn, account, policy.window).await?;
        (
            users::find_user_by_email(&mut conn, account).await?,
            attempts,
        )
    };
    tokio::time::sleep(throttle::account_delay(attempts, policy.max_failures)).await;
    let stored = user
        .as_ref()
        .filter(|u| u.is_active)
        .map(|u| u.password_hash.clone());
    if !passwords::verify_password(password, stored).await {
        return Err(SessionError::InvalidCredentials);
    }
    let Some(user) = user else {
        return Err(SessionError::InvalidCredentials);
    };
    let mut conn = deps.pool.get().await?;
    throttle::clear(&mut conn, &[&pair, account]).await?;
    let family_id = Uuid::now_v7();
    let pair = conn
        .transaction::<_, SessionError, _>(async |conn| {
            diesel::insert_into(refresh_token_families::table)
                .values((
                    refresh_token_families::id.eq(family_id),
                    refresh_token_families::user_id.eq(user.id),
                    refresh_token_families::tenant_id.eq(user.tenant_id),
                ))
                .execute(conn)
                .await?;
            issue_pair(deps, conn, &user, family_id).await
        })
        .await?;
    Ok(pair)
}

/// Signs an access token for the user and stores a new refresh token in `family_id`.
async fn issue_pair(
    deps: &SessionDeps,
    conn: &mut AsyncPgConnection,
    user: &User,
    family_id: Uuid,
) -> Result<TokenPair, SessionError> {
    let plan_tier: String = tenants::table
        .find(user.tenant_id)
        .select(tenants::plan_tier)
        .first(conn)
        .await?;
    let now = Utc::now().timestamp();
    let ttl = deps.settings.access_token_ttl.as_secs();
    let claims = Claims {
        sub: user.id.to_string(),
        tenant_id: user.tenant_id,
        email: user.email.clone(),
        roles: user.role_names(),
        plan_tier,
        iat: now,
        exp: now + ttl as i64,
        nbf: None,
        iss: Some(deps.settings.jwt_issuer.clone()),
        aud: Some(deps.settings.jwt_audience.clone().into()),
        jti: Some(Uuid::new_v4().to_string()),
    };
    let access_token = deps.keys.sign(&claims)?;
    let refresh_token = new_refresh_token();
    let expires_at = Utc::now()
        + ChronoDuration::from_std(deps.settings.refresh_token_ttl)
            .unwrap_or(ChronoDuration::days(30));
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::id.eq(Uuid::now_v7()),
            refresh_tokens::family_id.eq(family_id),
            refresh_tokens::token_hash.eq(digest(&refresh_token)),
            refresh_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await?;
    Ok(TokenPair {
        access_token,
        refresh_token,
        expires_in: ttl,
        token_type: "Bearer",
    })
}

fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("rt_{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[derive(Queryable)]
struct PresentedToken {
    id: Uuid,
    family_id: Uuid,
    expires_at: chrono::DateTime<Utc>,
    rotated_at: Option<chrono::DateTime<Utc>>,
    user_id: Uuid,
    family_revoked_at: Option<chrono::DateTime<Utc>>,
}

enum Rotation {
    Issued(TokenPair),
    Reused,
}

/// Rotates a refresh token: the presented one is spent and its successor returned.
pub async fn refresh(deps: &SessionDeps, token: &str) -> Result<TokenPair, SessionError> {
    let mut conn = deps.pool.get().await?;
    let hash = digest(token);
    let rotation = conn
        .transaction::<_, SessionError, _>(async |conn| {
            let Some(presented) = lock_presented(conn, &hash).await? else {
                return Err(SessionError::InvalidRefreshToken);
            };
            if presented.family_revoked_at.is_some() {
                return Err(SessionError::InvalidRefreshToken);
            }
            if presented.rotated_at.is_some() {
                revoke_family(conn, presented.family_id, "reuse").await?;
                return Ok(Rotation::Reused);
            }
            if presented.expires_at <= Utc::now() {
                return Err(SessionError::InvalidRefreshToken);
            }
            let user = match users::find_user(conn, presented.user_id).await? {
                Some(user) if user.is_active => user,
                _ => return Err(SessionError::InvalidRefreshToken),
            };
            diesel::update(refresh_tokens::table.find(presented.id))
                .set(refresh_tokens::rotated_at.eq(Utc::now()))
                .execute(conn)
                .await?;
            issue_pair(deps, conn, &user, presented.family_id)
                .await
                .map(Rotation::Issued)
        })
        .await?;
    match rotation {
        Rotation::Issued(pair) => Ok(pair),
        Rotation::Reused => {
            tracing::warn!("a rotated refresh token was presented again; its family is revoked");
            Err(SessionError::RefreshTokenReused)
        }
    }
}

/// Revokes the family of the presented refresh token.
pub async fn logout(deps: &SessionDeps, token: &str) -> Result<(), SessionError> {
    let mut conn = deps.pool.get().await?;
    let hash = digest(token);
    conn.transaction::<_, SessionError, _>(async |conn| {
        let Some(presented) = lock_presented(conn, &hash).await? else {
            return Err(SessionError::InvalidRefreshToken);
        };
        if presented.family_revoked_at.is_some() {
            return Err(SessionError::InvalidRefreshToken);
        }
        revoke_family(conn, presented.family_id, "logout").await
    })
    .await
}

/// Revokes every refresh family of a user (password change, disabled account).
pub async fn revoke_user_sessions(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    reason: &str,
) -> QueryResult<usize> {
    diesel::update(
        refresh_token_families::table
            .filter(refresh_token_families::user_id.eq(user_id))
            .filter(refresh_token_families::revoked_at.is_null()),
    )
    .set((
        refresh_token_families::revoked_at.eq(Utc::now()),
        refresh_token_families::revoked_reason.eq(reason),
    ))
    .execute(conn)
    .await
}

/// Finds the token by digest and locks its family row, so that concurrent refreshes of one
/// family are serialised.
async fn lock_presented(
    conn: &mut AsyncPgConnection,
    hash: &[u8],
) -> QueryResult<Option<PresentedToken>> {
    let family: Option<Uuid> = refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(hash))
        .select(refresh_tokens::family_id)
        .first(conn)
        .await
        .optional()?;
    let Some(family) = family else {
        return Ok(None);
    };
    refresh_token_families::table
        .find(family)
        .select(refresh_token_families::id)
        .for_update()
        .first::<Uuid>(conn)
        .await?;
    refresh_tokens::table
        .inner_join(refresh_token_families::table)
        .filter(refresh_tokens::token_hash.eq(hash))
        .select((
            refresh_tokens::id,
            refresh_tokens::family_id,
            refresh_tokens::expires_at,
            refresh_tokens::rotated_at,
            refresh_token_families::user_id,
            refresh_token_families::revoked_at,
        ))
        .first(conn)
        .await
        .optional()
}

async fn revoke_family(
    conn: &mut AsyncPgConnection,
    family_id: Uuid,
    reason: &str,
) -> Result<(), SessionError> {
    diesel::update(
        refresh_token_families::table
            .find(family_id)
            .filter(refresh_token_families::revoked_at.is_null()),
    )
    .set((
        refresh_token_families::revoked_at.eq(Utc::now()),
        refresh_token_families::revoked_reason.eq(reason),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Changes a user's password after checking the current one, and revokes every refresh family
/// of the user; returns how many were revoked. No connection is held while Argon2 runs.
pub async fn change_password(
    deps: &SessionDeps,
    user_id: Uuid,
    current: String,
    new: String,
    audit: crate::db::audit::AuditEntry,
) -> Result<usize, SessionError> {
    let stored = {
        let mut conn = deps.pool.get().await?;
        users::find_user(&mut conn, user_id)
            .await?
            .filter(|u| u.is_active)
            .map(|u| u.password_hash)
    };
    if !passwords::verify_password(current, stored).await {
        return Err(SessionError::InvalidCredentials);
    }
    let hash = passwords::hash_password(new)
        .await
        .map_err(|e| SessionError::Hashing(e.to_string()))?;
    let mut conn = deps.pool.get().await?;
    let revoked = conn
        .transaction::<_, SessionError, _>(async |conn| {
            users::set_password(conn, user_id, &hash).await?;
            crate::db::audit::insert(conn, &audit).await?;
            Ok(revoke_user_sessions(conn, user_id, "password_changed").await?)
        })
        .await?;
    Ok(revoked)
}
