//! `POST /cpaas/v1/jobs/{name}`: run a job now (internal key).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, post, web};
use diesel_async::AsyncConnection;

use crate::auth::InternalKey;
use crate::envelope::Meta;
use crate::error::{ApiError, ApiResult};
use crate::idempotency::{INTERNAL_SCOPE, Idempotency, Reply};
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
        (status = 200, description = "What the run did", body = crate::openapi::JobReportEnvelope),
        (status = 401, description = "ERR_CPAAS_INVALID_API_KEY", body = crate::envelope::ErrorEnvelope),
        (status = 404, description = "No job has this name", body = crate::envelope::ErrorEnvelope),
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
    // A job is not atomic with its key: it does its own work on its own pool connections
    // and commits as it goes, while the key is recorded on this connection afterwards. So
    // the key's transaction stays open for the whole run: `begin` takes the key's advisory
    // lock, the job runs, and `finish` stores the report, all in one transaction on one
    // connection. A duplicate arriving during the run gets 409 ERR_CPAAS_DUPLICATE_REQUEST
    // rather than a second run; one arriving after gets the stored report. If the run fails,
    // or storing the report does, nothing is kept under the key and a retry runs the job
    // again (jobs are safe to repeat). Without a key there is nothing to record, and no
    // connection is held while the job runs.
    if !idempotency.is_keyed() {
        let report = jobs::run_job(&name, &state)
            .await
            .ok_or_else(|| unknown_job(&name))??;
        return Idempotency::unkeyed(&meta, StatusCode::OK, &report);
    }
    let mut conn = state.pool.get().await?;
    conn.transaction::<_, ApiError, _>(async |conn| {
        if let Some(replay) = idempotency.begin(conn, INTERNAL_SCOPE).await? {
            return Ok(replay);
        }
        let report = jobs::run_job(&name, &state)
            .await
            .ok_or_else(|| unknown_job(&name))??;
        idempotency
            .finish(conn, INTERNAL_SCOPE, &meta, StatusCode::OK, &report, None)
            .await
    })
    .await
}
