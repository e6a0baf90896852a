//! Periodic jobs. Each is one plain async function, shared by the scheduler and
//! `POST /cpaas/v1/jobs/{name}`.

pub mod advance_chains;
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
use crate::lifecycle::Lifecycle;
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
    #[error("fallback chains: {0:#}")]
    Chain(anyhow::Error),
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

/// How much one delivering job takes at once.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Messages per batch (`JOB_BATCH_SIZE`).
    pub batch_size: i64,
    /// Provider calls at once (`JOB_CONCURRENCY`).
    pub concurrency: usize,
}

impl Limits {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            batch_size: s.job_batch_size.max(1),
            concurrency: s.job_concurrency.max(1),
        }
    }
}

/// Adds each message's step to the report's counts; a message whose outcome could not be
/// recorded counts as `unrecorded` (it is logged, and settled by `reconcile-stale`).
fn count_steps(
    report: &mut JobReport,
    steps: impl Iterator<Item = Result<crate::delivery::Step, String>>,
) {
    use crate::delivery::Step;
    for step in steps {
        let key = match step {
            Ok(Step::Skipped) => "skipped",
            Ok(Step::Sent) => "sent",
            Ok(Step::Failed) => "failed",
            Ok(Step::RetryLater) => "retry_later",
            Ok(Step::FailedOver) => "failed_over",
            Err(_) => "unrecorded",
        };
        *report.counts.entry(key.into()).or_default() += 1;
    }
}

/// Most sandbox delivery reports one `sandbox-reports` run applies.
const SANDBOX_REPORTS_PER_RUN: i64 = 500;

/// Names of the jobs that can be triggered.
pub const JOB_NAMES: &[&str] = &[
    "dispatch-scheduled",
    "retry-due",
    "advance-chains",
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
        ("advance-chains", tick),
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
    pub chains: Arc<crate::messages::chain::Chains>,
    pub registry: Arc<ProviderRegistry>,
    pub metrics: Arc<Metrics>,
    /// Once stopping, no job starts; running ones finish their batch.
    pub lifecycle: Arc<Lifecycle>,
    /// Wakes the drainers after a run that did something (a job's writes may carry events).
    pub wakeup: Arc<crate::outbox::Wakeup>,
}

impl Jobs {
    /// The pool the jobs use (the scheduler claims its slots through it too).
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// How much the delivering jobs take at once.
    pub fn limits(&self) -> Limits {
        Limits::from_settings(&self.settings)
    }

    /// Runs the named job once; `None` when no job has that name.
    pub async fn run(&self, name: &str) -> Option<Result<JobReport, JobError>> {
        if !JOB_NAMES.contains(&name) {
            return None;
        }
        let Some(_working) = self.lifecycle.enter() else {
            return Some(Ok(JobReport {
                job: name.to_owned(),
                counts: [("stopping".to_owned(), 1)].into(),
            }));
        };
        let started = std::time::Instant::now();
        let result = self.run_named(name).await?;
        self.metrics
            .record_job(name, result.is_ok(), started.elapsed());
        if result
            .as_ref()
            .is_ok_and(|report| report.counts.values().any(|n| *n > 0))
        {
            self.wakeup.committed();
        }
        Some(result)
    }

    async fn run_named(&self, name: &str) -> Option<Result<JobReport, JobError>> {
        let pool = &self.pool;
        Some(match name {
            "cleanup" => cleanup::run(pool, &self.settings).await,
            "retry-due" => retry_due::run(pool, &self.delivery, self.limits()).await,
            "advance-chains" => advance_chains::run(&self.chains, self.limits().batch_size).await,
            "dispatch-scheduled" => {
                dispatch_scheduled::run(pool, &self.delivery, self.limits()).await
            }
            "reconcile-stale" => {
                reconcile_stale::run(pool, &self.delivery, reconcile_stale::STALE_AFTER_SECS).await
            }
            "deliver-webhooks" => self
                .webhooks
                .run(&self.lifecycle)
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
                    self.limits().concurrency,
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
