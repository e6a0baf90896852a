//! `advance-chains`: fallback steps whose `after_secs` ran out while the step before was not
//! delivered are started (`messages::chain`), `JOB_BATCH_SIZE` at a time.

use super::{JobError, JobReport};
use crate::messages::chain::Chains;

pub async fn run(chains: &Chains, limit: i64) -> Result<JobReport, JobError> {
    let mut report = JobReport {
        job: "advance-chains".into(),
        ..Default::default()
    };
    let done = chains.run_due(limit).await.map_err(JobError::Chain)?;
    let counts = &mut report.counts;
    for advanced in done {
        *counts.entry("started".into()).or_default() += i64::from(advanced.started);
        *counts.entry("refused".into()).or_default() += advanced.refused;
        *counts.entry("skipped".into()).or_default() += i64::from(advanced.skipped);
    }
    Ok(report)
}
