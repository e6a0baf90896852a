//! Job slots: time is cut into slots of each job's interval; inserting the (job, slot) row is
//! the claim, so among replicas exactly one runs each slot, and the row records the run.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

/// The start of the slot of `interval` that contains `now`.
pub fn slot_of(now: DateTime<Utc>, interval: Duration) -> DateTime<Utc> {
    let step = interval.as_millis().max(1) as i64;
    let ms = now.timestamp_millis();
    Utc.timestamp_millis_opt(ms - ms.rem_euclid(step))
        .single()
        .unwrap_or(now)
}

/// Claims a slot; false when another process already has it.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    name: &str,
    slot: DateTime<Utc>,
    owner: &str,
) -> QueryResult<bool> {
    diesel::sql_query(
        "INSERT INTO job_runs (name, slot, owner) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind::<Text, _>(name)
    .bind::<Timestamptz, _>(slot)
    .bind::<Text, _>(owner)
    .execute(conn)
    .await
    .map(|n| n == 1)
}

/// Records how a claimed run ended.
pub async fn finish(
    conn: &mut AsyncPgConnection,
    name: &str,
    slot: DateTime<Utc>,
    counts: &Value,
    error: Option<&str>,
) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE job_runs SET finished_at = now(), counts = $3, error = $4, \
           outcome = CASE WHEN $4::text IS NULL THEN 'OK' ELSE 'FAILED' END \
         WHERE name = $1 AND slot = $2",
    )
    .bind::<Text, _>(name)
    .bind::<Timestamptz, _>(slot)
    .bind::<Jsonb, _>(counts)
    .bind::<Nullable<Text>, _>(error)
    .execute(conn)
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_starts_on_a_multiple_of_its_interval() {
        let t = Utc
            .timestamp_millis_opt(1_700_000_012_345)
            .single()
            .unwrap();
        assert_eq!(
            slot_of(t, Duration::from_secs(5)).timestamp_millis(),
            1_700_000_010_000
        );
        assert_eq!(
            slot_of(t, Duration::from_secs(60)).timestamp_millis(),
            1_699_999_980_000
        );
    }
}
