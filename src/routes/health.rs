//! Liveness and readiness.

use actix_web::{get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::http::envelope::ApiResponse;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz);
}

/// Liveness answer.
#[derive(Serialize, ToSchema)]
pub struct HealthStatus {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Readiness answer: each dependency's state and the outbox backlog.
#[derive(Serialize, ToSchema)]
pub struct ReadyStatus {
    /// `ready`, or `degraded` when the bus is unreachable (sends are still accepted and wait
    /// in the outbox).
    pub status: &'static str,
    pub database: &'static str,
    /// The bus in use: `nats`, `kafka` or `log`.
    pub event_bus: &'static str,
    /// `ok`, `unavailable` (the brokers do not answer, or a topic or the stream is missing:
    /// `bus_error` says which) or `log` (no bus configured).
    pub bus: &'static str,
    pub bus_error: Option<String>,
    /// Pending outbox events.
    pub outbox_backlog: i64,
    /// Age of the oldest pending event, in seconds.
    pub outbox_oldest_secs: f64,
}

/// The process is up.
#[utoipa::path(
    tag = "internal",
    responses((status = 200, description = "Alive", body = crate::routes::health::HealthStatusEnvelope))
)]
#[get("/cpaas/v1/_internal/healthz")]
pub async fn healthz() -> ApiResponse<HealthStatus> {
    ApiResponse::ok(HealthStatus { status: "ok" })
}

/// The service can serve traffic: the database answers (503 otherwise). The bus and the
/// outbox backlog are reported; an unreachable bus makes the service `degraded`, not unready,
/// because accepted sends wait safely in the outbox.
#[utoipa::path(
    tag = "internal",
    responses(
        (status = 200, description = "Ready", body = crate::routes::health::ReadyStatusEnvelope),
        (status = 503, description = "ERR_CPAAS_SERVICE_UNAVAILABLE, details name the failing dependency", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/_internal/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<ApiResponse<ReadyStatus>> {
    let unavailable = |e: crate::db::DbError| {
        ApiError::unavailable(e).with_details(vec![
            serde_json::json!({"dependency": "database", "status": "unavailable"}),
        ])
    };
    crate::db::ping(&state.pool).await.map_err(unavailable)?;
    let mut conn = state.pool.get().await.map_err(|e| unavailable(e.into()))?;
    let (backlog, oldest) = crate::outbox::store::backlog(&mut conn)
        .await
        .map_err(|e| unavailable(e.into()))?;
    drop(conn);
    let bus = state.outbox.bus();
    let bus_check = bus.check().await;
    Ok(ApiResponse::ok(ReadyStatus {
        status: if bus_check.is_ok() {
            "ready"
        } else {
            "degraded"
        },
        database: "ok",
        event_bus: bus.kind(),
        bus: match (&bus_check, bus) {
            (Err(_), _) => "unavailable",
            (Ok(()), crate::outbox::EventBus::Log) => "log",
            (Ok(()), _) => "ok",
        },
        bus_error: bus_check.err(),
        outbox_backlog: backlog,
        outbox_oldest_secs: oldest,
    }))
}

crate::http::envelope::envelope_schema! {
    HealthStatusEnvelope => HealthStatus,
    ReadyStatusEnvelope => ReadyStatus,
}
