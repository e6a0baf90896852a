//! `retry-due`: delivers the QUEUED messages whose retry time has come (after a transient
//! failure, a rate limit, an ambiguous outcome or a failover), through the batch path,
//! `JOB_BATCH_SIZE` at a time with at most `JOB_CONCURRENCY` provider calls at once.

use super::{JobError, JobReport, Limits, count_steps};
use crate::db::DbPool;
use crate::delivery::Delivery;

/// Most messages one run takes.
pub const BATCH: i64 = 1000;

pub async fn run(
    pool: &DbPool,
    delivery: &Delivery,
    limits: Limits,
) -> Result<JobReport, JobError> {
    let due = {
        let mut conn = pool.get().await?;
        crate::delivery::store::due_retries(&mut conn, BATCH).await?
    };
    let mut report = JobReport {
        job: "retry-due".into(),
        ..Default::default()
    };
    report.counts.insert("due".into(), due.len() as i64);
    for chunk in due.chunks(limits.batch_size.max(1) as usize) {
        let steps = delivery.deliver_many(chunk, limits.concurrency).await?;
        count_steps(&mut report, steps.into_values());
    }
    Ok(report)
}
