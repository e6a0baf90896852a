//! `dispatch-scheduled`: SCHEDULED messages whose time has come become QUEUED and are
//! delivered through the batch path, `JOB_BATCH_SIZE` at a time with at most
//! `JOB_CONCURRENCY` provider calls at once, so a thousand messages scheduled for the same
//! second neither drain the pool nor burst the provider. A cancelled message is no longer
//! SCHEDULED, so it is never picked.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;

use super::{JobError, JobReport, Limits, count_steps};
use crate::db::DbPool;
use crate::delivery::Delivery;

/// Most batches one run takes (the next run goes on).
const MAX_BATCHES: usize = 10;

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = SqlUuid)]
    id: uuid::Uuid,
}

pub async fn run(
    pool: &DbPool,
    delivery: &Delivery,
    limits: Limits,
) -> Result<JobReport, JobError> {
    let mut report = JobReport {
        job: "dispatch-scheduled".into(),
        ..Default::default()
    };
    let mut dispatched = 0i64;
    for _ in 0..MAX_BATCHES {
        let due: Vec<Due> = {
            let mut conn = pool.get().await?;
            diesel::sql_query(
                "UPDATE messages SET status = 'QUEUED', next_attempt_at = now(), updated_at = now() \
                 WHERE id IN (SELECT id FROM messages WHERE status = 'SCHEDULED' AND scheduled_at <= now() \
                              ORDER BY scheduled_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
                 RETURNING id",
            )
            .bind::<BigInt, _>(limits.batch_size)
            .load(&mut conn)
            .await?
        };
        if due.is_empty() {
            break;
        }
        dispatched += due.len() as i64;
        let ids: Vec<uuid::Uuid> = due.iter().map(|d| d.id).collect();
        let steps = delivery.deliver_many(&ids, limits.concurrency).await?;
        count_steps(&mut report, steps.into_values());
        if (ids.len() as i64) < limits.batch_size {
            break;
        }
    }
    report.counts.insert("dispatched".into(), dispatched);
    Ok(report)
}
