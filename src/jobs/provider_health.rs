//! `provider-health`: probes the active providers whose circuit is OPEN and whose cool-down has
//! passed, with one cheap authenticated call each (the adapter's `probe`, which sends nothing).
//! A success closes the circuit (health HEALTHY, as a successful send would); a failure keeps
//! it open, restarts the cool-down and records the error.
//!
//! A probe is claimed first: restarting the cool-down on the row, only if it is still open and
//! due, so two runs (or a replica's delivery half-opening the circuit) never probe or trial the
//! same provider at once.

use diesel::QueryableByName;
use diesel::prelude::*;
use diesel::sql_types::{Double, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use futures_util::StreamExt;

use super::{JobError, JobReport};
use crate::db::DbPool;
use crate::db::providers::Provider;
use crate::db::schema::providers;
use crate::delivery::circuit;
use crate::providers::registry::ProviderRegistry;

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = SqlUuid)]
    id: uuid::Uuid,
}

/// Probes every due open circuit, `concurrency` at once; counts `probed`, `closed` and `still_open`.
pub async fn run(
    pool: &DbPool,
    registry: &ProviderRegistry,
    cooldown: std::time::Duration,
    concurrency: usize,
) -> Result<JobReport, JobError> {
    let due: Vec<Provider> = {
        let mut conn = pool.get().await?;
        let claimed: Vec<Due> = diesel::sql_query(
            "UPDATE providers SET circuit_opened_at = now() \
             WHERE id IN (SELECT id FROM providers WHERE circuit_state = 'OPEN' \
                            AND is_active AND deleted_at IS NULL \
                            AND (circuit_opened_at IS NULL \
                                 OR circuit_opened_at <= now() - make_interval(secs => $1)) \
                          FOR UPDATE SKIP LOCKED) \
             RETURNING id",
        )
        .bind::<Double, _>(cooldown.as_secs_f64())
        .load(&mut conn)
        .await?;
        let ids: Vec<uuid::Uuid> = claimed.into_iter().map(|d| d.id).collect();
        providers::table
            .filter(providers::id.eq_any(&ids))
            .select(Provider::as_select())
            .load(&mut conn)
            .await?
    };
    let probes: Vec<_> = due
        .iter()
        .map(|row| probe_one(pool, registry, row))
        .collect();
    let results: Vec<Result<bool, JobError>> = futures_util::stream::iter(probes)
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut report = JobReport {
        job: "provider-health".into(),
        ..JobReport::default()
    };
    let (mut closed, mut still_open) = (0, 0);
    for result in results {
        if result? {
            closed += 1;
        } else {
            still_open += 1;
        }
    }
    report.counts.insert("probed".into(), closed + still_open);
    report.counts.insert("closed".into(), closed);
    report.counts.insert("still_open".into(), still_open);
    Ok(report)
}

/// Probes one provider and records the result; true when the circuit closed.
async fn probe_one(
    pool: &DbPool,
    registry: &ProviderRegistry,
    row: &Provider,
) -> Result<bool, JobError> {
    let outcome = match registry.client(row) {
        Ok(client) => client.probe().await.map_err(|e| e.to_string()),
        Err(e) => Err(format!("INVALID_PROVIDER_CONFIG: {e:#}")),
    };
    let mut conn = pool.get().await?;
    match outcome {
        Ok(()) => {
            circuit::record_success(&mut conn, row.id).await?;
            tracing::info!(provider_id = %row.id, "probe succeeded; circuit closed");
            Ok(true)
        }
        Err(error) => {
            circuit::record_probe_failure(&mut conn, row.id, &error).await?;
            tracing::warn!(provider_id = %row.id, error, "probe failed; circuit stays open");
            Ok(false)
        }
    }
}
