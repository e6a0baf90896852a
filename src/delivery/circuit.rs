//! The circuit breaker of each provider, kept on its row so replicas share it: it opens after
//! `threshold` consecutive failures, lets one trial through after the cool-down (half-open), and
//! closes on a success. Health follows it: HEALTHY (closed, no failures), DEGRADED (failures
//! below the threshold, or half-open), UNHEALTHY (open).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Double, Integer, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::cached::CacheStatement;

/// Whether a provider may be tried now.
pub fn allows(state: &str, opened_at: Option<DateTime<Utc>>, cooldown: Duration) -> bool {
    match state {
        "OPEN" => opened_at.is_none_or(|at| {
            Utc::now() - at >= chrono::Duration::from_std(cooldown).unwrap_or_default()
        }),
        _ => true,
    }
}

/// Records a success: the circuit closes. A provider that is already healthy is not written,
/// so concurrent successful sends do not queue on its row.
pub async fn record_success(conn: &mut AsyncPgConnection, provider_id: Uuid) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE providers SET circuit_state = 'CLOSED', circuit_opened_at = NULL, \
           consecutive_failures = 0, last_error = NULL, \
           health_changed_at = CASE WHEN health_state <> 'HEALTHY' THEN now() ELSE health_changed_at END, \
           health_state = 'HEALTHY' \
         WHERE id = $1 AND (circuit_state <> 'CLOSED' OR consecutive_failures <> 0 \
                            OR health_state <> 'HEALTHY')",
    )
    .bind::<SqlUuid, _>(provider_id)
    .cached()
    .execute(conn)
    .await
    .map(|_| ())
}

/// Records a failure; returns true when this failure opened (or re-opened) the circuit.
pub async fn record_failure(
    conn: &mut AsyncPgConnection,
    provider_id: Uuid,
    error: &str,
    threshold: i32,
) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct After {
        #[diesel(sql_type = Text)]
        circuit_state: String,
        #[diesel(sql_type = Nullable<Text>)]
        was: Option<String>,
    }
    let after: After = diesel::sql_query(
        "WITH before AS (SELECT circuit_state AS was FROM providers WHERE id = $1) \
         UPDATE providers SET consecutive_failures = consecutive_failures + 1, last_error = $2, \
           circuit_state = CASE WHEN consecutive_failures + 1 >= $3 OR circuit_state <> 'CLOSED' \
                                THEN 'OPEN' ELSE 'CLOSED' END, \
           circuit_opened_at = CASE WHEN consecutive_failures + 1 >= $3 OR circuit_state <> 'CLOSED' \
                                    THEN now() ELSE circuit_opened_at END, \
           health_changed_at = CASE WHEN health_state <> (CASE WHEN consecutive_failures + 1 >= $3 \
                OR circuit_state <> 'CLOSED' THEN 'UNHEALTHY' ELSE 'DEGRADED' END) THEN now() \
                ELSE health_changed_at END, \
           health_state = CASE WHEN consecutive_failures + 1 >= $3 OR circuit_state <> 'CLOSED' \
                               THEN 'UNHEALTHY' ELSE 'DEGRADED' END \
         FROM before WHERE id = $1 \
         RETURNING circuit_state, before.was",
    )
    .bind::<SqlUuid, _>(provider_id)
    .bind::<Text, _>(error)
    .bind::<Integer, _>(threshold)
    .cached()
    .get_result(conn)
    .await?;
    Ok(after.circuit_state == "OPEN" && after.was.as_deref() != Some("OPEN"))
}

/// Marks an open circuit half-open when its cool-down has passed (one trial goes through).
pub async fn half_open_if_due(
    conn: &mut AsyncPgConnection,
    provider_id: Uuid,
    cooldown: Duration,
) -> QueryResult<bool> {
    diesel::sql_query(
        "UPDATE providers SET circuit_state = 'HALF_OPEN', health_state = 'DEGRADED', \
           health_changed_at = now() \
         WHERE id = $1 AND circuit_state = 'OPEN' \
           AND circuit_opened_at <= now() - make_interval(secs => $2)",
    )
    .bind::<SqlUuid, _>(provider_id)
    .bind::<Double, _>(cooldown.as_secs_f64())
    .cached()
    .execute(conn)
    .await
    .map(|n| n == 1)
}

/// Records a failed health probe: the circuit stays open, its cool-down starts again, and the
/// error is kept (the count of consecutive failures is about sends and is left alone).
pub async fn record_probe_failure(
    conn: &mut AsyncPgConnection,
    provider_id: Uuid,
    error: &str,
) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE providers SET circuit_state = 'OPEN', circuit_opened_at = now(), \
           last_error = $2, \
           health_changed_at = CASE WHEN health_state <> 'UNHEALTHY' THEN now() \
                               ELSE health_changed_at END, \
           health_state = 'UNHEALTHY' \
         WHERE id = $1",
    )
    .bind::<SqlUuid, _>(provider_id)
    .bind::<Text, _>(format!("probe: {error}"))
    .cached()
    .execute(conn)
    .await
    .map(drop)
}
