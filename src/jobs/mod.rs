//! Periodic jobs. Each is one plain async function, shared by the scheduler and
//! `POST /cpaas/v1/jobs/{name}`.

pub mod cleanup;
pub mod dispatch_scheduled;
pub mod provider_health;
pub mod reconcile_stale;
pub mod retry_due;
pub mod runs;
pub mod sync_templates;

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use crate::config::Settings;
use crate::db::{DbError, DbPool};
use crate::delivery::Delivery;
use crate::metrics::Metrics;
use crate::providers::registry::ProviderRegistry;
use crate::webhooks::WebhookSender;

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
    Delivery(#[from] crate::delivery::DeliveryError),
    #[error(transparent)]
    Callback(#[from] crate::callbacks::CallbackError),
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

/// Most sandbox delivery reports one `sandbox-reports` run applies.
const SANDBOX_REPORTS_PER_RUN: i64 = 500;

/// Names of the jobs that can be triggered.
pub const JOB_NAMES: &[&str] = &[
    "dispatch-scheduled",
    "retry-due",
    "reconcile-stale",
    "deliver-webhooks",
    "provider-health",
    "sync-templates",
    "sandbox-reports",
    "cleanup",
];

/// Every scheduled job and its interval.
pub fn schedule(settings: &Settings) -> Vec<(&'static str, std::time::Duration)> {
    use std::time::Duration;
    let tick = settings.scheduler_tick;
    vec![
        ("dispatch-scheduled", tick),
        ("retry-due", tick),
        ("reconcile-stale", Duration::from_secs(60)),
        ("deliver-webhooks", tick),
        ("provider-health", Duration::from_secs(30)),
        ("sync-templates", Duration::from_secs(15 * 60)),
        ("sandbox-reports", tick),
        ("cleanup", Duration::from_secs(3600)),
    ]
}

/// What the jobs need, handed in by the composition root; the scheduler and
/// `POST /cpaas/v1/jobs/{name}` share one.
pub struct Jobs {
    pub pool: DbPool,
    pub settings: Arc<Settings>,
    pub delivery: Arc<Delivery>,
    pub webhooks: Arc<WebhookSender>,
    pub registry: Arc<ProviderRegistry>,
    pub metrics: Arc<Metrics>,
}

impl Jobs {
    /// The pool the jobs use (the scheduler claims its slots through it too).
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Runs the named job once; `None` when no job has that name.
    pub async fn run(&self, name: &str) -> Option<Result<JobReport, JobError>> {
        let started = std::time::Instant::now();
        let result = self.run_named(name).await?;
        self.metrics
            .record_job(name, result.is_ok(), started.elapsed());
        Some(result)
    }

    async fn run_named(&self, name: &str) -> Option<Result<JobReport, JobError>> {
        let pool = &self.pool;
        Some(match name {
            "cleanup" => cleanup::run(pool, &self.settings).await,
            "retry-due" => retry_due::run(pool, &self.delivery).await,
            "dispatch-scheduled" => dispatch_scheduled::run(pool, &self.delivery).await,
            "reconcile-stale" => {
                reconcile_stale::run(pool, reconcile_stale::STALE_AFTER_SECS).await
            }
            "deliver-webhooks" => self
                .webhooks
                .run()
                .await
                .map(|counts| JobReport {
                    job: name.to_owned(),
                    counts,
                })
                .map_err(JobError::from),
            "provider-health" => {
                provider_health::run(
                    pool,
                    &self.registry,
                    self.delivery.policy().circuit_cooldown,
                )
                .await
            }
            "sync-templates" => sync_templates::run(pool, &self.registry).await,
            "sandbox-reports" => {
                crate::callbacks::sandbox::report_due(pool, &self.registry, SANDBOX_REPORTS_PER_RUN)
                    .await
                    .map(|counts| JobReport {
                        job: name.to_owned(),
                        counts,
                    })
                    .map_err(JobError::from)
            }
            _ => return None,
        })
    }
}
