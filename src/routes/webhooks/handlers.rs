//! Webhook subscription handlers.

use actix_web::{HttpRequest, delete, get, patch, post, web};

use super::{
    CreateWebhookRequest, DeliveryListQuery, UpdateWebhookRequest, WebhookDeliveryView,
    WebhookListQuery, WebhookView, WebhookWithSecretView,
};
use crate::db::webhook_deliveries as deliveries;
use crate::db::webhooks::{self as db, NewWebhook, WebhookChanges, seal_webhook_secret};
use crate::domain::WebhookId;
use crate::domain::ids::WebhookDeliveryId;
use crate::domain::ids::WebhookPrefix;
use crate::domain::roles::Permission;
use crate::domain::webhook::{check_events, check_webhook_url, generate_secret};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::AuthUser;
use crate::http::audit::{AuditActor, Change};
use crate::http::envelope::{ApiResponse, Meta};
use crate::http::extract::PathId;
use crate::http::idempotency::{Answer, Idempotency, Reply};
use crate::http::pagination::PageParams;
use crate::routes::providers::DeletedView;
use crate::state::AppState;

const MAX_DESCRIPTION_CHARS: usize = 500;

fn check_url(state: &AppState, url: &str) -> ApiResult<String> {
    check_webhook_url(
        url,
        state.settings.webhook_allow_http,
        state.settings.webhook_allow_internal_hosts,
    )
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
        (status = 200, description = "A page of webhooks", body = crate::routes::webhooks::WebhookListEnvelope),
        (status = 400, description = "ERR_CPAAS_INVALID_CURSOR or ERR_CPAAS_VALIDATION_FAILED", body = crate::http::envelope::ErrorEnvelope),
        (status = 403, description = "The caller may not manage webhooks", body = crate::http::envelope::ErrorEnvelope),
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
///
/// With an `Idempotency-Key` the whole answer, secret included, is stored with the key on
/// purpose: a replay within 24 hours returns the same webhook and the same secret, so a
/// client that lost the first answer can still learn the secret of the webhook it created.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    request_body = CreateWebhookRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer, secret included, for 24 hours")),
    responses(
        (status = 201, description = "The webhook and its secret", body = crate::routes::webhooks::WebhookWithSecretEnvelope),
        (status = 400, description = "ERR_CPAAS_INVALID_WEBHOOK_URL, or ERR_CPAAS_VALIDATION_FAILED naming an unknown event", body = crate::http::envelope::ErrorEnvelope),
        (status = 403, description = "The caller may not manage webhooks", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[post("/cpaas/v1/webhooks")]
pub async fn create_webhook(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    body: web::Json<CreateWebhookRequest>,
) -> ApiResult<Reply> {
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
    let meta = Meta::of(&req);
    let audit = AuditActor::of(&user, &meta);
    let tenant = user.tenant_id;
    idempotency
        .run(&state.pool, tenant, &meta, async |conn| {
            let row = db::insert_webhook(conn, &new).await?;
            let webhook = WebhookView::from_row(row);
            let change = Change::new("created", "webhook", id).after(&webhook);
            audit.record(conn, change).await?;
            let view = WebhookWithSecretView { webhook, secret };
            Ok(Answer::created(view).sealed())
        })
        .await
}

/// One webhook (without its secret).
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id (whk_…)")),
    responses(
        (status = 200, description = "The webhook", body = crate::routes::webhooks::WebhookEnvelope),
        (status = 403, description = "The caller may not manage webhooks", body = crate::http::envelope::ErrorEnvelope),
        (status = 404, description = "No such webhook for this tenant", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/webhooks/{id}")]
pub async fn get_webhook(
    user: AuthUser,
    state: web::Data<AppState>,
    id: PathId<WebhookPrefix>,
) -> ApiResult<ApiResponse<WebhookView>> {
    user.require(Permission::Send)?;
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
    params(
        ("id" = String, Path, description = "Webhook id (whk_…)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 hours"),
    ),
    request_body = UpdateWebhookRequest,
    responses(
        (status = 200, description = "The webhook", body = crate::routes::webhooks::WebhookEnvelope),
        (status = 400, description = "ERR_CPAAS_INVALID_WEBHOOK_URL or ERR_CPAAS_VALIDATION_FAILED", body = crate::http::envelope::ErrorEnvelope),
        (status = 403, description = "The caller may not manage webhooks", body = crate::http::envelope::ErrorEnvelope),
        (status = 404, description = "No such webhook for this tenant", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[patch("/cpaas/v1/webhooks/{id}")]
pub async fn update_webhook(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    id: PathId<WebhookPrefix>,
    body: web::Json<UpdateWebhookRequest>,
) -> ApiResult<Reply> {
    user.require(Permission::Send)?;
    let body = body.into_inner();
    let mut changes = WebhookChanges {
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
        ..WebhookChanges::default()
    };
    if body.is_active == Some(true) {
        changes.reactivate();
    }
    let meta = Meta::of(&req);
    let audit = AuditActor::of(&user, &meta);
    let tenant = user.tenant_id;
    idempotency
        .run(&state.pool, tenant, &meta, async |conn| {
            let before = db::get_webhook(conn, tenant, id.uuid())
                .await?
                .map(WebhookView::from_row);
            let row = db::update_webhook(conn, tenant, id.uuid(), &changes)
                .await?
                .ok_or_else(|| ApiError::not_found("webhook"))?;
            let view = WebhookView::from_row(row);
            let mut change = Change::new("updated", "webhook", *id).after(&view);
            if let Some(before) = &before {
                change = change.before(before);
            }
            audit.record(conn, change).await?;
            Ok(Answer::ok(view))
        })
        .await
}

/// Delete a webhook: nothing more is delivered to it.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Webhook id (whk_…)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 hours"),
    ),
    responses(
        (status = 200, description = "Deleted", body = crate::routes::providers::DeletedEnvelope),
        (status = 403, description = "The caller may not manage webhooks", body = crate::http::envelope::ErrorEnvelope),
        (status = 404, description = "No such webhook for this tenant", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[delete("/cpaas/v1/webhooks/{id}")]
pub async fn delete_webhook(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    id: PathId<WebhookPrefix>,
) -> ApiResult<Reply> {
    user.require(Permission::Send)?;
    let meta = Meta::of(&req);
    let audit = AuditActor::of(&user, &meta);
    let tenant = user.tenant_id;
    idempotency
        .run(&state.pool, tenant, &meta, async |conn| {
            if !db::delete_webhook(conn, tenant, id.uuid()).await? {
                return Err(ApiError::not_found("webhook"));
            }
            audit
                .record(conn, Change::new("deleted", "webhook", *id))
                .await?;
            let view = DeletedView {
                id: id.to_string(),
                deleted: true,
            };
            Ok(Answer::ok(view))
        })
        .await
}

/// Replace a webhook's signing secret. The new secret is in this answer only; the old one
/// stops signing at once. With an `Idempotency-Key`, the answer (new secret included) is
/// stored under the key, so a replay returns the same secret instead of rotating again.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Webhook id (whk_…)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer, secret included, for 24 hours"),
    ),
    responses(
        (status = 200, description = "The webhook and its new secret", body = crate::routes::webhooks::WebhookWithSecretEnvelope),
        (status = 403, description = "The caller may not manage webhooks", body = crate::http::envelope::ErrorEnvelope),
        (status = 404, description = "No such webhook for this tenant", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[post("/cpaas/v1/webhooks/{id}/rotate-secret")]
pub async fn rotate_webhook_secret(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    id: PathId<WebhookPrefix>,
) -> ApiResult<Reply> {
    user.require(Permission::Send)?;
    let secret = generate_secret();
    let changes = WebhookChanges {
        secret_encrypted: Some(
            seal_webhook_secret(&state.cipher, user.tenant_id, id.uuid(), &secret)
                .map_err(ApiError::internal)?,
        ),
        updated_at: Some(chrono::Utc::now()),
        ..WebhookChanges::default()
    };
    let meta = Meta::of(&req);
    let audit = AuditActor::of(&user, &meta);
    let tenant = user.tenant_id;
    idempotency
        .run(&state.pool, tenant, &meta, async |conn| {
            let row = db::update_webhook(conn, tenant, id.uuid(), &changes)
                .await?
                .ok_or_else(|| ApiError::not_found("webhook"))?;
            let change = Change::new("secret_rotated", "webhook", *id)
                .extra(serde_json::json!({ "secret": "rotated" }));
            audit.record(conn, change).await?;
            let view = WebhookWithSecretView {
                webhook: WebhookView::from_row(row),
                secret,
            };
            Ok(Answer::ok(view).sealed())
        })
        .await
}

/// The deliveries of events to a webhook, newest first, each with every attempt made:
/// status, HTTP status answered, error and latency.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id (whk_…)"), DeliveryListQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = crate::routes::webhooks::WebhookDeliveryListEnvelope),
        (status = 400, description = "ERR_CPAAS_INVALID_CURSOR or ERR_CPAAS_VALIDATION_FAILED", body = crate::http::envelope::ErrorEnvelope),
        (status = 403, description = "The caller may not manage webhooks", body = crate::http::envelope::ErrorEnvelope),
        (status = 404, description = "No such webhook for this tenant", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/webhooks/{id}/deliveries")]
pub async fn list_webhook_deliveries(
    user: AuthUser,
    state: web::Data<AppState>,
    id: PathId<WebhookPrefix>,
    query: web::Query<DeliveryListQuery>,
) -> ApiResult<ApiResponse<Vec<WebhookDeliveryView>>> {
    user.require(Permission::Send)?;
    let query = query.into_inner();
    let status = match query.status.as_deref() {
        None => None,
        Some(s @ ("PENDING" | "DELIVERED" | "FAILED")) => Some(s),
        Some(other) => {
            return Err(ApiError::invalid_field(
                "status",
                format!("unknown status {other:?}; expected PENDING, DELIVERED or FAILED"),
            ));
        }
    };
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .parse()?;
    let mut conn = state.pool.get().await?;
    if db::get_webhook(&mut conn, user.tenant_id, id.uuid())
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("webhook"));
    }
    let rows = deliveries::list_for_webhook(
        &mut conn,
        user.tenant_id,
        id.uuid(),
        status,
        page.before,
        page.limit,
    )
    .await?;
    let (rows, page) = page.finish(rows, |r| r.id);
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.id).collect();
    let mut attempts: std::collections::HashMap<uuid::Uuid, Vec<_>> =
        std::collections::HashMap::new();
    for attempt in deliveries::attempts_of(&mut conn, &ids).await? {
        attempts
            .entry(attempt.delivery_id)
            .or_default()
            .push(attempt);
    }
    let views = rows
        .into_iter()
        .map(|row| {
            let mine = attempts.remove(&row.id).unwrap_or_default();
            WebhookDeliveryView::from_row(row, mine)
        })
        .collect();
    Ok(ApiResponse::list(views, page))
}

/// Send a finished delivery (DELIVERED or FAILED) again: it goes back to PENDING and the next
/// `deliver-webhooks` run posts it, signed afresh. Its retry window still counts from the
/// event, so a delivery older than the window gets this one attempt.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Webhook id (whk_…)"),
        ("delivery_id" = String, Path, description = "Delivery id (whd_…)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 hours"),
    ),
    responses(
        (status = 202, description = "Queued for another attempt", body = crate::routes::webhooks::WebhookDeliveryEnvelope),
        (status = 403, description = "The caller may not manage webhooks", body = crate::http::envelope::ErrorEnvelope),
        (status = 404, description = "No such webhook or delivery for this tenant", body = crate::http::envelope::ErrorEnvelope),
        (status = 409, description = "ERR_CPAAS_INVALID_STATE: the delivery is still pending", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[post("/cpaas/v1/webhooks/{id}/deliveries/{delivery_id}/retry")]
pub async fn retry_webhook_delivery(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    path: web::Path<(String, String)>,
) -> ApiResult<Reply> {
    user.require(Permission::Send)?;
    let (webhook, delivery) = path.into_inner();
    let webhook = WebhookId::from_path(&webhook)?;
    let delivery = WebhookDeliveryId::from_path(&delivery)?;
    let meta = Meta::of(&req);
    let tenant = user.tenant_id;
    idempotency
        .run(&state.pool, tenant, &meta, async |conn| {
            if db::get_webhook(conn, tenant, webhook.uuid())
                .await?
                .is_none()
            {
                return Err(ApiError::not_found("webhook"));
            }
            let row = deliveries::requeue(conn, tenant, webhook.uuid(), delivery.uuid())
                .await?
                .ok_or_else(|| ApiError::not_found("webhook delivery"))?
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidState,
                        "the delivery is still pending; it will be attempted on its schedule",
                    )
                })?;
            let attempts = deliveries::attempts_of(conn, &[row.id]).await?;
            let view = WebhookDeliveryView::from_row(row, attempts);
            Ok(Answer::accepted(view))
        })
        .await
}
