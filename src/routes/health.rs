//! Liveness and readiness.

use actix_web::{get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::envelope::ApiResponse;
use crate::error::{ApiError, ApiResult};
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

/// Readiness answer: each dependency's state.
#[derive(Serialize, ToSchema)]
pub struct ReadyStatus {
    pub status: &'static str,
    pub database: &'static str,
}

/// The process is up.
#[utoipa::path(
    tag = "internal",
    responses((status = 200, description = "Alive", body = crate::openapi::HealthStatusEnvelope))
)]
#[get("/cpaas/v1/_internal/healthz")]
pub async fn healthz() -> ApiResponse<HealthStatus> {
    ApiResponse::ok(HealthStatus { status: "ok" })
}

/// The service can serve traffic: the database answers.
#[utoipa::path(
    tag = "internal",
    responses(
        (status = 200, description = "Ready", body = crate::openapi::ReadyStatusEnvelope),
        (status = 503, description = "ERR_CPAAS_SERVICE_UNAVAILABLE, details name the failing dependency", body = crate::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/_internal/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<ApiResponse<ReadyStatus>> {
    match crate::db::ping(&state.pool).await {
        Ok(()) => Ok(ApiResponse::ok(ReadyStatus {
            status: "ready",
            database: "ok",
        })),
        Err(e) => Err(ApiError::unavailable(e).with_details(vec![
            serde_json::json!({"dependency": "database", "status": "unavailable"}),
        ])),
    }
}
