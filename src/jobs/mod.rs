//! Periodic jobs. Each is one plain async function, shared by the scheduler and
//! `POST /cpaas/v1/jobs/{name}`.

pub mod cleanup;

use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{DbError, DbPool};

/// What a job run did.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct JobReport {
    pub job: String,
    /// Rows or items each step touched, by name.
    pub counts: std::collections::BTreeMap<String, i64>,
}

/// Names of the jobs that can be triggered.
pub const JOB_NAMES: &[&str] = &["cleanup"];

/// Runs the named job once; `None` when no job has that name.
pub async fn run_job(name: &str, pool: &DbPool) -> Option<Result<JobReport, DbError>> {
    match name {
        "cleanup" => Some(cleanup::run(pool).await),
        _ => None,
    }
}
