//! Provider handlers.

use actix_web::{HttpRequest, delete, get, patch, post, web};
use serde_json::{Map, Value, json};

use super::{
    CreateProviderRequest, DeletedView, HealthView, ProviderListQuery, ProviderView,
    UpdateProviderRequest,
};
use crate::crypto::CredentialCipher;
use crate::db::providers::{self as db, NewProvider, ProviderChanges, ProviderFilter};
use crate::domain::ids::ProviderPrefix;
use crate::domain::roles::Permission;
use crate::domain::{Channel, ProviderId, ProviderKind};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::AuthUser;
use crate::http::audit::{AuditActor, Change};
use crate::http::envelope::{ApiResponse, Meta};
use crate::http::extract::PathId;
use crate::http::idempotency::{Answer, Idempotency, Reply};
use crate::http::pagination::PageParams;
use crate::state::AppState;

fn invalid_config(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidProviderConfig, message)
}

/// The kind's own checks of its settings, then (outside development) the hosts its URLs may
/// name.
fn check_settings(
    state: &AppState,
    kind: ProviderKind,
    config: &Map<String, Value>,
    credentials: &Map<String, Value>,
) -> ApiResult<()> {
    kind.validate(config, credentials).map_err(invalid_config)?;
    state
        .jobs
        .registry
        .check_urls(kind, config, credentials)
        .map_err(invalid_config)
}

fn parse_kind(kind: &str) -> ApiResult<ProviderKind> {
    kind.parse().map_err(|e: String| {
        let known: Vec<&str> = ProviderKind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::invalid_field("kind", format!("{e}; expected one of {}", known.join(", ")))
    })
}

fn parse_channels(kind: ProviderKind, channels: Option<&[String]>) -> ApiResult<Vec<Channel>> {
    let Some(channels) = channels else {
        return Ok(kind.channels().to_vec());
    };
    if channels.is_empty() {
        return Err(invalid_config("channels must name at least one channel"));
    }
    let mut parsed = Vec::with_capacity(channels.len());
    for c in channels {
        let channel: Channel = c
            .parse()
            .map_err(|e: String| ApiError::new(ErrorCode::InvalidChannel, e))?;
        if !kind.channels().contains(&channel) {
            return Err(invalid_config(format!(
                "{kind} does not support the {channel} channel"
            )));
        }
        if !parsed.contains(&channel) {
            parsed.push(channel);
        }
    }
    parsed.sort();
    Ok(parsed)
}

fn check_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid_field(
            "name",
            "must be 1 to 100 characters",
        ));
    }
    Ok(name.to_owned())
}

fn check_priority(priority: i32) -> ApiResult<i32> {
    if (0..=10_000).contains(&priority) {
        Ok(priority)
    } else {
        Err(ApiError::invalid_field(
            "priority",
            "must be between 0 and 10000",
        ))
    }
}

use crate::crypto::row_aad as aad;

fn seal(
    cipher: &CredentialCipher,
    tenant_id: uuid::Uuid,
    id: uuid::Uuid,
    creds: &Map<String, Value>,
) -> ApiResult<Vec<u8>> {
    let plain = serde_json::to_vec(creds).map_err(ApiError::internal)?;
    cipher
        .seal(&plain, &aad(tenant_id, id))
        .map_err(ApiError::internal)
}

/// Opens a provider's sealed credentials.
pub fn open_credentials(
    cipher: &CredentialCipher,
    tenant_id: uuid::Uuid,
    id: uuid::Uuid,
    sealed: &[u8],
) -> anyhow::Result<Map<String, Value>> {
    let plain = cipher.open(sealed, &aad(tenant_id, id))?;
    Ok(serde_json::from_slice(&plain)?)
}

fn key_names(creds: &Map<String, Value>) -> Vec<Option<String>> {
    creds.keys().map(|k| Some(k.clone())).collect()
}

fn to_texts(channels: &[Channel]) -> Vec<Option<String>> {
    channels
        .iter()
        .map(|c| Some(c.as_str().to_owned()))
        .collect()
}

/// List the tenant's providers, newest first.
#[utoipa::path(
    tag = "providers",
    security(("bearer" = [])),
    params(ProviderListQuery),
    responses(
        (status = 200, description = "A page of providers", body = crate::routes::providers::ProviderListEnvelope),
        (status = 400, description = "ERR_CPAAS_INVALID_CURSOR or ERR_CPAAS_VALIDATION_FAILED", body = crate::http::envelope::ErrorEnvelope),
        (status = 401, description = "Missing or invalid token", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/providers")]
pub async fn list_providers(
    user: AuthUser,
    state: web::Data<AppState>,
    query: web::Query<ProviderListQuery>,
) -> ApiResult<ApiResponse<Vec<ProviderView>>> {
    user.require(Permission::Read)?;
    let query = query.into_inner();
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse()?;
    let filter = ProviderFilter {
        kind: query
            .kind
            .as_deref()
            .map(parse_kind)
            .transpose()?
            .map(|k| k.as_str().to_owned()),
        channel: query
            .channel
            .as_deref()
            .map(|c| {
                c.parse::<Channel>()
                    .map_err(|e| ApiError::new(ErrorCode::InvalidChannel, e))
            })
            .transpose()?
            .map(|c| c.as_str().to_owned()),
        is_active: query.is_active,
    };
    let mut conn = state.pool.get().await?;
    let rows =
        db::list_providers(&mut conn, user.tenant_id, &filter, page.before, page.limit).await?;
    let (rows, page) = page.finish(rows, |r| r.id);
    Ok(ApiResponse::list(
        rows.into_iter().map(ProviderView::from_row).collect(),
        page,
    ))
}

/// Add a provider (admin).
#[utoipa::path(
    tag = "providers",
    security(("bearer" = [])),
    request_body = CreateProviderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 hours")),
    responses(
        (status = 201, description = "The provider", body = crate::routes::providers::ProviderEnvelope),
        (status = 400, description = "ERR_CPAAS_INVALID_PROVIDER_CONFIG naming the field, ERR_CPAAS_INVALID_CHANNEL or ERR_CPAAS_VALIDATION_FAILED", body = crate::http::envelope::ErrorEnvelope),
        (status = 403, description = "Not an admin", body = crate::http::envelope::ErrorEnvelope),
        (status = 409, description = "A provider with this name exists", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[post("/cpaas/v1/providers")]
pub async fn create_provider(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    body: web::Json<CreateProviderRequest>,
) -> ApiResult<Reply> {
    user.require(Permission::Admin)?;
    let body = body.into_inner();
    let name = check_name(&body.name)?;
    let kind = parse_kind(&body.kind)?;
    let channels = parse_channels(kind, body.channels.as_deref())?;
    let priority = check_priority(body.priority.unwrap_or(100))?;
    let config = body.config.unwrap_or_default();
    let credentials = body.credentials.unwrap_or_default();
    check_settings(&state, kind, &config, &credentials)?;

    let id = ProviderId::generate();
    let new = NewProvider {
        id: id.uuid(),
        tenant_id: user.tenant_id,
        name,
        kind: kind.as_str().to_owned(),
        channels: to_texts(&channels),
        priority,
        is_active: body.is_active.unwrap_or(true),
        config: Value::Object(config),
        credentials_encrypted: seal(&state.cipher, user.tenant_id, id.uuid(), &credentials)?,
        credential_keys: key_names(&credentials),
    };
    let meta = Meta::of(&req);
    let audit = AuditActor::of(&user, &meta);
    let tenant = user.tenant_id;
    idempotency
        .run(&state.pool, tenant, &meta, async |conn| {
            if db::name_taken(conn, tenant, &new.name).await? {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!("a provider named {:?} already exists", new.name),
                ));
            }
            let row = db::insert_provider(conn, &new).await?;
            let view = ProviderView::from_row(row);
            let change = Change::new("created", "provider", id).after(&view);
            audit.record(conn, change).await?;
            Ok(Answer::created(view))
        })
        .await
}

/// One provider.
#[utoipa::path(
    tag = "providers",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Provider id (prv_…)")),
    responses(
        (status = 200, description = "The provider", body = crate::routes::providers::ProviderEnvelope),
        (status = 404, description = "No such provider for this tenant", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/providers/{id}")]
pub async fn get_provider(
    user: AuthUser,
    state: web::Data<AppState>,
    id: PathId<ProviderPrefix>,
) -> ApiResult<ApiResponse<ProviderView>> {
    user.require(Permission::Read)?;
    let mut conn = state.pool.get().await?;
    let row = db::get_provider(&mut conn, user.tenant_id, id.uuid())
        .await?
        .ok_or_else(|| ApiError::not_found("provider"))?;
    Ok(ApiResponse::ok(ProviderView::from_row(row)))
}

/// Change a provider (admin).
#[utoipa::path(
    tag = "providers",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Provider id (prv_…)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 hours"),
    ),
    request_body = UpdateProviderRequest,
    responses(
        (status = 200, description = "The provider", body = crate::routes::providers::ProviderEnvelope),
        (status = 400, description = "ERR_CPAAS_INVALID_PROVIDER_CONFIG naming the field", body = crate::http::envelope::ErrorEnvelope),
        (status = 403, description = "Not an admin", body = crate::http::envelope::ErrorEnvelope),
        (status = 404, description = "No such provider for this tenant", body = crate::http::envelope::ErrorEnvelope),
        (status = 409, description = "A provider with this name exists", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[patch("/cpaas/v1/providers/{id}")]
pub async fn update_provider(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    id: PathId<ProviderPrefix>,
    body: web::Json<UpdateProviderRequest>,
) -> ApiResult<Reply> {
    user.require(Permission::Admin)?;
    let body = body.into_inner();
    let name = body.name.as_deref().map(check_name).transpose()?;
    let priority = body.priority.map(check_priority).transpose()?;
    let tenant_id = user.tenant_id;
    let cipher = state.cipher.clone();
    let meta = Meta::of(&req);
    let audit = AuditActor::of(&user, &meta);
    // The names of the credential keys this request sets or removes (never their values).
    let mut credential_keys_changed: Vec<String> = body
        .credentials
        .as_ref()
        .map(|c| c.keys().cloned().collect())
        .unwrap_or_default();
    credential_keys_changed.sort();
    idempotency
        .run(&state.pool, tenant_id, &meta, async |conn| {
            let current = db::lock_provider(conn, tenant_id, id.uuid())
                .await?
                .ok_or_else(|| ApiError::not_found("provider"))?;
            let before = ProviderView::from_row(current.clone());
            let kind = parse_kind(&current.kind)?;
            let channels = body
                .channels
                .as_deref()
                .map(|c| parse_channels(kind, Some(c)))
                .transpose()?;
            let config = match body.config {
                Some(config) => config,
                None => match current.config {
                    Value::Object(map) => map,
                    _ => Map::new(),
                },
            };
            let mut credentials = open_credentials(
                &cipher,
                tenant_id,
                id.uuid(),
                &current.credentials_encrypted,
            )
            .map_err(ApiError::internal)?;
            let credentials_changed = body.credentials.is_some();
            for (key, value) in body.credentials.unwrap_or_default() {
                if value.is_null() {
                    credentials.remove(&key);
                } else {
                    credentials.insert(key, value);
                }
            }
            check_settings(&state, kind, &config, &credentials)?;
            if let Some(name) = &name
                && *name != current.name
                && db::name_taken(conn, tenant_id, name).await?
            {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!("a provider named {name:?} already exists"),
                ));
            }
            let changes = ProviderChanges {
                name,
                channels: channels.as_deref().map(to_texts),
                priority,
                is_active: body.is_active,
                config: Some(Value::Object(config)),
                credentials_encrypted: if credentials_changed {
                    Some(seal(&cipher, tenant_id, id.uuid(), &credentials)?)
                } else {
                    None
                },
                credential_keys: credentials_changed.then(|| key_names(&credentials)),
                updated_at: Some(chrono::Utc::now()),
            };
            let row = db::update_provider(conn, tenant_id, id.uuid(), &changes).await?;
            let view = ProviderView::from_row(row);
            let mut change = Change::new("updated", "provider", *id)
                .before(&before)
                .after(&view);
            if credentials_changed {
                change = change.extra(json!({ "credentials_changed": credential_keys_changed }));
            }
            audit.record(conn, change).await?;
            Ok(Answer::ok(view))
        })
        .await
}

/// Remove a provider (admin). It stops being used at once; past messages keep their reference.
#[utoipa::path(
    tag = "providers",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Provider id (prv_…)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 hours"),
    ),
    responses(
        (status = 200, description = "Deleted", body = crate::routes::providers::DeletedEnvelope),
        (status = 403, description = "Not an admin", body = crate::http::envelope::ErrorEnvelope),
        (status = 404, description = "No such provider for this tenant", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[delete("/cpaas/v1/providers/{id}")]
pub async fn delete_provider(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    id: PathId<ProviderPrefix>,
) -> ApiResult<Reply> {
    user.require(Permission::Admin)?;
    let meta = Meta::of(&req);
    let audit = AuditActor::of(&user, &meta);
    let tenant = user.tenant_id;
    idempotency
        .run(&state.pool, tenant, &meta, async |conn| {
            if !db::delete_provider(conn, tenant, id.uuid()).await? {
                return Err(ApiError::not_found("provider"));
            }
            audit
                .record(conn, Change::new("deleted", "provider", *id))
                .await?;
            let view = DeletedView {
                id: id.to_string(),
                deleted: true,
            };
            Ok(Answer::ok(view))
        })
        .await
}

/// Health of one provider.
#[utoipa::path(
    tag = "providers",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Provider id (prv_…)")),
    responses(
        (status = 200, description = "Health", body = crate::routes::providers::HealthEnvelope),
        (status = 404, description = "No such provider for this tenant", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/providers/{id}/health")]
pub async fn get_provider_health(
    user: AuthUser,
    state: web::Data<AppState>,
    id: PathId<ProviderPrefix>,
) -> ApiResult<ApiResponse<HealthView>> {
    user.require(Permission::Read)?;
    let mut conn = state.pool.get().await?;
    let row = db::get_provider(&mut conn, user.tenant_id, id.uuid())
        .await?
        .ok_or_else(|| ApiError::not_found("provider"))?;
    Ok(ApiResponse::ok(ProviderView::from_row(row).health))
}
