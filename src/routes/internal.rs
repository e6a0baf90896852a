//! Operator endpoints: drain the outbox now, list dead letters, re-drive one, and sync
//! WhatsApp template statuses from Meta now.

use actix_web::{HttpRequest, get, post, web};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::http::InternalKey;
use crate::http::envelope::{ApiResponse, Meta};
use crate::http::idempotency::{Answer, INTERNAL_SCOPE, Idempotency, Reply};
use crate::http::pagination::PageParams;
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
        (status = 200, description = "What the drain did", body = crate::routes::internal::DrainEnvelope),
        (status = 401, description = "ERR_CPAAS_INVALID_API_KEY", body = crate::http::envelope::ErrorEnvelope),
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
    idempotency
        .run_detached(&state.pool, INTERNAL_SCOPE, &meta, async || {
            let mut report = state.outbox.drain(max).await?;
            let mut conn = state.pool.get().await?;
            report.remaining = crate::outbox::store::backlog(&mut conn).await?.0;
            Ok(Answer::ok(report))
        })
        .await
}

/// Dead-lettered events, newest first.
#[utoipa::path(
    tag = "internal",
    security(("internal_key" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of dead letters", body = crate::routes::internal::DeadListEnvelope),
        (status = 401, description = "ERR_CPAAS_INVALID_API_KEY", body = crate::http::envelope::ErrorEnvelope),
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
        (status = 200, description = "Re-driven", body = crate::routes::internal::RedriveEnvelope),
        (status = 404, description = "No dead letter with this id", body = crate::http::envelope::ErrorEnvelope),
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
    idempotency
        .run(&state.pool, INTERNAL_SCOPE, &meta, async |conn| {
            if !store::redrive(conn, id).await? {
                return Err(ApiError::not_found("dead letter"));
            }
            let answer = serde_json::json!({ "id": id, "status": "PENDING" });
            Ok(Answer::ok(answer))
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
        (status = 200, description = "What the sync did", body = crate::routes::internal::SyncReportEnvelope),
        (status = 401, description = "ERR_CPAAS_INVALID_API_KEY", body = crate::http::envelope::ErrorEnvelope),
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
        let report = crate::jobs::sync_templates::sync(&state.pool, &state.jobs.registry).await;
        state
            .metrics
            .record_job("sync-templates", report.is_ok(), started.elapsed());
        report
    };
    idempotency
        .run_detached(&state.pool, INTERNAL_SCOPE, &meta, async || {
            Ok(Answer::ok(sync().await?))
        })
        .await
}

crate::http::envelope::envelope_schema! {
    DrainEnvelope => crate::outbox::DrainReport,
    SyncReportEnvelope => crate::jobs::sync_templates::SyncReport,
    DeadListEnvelope => Vec<crate::outbox::store::DeadEvent>,
    RedriveEnvelope => serde_json::Value,
}
