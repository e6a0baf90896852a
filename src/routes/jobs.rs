//! `POST /cpaas/v1/jobs/{name}`: run a job now (internal key).

use actix_web::{HttpRequest, post, web};

use crate::error::{ApiError, ApiResult};
use crate::http::InternalKey;
use crate::http::envelope::Meta;
use crate::http::idempotency::{Answer, INTERNAL_SCOPE, Idempotency, Reply};
use crate::jobs;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(run_job);
}

fn unknown_job(name: &str) -> ApiError {
    ApiError::not_found(&format!(
        "job {name:?} (known: {})",
        jobs::JOB_NAMES.join(", ")
    ))
}

/// Runs one job immediately, with the same code the scheduler runs.
///
/// With an `Idempotency-Key` (scoped to internal callers), a repeated call answers the first
/// run's report instead of running the job again.
#[utoipa::path(
    tag = "internal",
    security(("internal_key" = [])),
    params(
        ("name" = String, Path, description = "Job name, e.g. cleanup"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 hours"),
    ),
    responses(
        (status = 200, description = "What the run did", body = crate::routes::jobs::JobReportEnvelope),
        (status = 401, description = "ERR_CPAAS_INVALID_API_KEY", body = crate::http::envelope::ErrorEnvelope),
        (status = 404, description = "No job has this name", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[post("/cpaas/v1/jobs/{name}")]
pub async fn run_job(
    req: HttpRequest,
    _key: InternalKey,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    name: web::Path<String>,
) -> ApiResult<Reply> {
    let name = name.into_inner();
    if !jobs::JOB_NAMES.contains(&name.as_str()) {
        return Err(unknown_job(&name));
    }
    let meta = Meta::of(&req);
    // Jobs are safe to repeat: a run that failed stored nothing, and a retry runs it again.
    idempotency
        .run_detached(&state.pool, INTERNAL_SCOPE, &meta, async || {
            let report = state
                .jobs
                .run(&name)
                .await
                .ok_or_else(|| unknown_job(&name))??;
            Ok(Answer::ok(report))
        })
        .await
}

crate::http::envelope::envelope_schema! {
    JobReportEnvelope => crate::jobs::JobReport,
}
