//! Webhook subscription handlers.

use actix_web::{delete, get, patch, post, web};

use super::{
    CreateWebhookRequest, UpdateWebhookRequest, WebhookListQuery, WebhookView,
    WebhookWithSecretView,
};
use crate::auth::AuthUser;
use crate::db::pagination::PageParams;
use crate::db::webhooks::{self as db, NewWebhook, WebhookChanges, seal_webhook_secret};
use crate::domain::WebhookId;
use crate::domain::roles::Permission;
use crate::domain::webhook::{check_events, check_webhook_url, generate_secret};
use crate::envelope::ApiResponse;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::routes::providers::DeletedView;
use crate::state::AppState;

const MAX_DESCRIPTION_CHARS: usize = 500;

fn check_url(state: &AppState, url: &str) -> ApiResult<String> {
    check_webhook_url(url, state.settings.allow_insecure_webhook_urls)
        .map_err(|reason| ApiError::new(ErrorCode::InvalidWebhookUrl, format!("url {reason}")))
}

fn to_texts(events: Vec<String>) -> Vec<Option<String>> {
    events.into_iter().map(Some).collect()
}

fn checked_events(events: &[String]) -> ApiResult<Vec<Option<String>>> {
    check_events(events)
        .map(to_texts)
        .map_err(|e| ApiError::invalid_field("events", e))
}

/// Trims; an empty description is none.
fn check_description(description: Option<String>) -> ApiResult<Option<String>> {
    let description = description
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
    {
        return Err(ApiError::invalid_field(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(description)
}

/// List the tenant's webhooks, newest first. Secrets are never listed.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(WebhookListQuery),
    responses(
        (status = 200, description = "A page of webhooks", body = crate::openapi::WebhookListEnvelope),
        (status = 400, description = "ERR_CPAAS_INVALID_CURSOR or ERR_CPAAS_VALIDATION_FAILED", body = crate::envelope::ErrorEnvelope),
        (status = 403, description = "The caller may not manage webhooks", body = crate::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/webhooks")]
pub async fn list_webhooks(
    user: AuthUser,
    state: web::Data<AppState>,
    query: web::Query<WebhookListQuery>,
) -> ApiResult<ApiResponse<Vec<WebhookView>>> {
    user.require(Permission::Send)?;
    let query = query.into_inner();
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse()?;
    let mut conn = state.pool.get().await?;
    let rows = db::list_webhooks(&mut conn, user.tenant_id, page.before, page.limit).await?;
    let (rows, page) = page.finish(rows, |r| r.id);
    Ok(ApiResponse::list(
        rows.into_iter().map(WebhookView::from_row).collect(),
        page,
    ))
}

/// Subscribe a URL to events. The answer carries the signing secret, shown this once.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "The webhook and its secret", body = crate::openapi::WebhookWithSecretEnvelope),
        (status = 400, description = "ERR_CPAAS_INVALID_WEBHOOK_URL, or ERR_CPAAS_VALIDATION_FAILED naming an unknown event", body = crate::envelope::ErrorEnvelope),
        (status = 403, description = "The caller may not manage webhooks", body = crate::envelope::ErrorEnvelope),
    )
)]
#[post("/cpaas/v1/webhooks")]
pub async fn create_webhook(
    user: AuthUser,
    state: web::Data<AppState>,
    body: web::Json<CreateWebhookRequest>,
) -> ApiResult<ApiResponse<WebhookWithSecretView>> {
    user.require(Permission::Send)?;
    let body = body.into_inner();
    let url = check_url(&state, &body.url)?;
    let events = checked_events(&body.events)?;
    let description = check_description(body.description)?;
    let id = WebhookId::generate();
    let secret = generate_secret();
    let new = NewWebhook {
        id: id.uuid(),
        tenant_id: user.tenant_id,
        url,
        events,
        secret_encrypted: seal_webhook_secret(&state.cipher, user.tenant_id, id.uuid(), &secret)
            .map_err(ApiError::internal)?,
        is_active: body.is_active.unwrap_or(true),
        description,
    };
    let mut conn = state.pool.get().await?;
    let row = db::insert_webhook(&mut conn, &new).await?;
    Ok(ApiResponse::created(WebhookWithSecretView {
        webhook: WebhookView::from_row(row),
        secret,
    }))
}

/// One webhook (without its secret).
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id (whk_…)")),
    responses(
        (status = 200, description = "The webhook", body = crate::openapi::WebhookEnvelope),
        (status = 403, description = "The caller may not manage webhooks", body = crate::envelope::ErrorEnvelope),
        (status = 404, description = "No such webhook for this tenant", body = crate::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/webhooks/{id}")]
pub async fn get_webhook(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<ApiResponse<WebhookView>> {
    user.require(Permission::Send)?;
    let id = WebhookId::from_path(&path)?;
    let mut conn = state.pool.get().await?;
    let row = db::get_webhook(&mut conn, user.tenant_id, id.uuid())
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(ApiResponse::ok(WebhookView::from_row(row)))
}

/// Change a webhook's URL, events, activity or description.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id (whk_…)")),
    request_body = UpdateWebhookRequest,
    responses(
        (status = 200, description = "The webhook", body = crate::openapi::WebhookEnvelope),
        (status = 400, description = "ERR_CPAAS_INVALID_WEBHOOK_URL or ERR_CPAAS_VALIDATION_FAILED", body = crate::envelope::ErrorEnvelope),
        (status = 403, description = "The caller may not manage webhooks", body = crate::envelope::ErrorEnvelope),
        (status = 404, description = "No such webhook for this tenant", body = crate::envelope::ErrorEnvelope),
    )
)]
#[patch("/cpaas/v1/webhooks/{id}")]
pub async fn update_webhook(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<UpdateWebhookRequest>,
) -> ApiResult<ApiResponse<WebhookView>> {
    user.require(Permission::Send)?;
    let id = WebhookId::from_path(&path)?;
    let body = body.into_inner();
    let changes = WebhookChanges {
        url: body
            .url
            .as_deref()
            .map(|u| check_url(&state, u))
            .transpose()?,
        events: body.events.as_deref().map(checked_events).transpose()?,
        secret_encrypted: None,
        is_active: body.is_active,
        description: match body.description {
            Some(d) => Some(check_description(Some(d))?),
            None => None,
        },
        updated_at: Some(chrono::Utc::now()),
    };
    let mut conn = state.pool.get().await?;
    let row = db::update_webhook(&mut conn, user.tenant_id, id.uuid(), &changes)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(ApiResponse::ok(WebhookView::from_row(row)))
}

/// Delete a webhook: nothing more is delivered to it.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id (whk_…)")),
    responses(
        (status = 200, description = "Deleted", body = crate::openapi::DeletedEnvelope),
        (status = 403, description = "The caller may not manage webhooks", body = crate::envelope::ErrorEnvelope),
        (status = 404, description = "No such webhook for this tenant", body = crate::envelope::ErrorEnvelope),
    )
)]
#[delete("/cpaas/v1/webhooks/{id}")]
pub async fn delete_webhook(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<ApiResponse<DeletedView>> {
    user.require(Permission::Send)?;
    let id = WebhookId::from_path(&path)?;
    let mut conn = state.pool.get().await?;
    if !db::delete_webhook(&mut conn, user.tenant_id, id.uuid()).await? {
        return Err(ApiError::not_found("webhook"));
    }
    Ok(ApiResponse::ok(DeletedView {
        id: id.to_string(),
        deleted: true,
    }))
}

/// Replace a webhook's signing secret. The new secret is in this answer only; the old one
/// stops signing at once.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id (whk_…)")),
    responses(
        (status = 200, description = "The webhook and its new secret", body = crate::openapi::WebhookWithSecretEnvelope),
        (status = 403, description = "The caller may not manage webhooks", body = crate::envelope::ErrorEnvelope),
        (status = 404, description = "No such webhook for this tenant", body = crate::envelope::ErrorEnvelope),
    )
)]
#[post("/cpaas/v1/webhooks/{id}/rotate-secret")]
pub async fn rotate_webhook_secret(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<ApiResponse<WebhookWithSecretView>> {
    user.require(Permission::Send)?;
    let id = WebhookId::from_path(&path)?;
    let secret = generate_secret();
    let changes = WebhookChanges {
        secret_encrypted: Some(
            seal_webhook_secret(&state.cipher, user.tenant_id, id.uuid(), &secret)
                .map_err(ApiError::internal)?,
        ),
        updated_at: Some(chrono::Utc::now()),
        ..WebhookChanges::default()
    };
    let mut conn = state.pool.get().await?;
    let row = db::update_webhook(&mut conn, user.tenant_id, id.uuid(), &changes)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(ApiResponse::ok(WebhookWithSecretView {
        webhook: WebhookView::from_row(row),
        secret,
    }))
}
