//! `/cpaas/v1/api-keys`: the tenant's API keys for server-to-server callers. Every route needs
//! the admin role. A key is shown once, when it is created; only its hash is kept.

use actix_web::{HttpRequest, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::api_keys::generate;
use crate::db::api_keys::{self as db, ApiKey, NewApiKey};
use crate::domain::Role;
use crate::domain::ids::{ApiKeyId, ApiKeyPrefix};
use crate::domain::roles::Permission;
use crate::error::{ApiError, ApiResult};
use crate::http::AuthUser;
use crate::http::audit::{AuditActor, Change};
use crate::http::envelope::{ApiResponse, Meta};
use crate::http::extract::PathId;
use crate::http::idempotency::{Answer, Idempotency, Reply};
use crate::http::pagination::PageParams;
use crate::routes::providers::DeletedView;
use crate::state::AppState;

const MAX_NAME_CHARS: usize = 100;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_api_keys)
        .service(create_api_key)
        .service(revoke_api_key);
}

/// `POST /cpaas/v1/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// 1 to 100 characters, to tell keys apart.
    #[schema(example = "ticketing back-end")]
    pub name: String,
    /// What the key may do, as a token's roles: `user`, `organizer`, `developer`, `admin`.
    #[schema(example = json!(["developer"]))]
    pub roles: Vec<String>,
    /// When the key stops working; never when absent.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// An API key as lists show it (never the key).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    #[schema(value_type = String, example = "apk_0192f0c1a2b37c4d8e9f00112233aabb")]
    pub id: ApiKeyId,
    pub name: String,
    pub roles: Vec<String>,
    /// The key's first characters.
    #[schema(example = "cpk_Zm9vYmFy")]
    pub prefix: String,
    /// Who created it (a user id, or the key it was created with).
    pub created_by: String,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last used, to the minute.
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<DateTime<Utc>>,
}

impl ApiKeyView {
    fn from_row(row: ApiKey) -> Self {
        Self {
            id: ApiKeyId::from_uuid(row.id),
            roles: row.role_names(),
            name: row.name,
            prefix: row.prefix,
            created_by: row.created_by,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
        }
    }
}

/// A new key, with the key itself: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyWithSecretView {
    #[serde(flatten)]
    pub api_key: ApiKeyView,
    /// `Authorization: Bearer <key>`; not shown again.
    #[schema(example = "cpk_Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5")]
    pub key: String,
}

/// Paging of `GET /cpaas/v1/api-keys`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ApiKeyListQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

crate::http::envelope::envelope_schema! {
    ApiKeyListEnvelope => Vec<ApiKeyView>,
    ApiKeyWithSecretEnvelope => ApiKeyWithSecretView,
}

fn check_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::invalid_field(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} printable characters"),
        ));
    }
    Ok(name.to_owned())
}

fn check_roles(roles: &[String]) -> ApiResult<Vec<Option<String>>> {
    if roles.is_empty() {
        return Err(ApiError::invalid_field(
            "roles",
            "must name at least one role",
        ));
    }
    let mut out: Vec<Option<String>> = Vec::new();
    for role in roles {
        let role: Role = role
            .parse()
            .map_err(|e: String| ApiError::invalid_field("roles", e))?;
        let name = Some(role.as_str().to_owned());
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// Create an API key. The answer carries the key, shown this once; only its hash is kept.
///
/// The key is accepted as `Authorization: Bearer cpk_…` wherever an access token is, with the
/// roles given here, for this tenant only, on the tenant's plan tier. With an
/// `Idempotency-Key` the whole answer, key included, is stored sealed with the key on purpose:
/// a replay within 24 hours returns the same key.
#[utoipa::path(
    tag = "api-keys",
    security(("bearer" = [])),
    request_body = CreateApiKeyRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer, key included, for 24 hours")),
    responses(
        (status = 201, description = "The key, shown once", body = crate::routes::api_keys::ApiKeyWithSecretEnvelope),
        (status = 400, description = "ERR_CPAAS_VALIDATION_FAILED naming the field", body = crate::http::envelope::ErrorEnvelope),
        (status = 403, description = "The caller is not an admin", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[post("/cpaas/v1/api-keys")]
pub async fn create_api_key(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    body: web::Json<CreateApiKeyRequest>,
) -> ApiResult<Reply> {
    user.require(Permission::Admin)?;
    let body = body.into_inner();
    let name = check_name(&body.name)?;
    let roles = check_roles(&body.roles)?;
    if body.expires_at.is_some_and(|t| t <= Utc::now()) {
        return Err(ApiError::invalid_field(
            "expires_at",
            "must be in the future",
        ));
    }
    let generated = generate();
    let new = NewApiKey {
        id: ApiKeyId::generate().uuid(),
        tenant_id: user.tenant_id,
        name,
        roles,
        prefix: generated.prefix,
        key_hash: generated.hash,
        plan_tier: user.plan_tier.as_str().to_owned(),
        created_by: user.subject.clone(),
        expires_at: body.expires_at,
    };
    let key = generated.key;
    let meta = Meta::of(&req);
    let audit = AuditActor::of(&user, &meta);
    idempotency
        .run(&state.pool, user.tenant_id, &meta, async |conn| {
            let row = db::insert(conn, &new).await?;
            let api_key = ApiKeyView::from_row(row);
            let change = Change::new("created", "api_key", api_key.id).after(&api_key);
            audit.record(conn, change).await?;
            let view = ApiKeyWithSecretView { api_key, key };
            Ok(Answer::created(view).sealed())
        })
        .await
}

/// List the tenant's API keys that are not revoked, newest first (never the keys).
#[utoipa::path(
    tag = "api-keys",
    security(("bearer" = [])),
    params(ApiKeyListQuery),
    responses(
        (status = 200, description = "A page of keys", body = crate::routes::api_keys::ApiKeyListEnvelope),
        (status = 400, description = "ERR_CPAAS_INVALID_CURSOR or ERR_CPAAS_VALIDATION_FAILED", body = crate::http::envelope::ErrorEnvelope),
        (status = 403, description = "The caller is not an admin", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/api-keys")]
pub async fn list_api_keys(
    user: AuthUser,
    state: web::Data<AppState>,
    query: web::Query<ApiKeyListQuery>,
) -> ApiResult<ApiResponse<Vec<ApiKeyView>>> {
    user.require(Permission::Admin)?;
    let query = query.into_inner();
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse()?;
    let mut conn = state.pool.get().await?;
    let rows = db::list(&mut conn, user.tenant_id, page.before, page.limit).await?;
    let (rows, page) = page.finish(rows, |r| r.id);
    Ok(ApiResponse::list(
        rows.into_iter().map(ApiKeyView::from_row).collect(),
        page,
    ))
}

/// Revoke an API key: it is refused from the next request on, on every replica.
#[utoipa::path(
    tag = "api-keys",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "API key id (apk_…)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 hours"),
    ),
    responses(
        (status = 200, description = "Revoked", body = crate::routes::providers::DeletedEnvelope),
        (status = 403, description = "The caller is not an admin", body = crate::http::envelope::ErrorEnvelope),
        (status = 404, description = "No such key for this tenant", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[delete("/cpaas/v1/api-keys/{id}")]
pub async fn revoke_api_key(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    id: PathId<ApiKeyPrefix>,
) -> ApiResult<Reply> {
    user.require(Permission::Admin)?;
    let meta = Meta::of(&req);
    let audit = AuditActor::of(&user, &meta);
    let tenant = user.tenant_id;
    idempotency
        .run(&state.pool, tenant, &meta, async |conn| {
            if !db::revoke(conn, tenant, id.uuid()).await? {
                return Err(ApiError::not_found("API key"));
            }
            audit
                .record(conn, Change::new("revoked", "api_key", *id))
                .await?;
            Ok(Answer::ok(DeletedView {
                id: id.to_string(),
                deleted: true,
            }))
        })
        .await
}
