//! `POST /cpaas/v1/jobs/{name}`: run a job now (internal key).

use actix_web::{post, web};

use crate::auth::InternalKey;
use crate::envelope::ApiResponse;
use crate::error::{ApiError, ApiResult};
use crate::jobs::{self, JobReport};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(run_job);
}

/// Runs one job immediately, with the same code the scheduler runs.
#[utoipa::path(
    tag = "internal",
    security(("internal_key" = [])),
    params(("name" = String, Path, description = "Job name, e.g. cleanup")),
    responses(
        (status = 200, description = "What the run did", body = crate::openapi::JobReportEnvelope),
        (status = 401, description = "ERR_CPAAS_INVALID_API_KEY", body = crate::envelope::ErrorEnvelope),
        (status = 404, description = "No job has this name", body = crate::envelope::ErrorEnvelope),
    )
)]
#[post("/cpaas/v1/jobs/{name}")]
pub async fn run_job(
    _key: InternalKey,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> ApiResult<ApiResponse<JobReport>> {
    match jobs::run_job(&name, &state.pool).await {
        Some(result) => Ok(ApiResponse::ok(result?)),
        None => Err(ApiError::not_found(&format!(
            "job {:?} (known: {})",
            name.as_str(),
            jobs::JOB_NAMES.join(", ")
        ))),
    }
}
