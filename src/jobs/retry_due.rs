//! `retry-due`: delivers the QUEUED messages whose retry time has come (after a transient
//! failure, a rate limit, an ambiguous outcome or a failover).

use futures_util::StreamExt;

use super::{JobError, JobReport};
use crate::db::DbPool;
use crate::delivery::{Delivery, Step};

/// Most messages one run takes.
pub const BATCH: i64 = 1000;

pub async fn run(pool: &DbPool, delivery: &Delivery) -> Result<JobReport, JobError> {
    let due = {
        let mut conn = pool.get().await?;
        crate::delivery::store::due_retries(&mut conn, BATCH).await?
    };
    let runs: Vec<_> = due.iter().map(|id| delivery.deliver(*id)).collect();
    let steps: Vec<Result<Step, crate::delivery::DeliveryError>> = futures_util::stream::iter(runs)
        .buffer_unordered(32)
        .collect()
        .await;
    let mut report = JobReport {
        job: "retry-due".into(),
        ..Default::default()
    };
    report.counts.insert("due".into(), due.len() as i64);
    for step in steps {
        let key = match step? {
            Step::Skipped => "skipped",
            Step::Sent => "sent",
            Step::Failed => "failed",
            Step::RetryLater => "retry_later",
            Step::FailedOver => "failed_over",
        };
        *report.counts.entry(key.into()).or_default() += 1;
    }
    Ok(report)
}
