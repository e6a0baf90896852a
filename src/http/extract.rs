//! Request extractors: `AuthUser` (a verified bearer token: an access token or a tenant API
//! key), `InternalKey` (the operator key) and `PathId` (a prefixed resource id from the path).

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::auth::Claims;
use crate::auth::keys::TokenError;
use crate::domain::ids::{ApiKeyId, IdPrefix, PublicId};
use crate::domain::roles::Permission;
use crate::domain::{PlanTier, Role};
use crate::error::{ApiError, ErrorCode};
use crate::http::envelope::RequestTenant;
use crate::state::AppState;

/// The authenticated caller of a tenant endpoint.
#[derive(Clone, Debug)]
pub struct AuthUser {
    /// The token's `sub`: a user id on this service's tokens, any string on the auth service's,
    /// the key's id (`apk_…`) for an API key.
    pub subject: String,
    /// The API key the caller presented, if it presented one.
    pub api_key: Option<Uuid>,
    pub tenant_id: Uuid,
    pub roles: Vec<Role>,
    pub plan_tier: PlanTier,
    pub claims: Claims,
}

impl AuthUser {
    /// Fails with 403 `ERR_CPAAS_FORBIDDEN` unless the caller's roles grant `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if permission.granted_by(&self.roles) {
            Ok(())
        } else {
            Err(ApiError::forbidden(match permission {
                Permission::Read => "this action needs the user role or higher",
                Permission::Send => "this action needs the organizer, developer or admin role",
                Permission::Admin => "this action needs the admin role",
            }))
        }
    }
}

fn state(req: &HttpRequest) -> Result<&AppState, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .map(|d| d.get_ref())
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state is not configured")))
}

/// The bearer token of the request.
fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization header"))?;
    header
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))
}

/// The caller the verified claims name, once `x-tenant-id` (when sent) agrees with them.
fn caller(req: &HttpRequest, claims: Claims, api_key: Option<Uuid>) -> Result<AuthUser, ApiError> {
    if let Some(header) = req.headers().get("x-tenant-id") {
        let matches = header
            .to_str()
            .ok()
            .and_then(|v| Uuid::parse_str(v.trim()).ok())
            .is_some_and(|t| t == claims.tenant_id);
        if !matches {
            return Err(ApiError::new(
                ErrorCode::TenantMismatch,
                "x-tenant-id does not match the token's tenant",
            ));
        }
    }
    req.extensions_mut().insert(RequestTenant(claims.tenant_id));
    tracing::Span::current().record("tenant_id", tracing::field::display(claims.tenant_id));
    Ok(AuthUser {
        subject: claims.sub.clone(),
        api_key,
        tenant_id: claims.tenant_id,
        roles: claims.roles.iter().filter_map(|r| r.parse().ok()).collect(),
        plan_tier: PlanTier::from_token(&claims.plan_tier),
        claims,
    })
}

fn authenticate_token(req: &HttpRequest, token: &str) -> Result<AuthUser, ApiError> {
    let state = state(req)?;
    let claims = state.keys.verify(token).map_err(|e| match e {
        TokenError::Expired => {
            ApiError::new(ErrorCode::TokenExpired, "the access token has expired")
        }
        TokenError::Invalid(reason) => {
            tracing::debug!(%reason, "bearer token refused");
            ApiError::unauthorized("the access token is invalid")
        }
    })?;
    caller(req, claims, None)
}

/// A tenant API key, looked up on every request (revocation is immediate on every replica).
async fn authenticate_key(
    req: &HttpRequest,
    state: &AppState,
    key: &str,
) -> Result<AuthUser, ApiError> {
    let identity = crate::auth::api_keys::authenticate(&state.pool, key)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the API key is invalid, expired or revoked"))?;
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: ApiKeyId::from_uuid(identity.id).to_string(),
        tenant_id: identity.tenant_id,
        email: String::new(),
        roles: identity.roles,
        plan_tier: identity.plan_tier,
        iat: now,
        exp: identity.expires_at.map_or(i64::MAX, |t| t.timestamp()),
        nbf: None,
        iss: None,
        aud: None,
        jti: None,
    };
    caller(req, claims, Some(identity.id))
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    /// Verifies the token, then that its user is still active and has not changed the
    /// password since it was issued (cached for at most a minute); or looks the API key up.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let token = bearer(&req)?;
            let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
                return authenticate_token(&req, &token);
            };
            if crate::auth::api_keys::is_api_key(&token) {
                return authenticate_key(&req, &state, &token).await;
            }
            let user = authenticate_token(&req, &token)?;
            if state
                .accounts
                .allows(&state.pool, &user.subject, user.claims.iat)
                .await?
            {
                Ok(user)
            } else {
                Err(ApiError::unauthorized(
                    "the access token is no longer valid: its user was disabled or changed the password",
                ))
            }
        })
    }
}

/// Proof that the caller presented the configured `x-internal-api-key`.
#[derive(Clone, Copy, Debug)]
pub struct InternalKey;

fn check_internal_key(req: &HttpRequest) -> Result<InternalKey, ApiError> {
    let state = state(req)?;
    let refused = |msg: &str| ApiError::new(ErrorCode::InvalidApiKey, msg.to_owned());
    let Some(expected) = &state.settings.internal_api_key else {
        return Err(refused(
            "internal endpoints are disabled: no internal API key is configured",
        ));
    };
    let presented = req
        .headers()
        .get("x-internal-api-key")
        .ok_or_else(|| refused("missing x-internal-api-key header"))?;
    let ok: bool = presented
        .as_bytes()
        .ct_eq(expected.expose_secret().as_bytes())
        .into();
    if ok {
        Ok(InternalKey)
    } else {
        Err(refused("invalid internal API key"))
    }
}

impl FromRequest for InternalKey {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(check_internal_key(req))
    }
}

/// The prefixed resource id of the path's `{id}` segment; anything that is not one of this
/// resource's ids is a 404 naming the resource.
pub struct PathId<P: IdPrefix>(pub PublicId<P>);

impl<P: IdPrefix> std::ops::Deref for PathId<P> {
    type Target = PublicId<P>;

    fn deref(&self) -> &PublicId<P> {
        &self.0
    }
}

impl<P: IdPrefix> FromRequest for PathId<P> {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.match_info()
                .get("id")
                .and_then(PublicId::parse)
                .map(PathId)
                .ok_or_else(|| ApiError::not_found(P::RESOURCE)),
        )
    }
}
