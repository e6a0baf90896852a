//! Per-provider pacing: a provider's `config.max_per_second` holds across every replica through
//! one shared bucket per provider (`db::rate_limits`), holding a second's worth of requests. A
//! round sends what the bucket grants now; the rest of that provider's messages wait their
//! turn, spread at the provider's pace, and go out with the retries that come due.
//!
//! The take runs in the round's own short transaction (the one that locks and routes the
//! messages): the bucket's row stays locked until it commits, so the rounds of several drainers
//! on one paced provider take their turns there, for milliseconds.

use std::collections::HashMap;
use std::time::Duration;

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::db::providers::Provider;
use crate::db::rate_limits::{self, Take};
use crate::domain::provider_kind::MAX_PER_SECOND;

/// The provider's `config.max_per_second`, when it has one.
pub fn max_per_second(provider: &Provider) -> Option<u32> {
    provider
        .config
        .get(MAX_PER_SECOND)
        .and_then(serde_json::Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
}

/// Splits the round's sends into those that go now and those that wait (message id, wait), in
/// order per provider: the first ones of each paced provider go while its bucket has room.
pub async fn pace<T>(
    conn: &mut AsyncPgConnection,
    going: Vec<T>,
    provider_of: impl Fn(&T) -> (&Provider, Uuid),
) -> QueryResult<(Vec<T>, Vec<(Uuid, Duration)>)> {
    let mut wanted: HashMap<Uuid, (u32, i32)> = HashMap::new();
    for item in &going {
        let (provider, _) = provider_of(item);
        if let Some(max) = max_per_second(provider) {
            wanted.entry(provider.id).or_insert((max, 0)).1 += 1;
        }
    }
    if wanted.is_empty() {
        return Ok((going, Vec::new()));
    }
    // Provider by provider, in id order, so concurrent rounds lock buckets in one order.
    let mut providers: Vec<Uuid> = wanted.keys().copied().collect();
    providers.sort();
    // For each paced provider: sends still allowed now, then the next wait and its step.
    let mut allowance: HashMap<Uuid, (i32, f64, f64)> = HashMap::new();
    for id in providers {
        let (max, units) = wanted[&id];
        let key = format!("provider:{id}");
        let take = Take {
            key: &key,
            units,
            capacity: max as i32,
            interval_secs: 1.0 / f64::from(max),
            all_or_none: false,
        };
        let granted = rate_limits::take(conn, &take).await?;
        let next = granted.wait_secs(&take, 1);
        allowance.insert(id, (granted.units, next, take.interval_secs));
    }
    let mut now = Vec::with_capacity(going.len());
    let mut later = Vec::new();
    for item in going {
        let (provider, message_id) = provider_of(&item);
        match allowance.get_mut(&provider.id) {
            Some((left, _, _)) if *left > 0 => {
                *left -= 1;
                now.push(item);
            }
            Some((_, next, step)) => {
                later.push((message_id, Duration::from_secs_f64(*next)));
                *next += *step;
            }
            None => now.push(item),
        }
    }
    Ok((now, later))
}
