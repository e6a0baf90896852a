//! Operator endpoints: drain the outbox now, list dead letters, re-drive one, and sync
//! WhatsApp template statuses from Meta now.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, get, post, web};
use diesel_async::AsyncConnection;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::InternalKey;
use crate::db::pagination::PageParams;
use crate::envelope::{ApiResponse, Meta};
use crate::error::{ApiError, ApiResult};
use crate::idempotency::{INTERNAL_SCOPE, Idempotency, Reply};
use crate::outbox::store::{self, DeadEvent};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(process_outbox)
        .service(list_dead)
        .service(redrive)
        .service(sync_templates);
}

/// Body of `POST /cpaas/v1/_internal/process-outbox` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessOutboxRequest {
    /// At most this many events (default 10,000).
    pub max_events: Option<i64>,
}

/// Drain the outbox now, with the code the OutboxActor runs.
#[utoipa::path(
    tag = "internal",
    security(("internal_key" = [])),
    request_body(content = Option<ProcessOutboxRequest>, description = "Optional limit"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 hours")),
    responses(
        (status = 200, description = "What the drain did", body = crate::openapi::DrainEnvelope),
        (status = 401, description = "ERR_CPAAS_INVALID_API_KEY", body = crate::envelope::ErrorEnvelope),
    )
)]
#[post("/cpaas/v1/_internal/process-outbox")]
pub async fn process_outbox(
    req: HttpRequest,
    _key: InternalKey,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    body: Option<web::Json<ProcessOutboxRequest>>,
) -> ApiResult<Reply> {
    let max = body.and_then(|b| b.max_events).unwrap_or(10_000);
    if !(1..=1_000_000).contains(&max) {
        return Err(ApiError::invalid_field(
            "max_events",
            "must be between 1 and 1000000",
        ));
    }
    let meta = Meta::of(&req);
    // Without a key there is nothing to record: the drain runs on its own connections and no
    // transaction stays open meanwhile.
    if !idempotency.is_keyed() {
        let report = state.outbox.drain(max).await?;
        return Idempotency::unkeyed(&meta, StatusCode::OK, &report);
    }
    let mut conn = state.pool.get().await?;
    conn.transaction::<_, ApiError, _>(async |conn| {
        if let Some(replay) = idempotency.begin(conn, INTERNAL_SCOPE).await? {
            return Ok(replay);
        }
        let report = state.outbox.drain(max).await?;
        idempotency
            .finish(conn, INTERNAL_SCOPE, &meta, StatusCode::OK, &report, None)
            .await
    })
    .await
}

/// Dead-lettered events, newest first.
#[utoipa::path(
    tag = "internal",
    security(("internal_key" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of dead letters", body = crate::openapi::DeadListEnvelope),
        (status = 401, description = "ERR_CPAAS_INVALID_API_KEY", body = crate::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/_internal/outbox/dead")]
pub async fn list_dead(
    _key: InternalKey,
    state: web::Data<AppState>,
    query: web::Query<PageParams>,
) -> ApiResult<ApiResponse<Vec<DeadEvent>>> {
    let page = query.parse()?;
    let mut conn = state.pool.get().await?;
    let rows = store::list_dead(&mut conn, page.before, page.limit).await?;
    let (rows, page) = page.finish(rows, |r| r.id);
    Ok(ApiResponse::list(rows, page))
}

/// Put a dead letter back in the queue with a fresh attempt budget.
#[utoipa::path(
    tag = "internal",
    security(("internal_key" = [])),
    params(
        ("id" = String, Path, description = "Outbox event id (the UUID of a dead letter)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 hours"),
    ),
    responses(
        (status = 200, description = "Re-driven", body = crate::openapi::RedriveEnvelope),
        (status = 404, description = "No dead letter with this id", body = crate::envelope::ErrorEnvelope),
    )
)]
#[post("/cpaas/v1/_internal/outbox/{id}/redrive")]
pub async fn redrive(
    req: HttpRequest,
    _key: InternalKey,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    path: web::Path<String>,
) -> ApiResult<Reply> {
    let id = path
        .trim()
        .trim_start_matches("evt-")
        .parse::<uuid::Uuid>()
        .map_err(|_| ApiError::not_found("dead letter"))?;
    let meta = Meta::of(&req);
    let mut conn = state.pool.get().await?;
    conn.transaction::<_, ApiError, _>(async |conn| {
        if let Some(replay) = idempotency.begin(conn, INTERNAL_SCOPE).await? {
            return Ok(replay);
        }
        if !store::redrive(conn, id).await? {
            return Err(ApiError::not_found("dead letter"));
        }
        let answer = serde_json::json!({ "id": id, "status": "PENDING" });
        idempotency
            .finish(conn, INTERNAL_SCOPE, &meta, StatusCode::OK, &answer, None)
            .await
    })
    .await
}

/// Sync WhatsApp template statuses from Meta now, with the code the `sync-templates` job runs;
/// answers what it did per provider.
///
/// Like `POST /jobs/{name}`, the key's transaction stays open for the whole sync: a duplicate
/// arriving meanwhile gets 409, one arriving after gets the stored report.
#[utoipa::path(
    tag = "internal",
    security(("internal_key" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 hours")),
    responses(
        (status = 200, description = "What the sync did", body = crate::openapi::SyncReportEnvelope),
        (status = 401, description = "ERR_CPAAS_INVALID_API_KEY", body = crate::envelope::ErrorEnvelope),
    )
)]
#[post("/cpaas/v1/_internal/sync-templates")]
pub async fn sync_templates(
    req: HttpRequest,
    _key: InternalKey,
    state: web::Data<AppState>,
    idempotency: Idempotency,
) -> ApiResult<Reply> {
    let meta = Meta::of(&req);
    let sync = async || {
        let started = std::time::Instant::now();
        let report =
            crate::jobs::sync_templates::sync(&state.pool, state.delivery.registry()).await;
        state
            .metrics
            .record_job("sync-templates", report.is_ok(), started.elapsed());
        report
    };
    if !idempotency.is_keyed() {
        return Idempotency::unkeyed(&meta, StatusCode::OK, &sync().await?);
    }
    let mut conn = state.pool.get().await?;
    conn.transaction::<_, ApiError, _>(async |conn| {
        if let Some(replay) = idempotency.begin(conn, INTERNAL_SCOPE).await? {
            return Ok(replay);
        }
        let report = sync().await?;
        idempotency
            .finish(conn, INTERNAL_SCOPE, &meta, StatusCode::OK, &report, None)
            .await
    })
    .await
}
