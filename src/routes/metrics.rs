//! `GET /cpaas/v1/_internal/metrics`: Prometheus text exposition (internal key).

use actix_web::{HttpResponse, get, web};

use crate::http::InternalKey;
use diesel_async::AsyncPgConnection;

use crate::error::{ApiError, ApiResult};
use crate::metrics::{CircuitGauge, SharedGauges};
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
        (status = 401, description = "ERR_CPAAS_INVALID_API_KEY", body = crate::http::envelope::ErrorEnvelope),
        (status = 503, description = "ERR_CPAAS_SERVICE_UNAVAILABLE: the database cannot be read", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/_internal/metrics")]
pub async fn metrics(_key: InternalKey, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut conn = state.pool.get().await?;
    let shared = read_shared_gauges(&mut conn)
        .await
        .map_err(ApiError::internal)?;
    drop(conn);
    let text = state.metrics.render(&shared).map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(text))
}

async fn read_shared_gauges(conn: &mut AsyncPgConnection) -> diesel::QueryResult<SharedGauges> {
    let (outbox_backlog, outbox_oldest_secs) = crate::outbox::store::backlog(conn).await?;
    let outbox_dead = crate::outbox::store::dead_count(conn).await?;
    let (webhook_backlog, webhook_oldest_secs) =
        crate::db::webhook_deliveries::backlog(conn).await?;
    let circuits = crate::db::providers::circuit_states(conn)
        .await?
        .into_iter()
        .map(|c| CircuitGauge {
            provider_id: c.provider_id,
            kind: c.kind,
            state: c.circuit_state,
        })
        .collect();
    Ok(SharedGauges {
        outbox_backlog,
        outbox_oldest_secs,
        outbox_dead,
        webhook_backlog,
        webhook_oldest_secs,
        circuits,
    })
}
