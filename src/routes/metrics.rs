//! `GET /cpaas/v1/_internal/metrics`: Prometheus text exposition (internal key).

use actix_web::{HttpResponse, get, web};

use crate::auth::InternalKey;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(metrics);
}

/// This process's metrics in the Prometheus text format (0.0.4): HTTP requests by route and
/// status with latency histograms, provider calls by provider and outcome, outbox throughput,
/// backlog and oldest-event age, dead letters, webhook deliveries, circuit states, job runs.
#[utoipa::path(
    tag = "internal",
    security(("internal_key" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
        (status = 401, description = "ERR_CPAAS_INVALID_API_KEY", body = crate::envelope::ErrorEnvelope),
        (status = 503, description = "ERR_CPAAS_SERVICE_UNAVAILABLE: the database cannot be read", body = crate::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/_internal/metrics")]
pub async fn metrics(_key: InternalKey, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut conn = state.pool.get().await?;
    let text = state
        .metrics
        .render(&mut conn)
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(text))
}
