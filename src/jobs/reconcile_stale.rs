//! `reconcile-stale`: a message left SENDING whose current attempt the provider accepted (the
//! database did not take the message's own update) is moved to SENT from that attempt, never
//! sent again. One left SENDING with an open attempt (the process stopped during the provider
//! call) has an outcome nobody knows: the attempt is closed as AMBIGUOUS and the message is
//! queued again on the same provider with the same reference, never on another one. Messages
//! SENT long ago without a final status are counted.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Double, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::{JobError, JobReport};
use crate::db::DbPool;
use crate::delivery::Delivery;

/// Most accepted-but-SENDING messages one run settles.
const SETTLE_PER_RUN: i64 = 1000;

/// A SENDING message older than this is stale.
pub const STALE_AFTER_SECS: f64 = 300.0;
/// A SENT message without a final status after this long is reported.
pub const UNCONFIRMED_AFTER_SECS: f64 = 72.0 * 3600.0;

#[derive(QueryableByName)]
struct Stale {
    #[diesel(sql_type = SqlUuid)]
    id: uuid::Uuid,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

pub async fn run(
    pool: &DbPool,
    delivery: &Delivery,
    stale_after_secs: f64,
) -> Result<JobReport, JobError> {
    let settled = delivery
        .settle_accepted(stale_after_secs, SETTLE_PER_RUN)
        .await?;
    let mut conn = pool.get().await?;
    let reconciled = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let stale: Vec<Stale> = diesel::sql_query(
                "UPDATE messages SET status = 'QUEUED', ambiguous = true, next_attempt_at = now(), \
                   error_code = 'AMBIGUOUS_OUTCOME', \
                   error_message = 'the process stopped during the provider call', updated_at = now() \
                 WHERE id IN (SELECT id FROM messages m WHERE status = 'SENDING' \
                              AND updated_at < now() - make_interval(secs => $1) \
                              AND NOT EXISTS (SELECT 1 FROM message_attempts a \
                                WHERE a.message_id = m.id AND a.attempt_number = m.attempts \
                                  AND a.outcome IN ('ACCEPTED', 'RECONCILED')) \
                              FOR UPDATE OF m SKIP LOCKED) \
                 RETURNING id",
            )
            .bind::<Double, _>(stale_after_secs)
            .load(conn)
            .await?;
            let ids: Vec<uuid::Uuid> = stale.iter().map(|s| s.id).collect();
            diesel::sql_query(
                "UPDATE message_attempts SET finished_at = now(), outcome = 'AMBIGUOUS', \
                   error_code = 'AMBIGUOUS_OUTCOME', \
                   error_message = 'the process stopped during the provider call' \
                 WHERE message_id = ANY($1) AND finished_at IS NULL",
            )
            .bind::<diesel::sql_types::Array<SqlUuid>, _>(&ids)
            .execute(conn)
            .await?;
            Ok(ids.len())
        })
        .await?;
    let unconfirmed: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM messages WHERE status = 'SENT' \
         AND sent_at < now() - make_interval(secs => $1)",
    )
    .bind::<Double, _>(UNCONFIRMED_AFTER_SECS)
    .get_result(&mut conn)
    .await?;
    let mut report = JobReport {
        job: "reconcile-stale".into(),
        ..Default::default()
    };
    report
        .counts
        .insert("settled_accepted".into(), settled as i64);
    report
        .counts
        .insert("requeued_ambiguous".into(), reconciled as i64);
    report
        .counts
        .insert("sent_unconfirmed".into(), unconfirmed.n);
    Ok(report)
}
