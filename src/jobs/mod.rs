//! Periodic jobs. Each is one plain async function, shared by the scheduler and
//! `POST /cpaas/v1/jobs/{name}`.

pub mod cleanup;
pub mod dispatch_scheduled;
pub mod provider_health;
pub mod reconcile_stale;
pub mod retry_due;
pub mod runs;
pub mod sync_templates;

use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;
use crate::state::AppState;

/// What a job run did.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct JobReport {
    pub job: String,
    /// Rows or items each step touched, by name.
    pub counts: std::collections::BTreeMap<String, i64>,
}

/// A job that could not run.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Delivery(#[from] crate::delivery::deliver::DeliveryError),
}

impl From<diesel::result::Error> for JobError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

impl From<crate::db::PoolError> for JobError {
    fn from(e: crate::db::PoolError) -> Self {
        Self::Db(DbError::Pool(e))
    }
}

impl From<JobError> for crate::error::ApiError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Db(db) => db.into(),
            other => crate::error::ApiError::internal(other),
        }
    }
}

/// Names of the jobs that can be triggered.
pub const JOB_NAMES: &[&str] = &[
    "dispatch-scheduled",
    "retry-due",
    "reconcile-stale",
    "deliver-webhooks",
    "provider-health",
    "sync-templates",
    "cleanup",
];

/// Every scheduled job and its interval.
pub fn schedule(settings: &crate::config::Settings) -> Vec<(&'static str, std::time::Duration)> {
    use std::time::Duration;
    let tick = settings.scheduler_tick;
    vec![
        ("dispatch-scheduled", tick),
        ("retry-due", tick),
        ("reconcile-stale", Duration::from_secs(60)),
        ("deliver-webhooks", tick),
        ("provider-health", Duration::from_secs(30)),
        ("sync-templates", Duration::from_secs(15 * 60)),
        ("cleanup", Duration::from_secs(3600)),
    ]
}

/// Runs the named job once; `None` when no job has that name.
pub async fn run_job(name: &str, state: &AppState) -> Option<Result<JobReport, JobError>> {
    let started = std::time::Instant::now();
    let result = run_named(name, state).await?;
    state
        .metrics
        .record_job(name, result.is_ok(), started.elapsed());
    Some(result)
}

async fn run_named(name: &str, state: &AppState) -> Option<Result<JobReport, JobError>> {
    match name {
        "cleanup" => Some(cleanup::run(&state.pool, &state.settings).await),
        "retry-due" => Some(retry_due::run(&state.pool, &state.delivery).await),
        "dispatch-scheduled" => Some(dispatch_scheduled::run(&state.pool, &state.delivery).await),
        "reconcile-stale" => {
            Some(reconcile_stale::run(&state.pool, reconcile_stale::STALE_AFTER_SECS).await)
        }
        "deliver-webhooks" => Some(state.webhooks.run().await.map_err(JobError::from)),
        "provider-health" => Some(
            provider_health::run(
                &state.pool,
                state.delivery.registry(),
                state.delivery.policy().circuit_cooldown,
            )
            .await,
        ),
        "sync-templates" => Some(sync_templates::run(&state.pool, state.delivery.registry()).await),
        _ => None,
    }
}
