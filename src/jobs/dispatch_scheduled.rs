//! `dispatch-scheduled`: SCHEDULED messages whose time has come become QUEUED and are
//! delivered. A cancelled message is no longer SCHEDULED, so it is never picked.

use diesel::QueryableByName;
use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::RunQueryDsl;

use super::{JobError, JobReport};
use crate::db::DbPool;
use crate::delivery::Delivery;

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = SqlUuid)]
    id: uuid::Uuid,
}

pub async fn run(pool: &DbPool, delivery: &Delivery) -> Result<JobReport, JobError> {
    let due: Vec<Due> = {
        let mut conn = pool.get().await?;
        diesel::sql_query(
            "UPDATE messages SET status = 'QUEUED', next_attempt_at = now(), updated_at = now() \
             WHERE id IN (SELECT id FROM messages WHERE status = 'SCHEDULED' AND scheduled_at <= now() \
                          ORDER BY scheduled_at LIMIT 1000 FOR UPDATE SKIP LOCKED) \
             RETURNING id",
        )
        .load(&mut conn)
        .await?
    };
    let mut report = JobReport {
        job: "dispatch-scheduled".into(),
        ..Default::default()
    };
    report.counts.insert("dispatched".into(), due.len() as i64);
    let runs: Vec<_> = due.iter().map(|d| delivery.deliver(d.id)).collect();
    for step in futures_util::future::join_all(runs).await {
        let step = step?;
        *report
            .counts
            .entry(format!("{step:?}").to_lowercase())
            .or_default() += 1;
    }
    Ok(report)
}
