//! Login throttling. Failures per account are counted in the database, so a lock-out spans
//! replicas and survives restarts; failures per client address are counted in memory by the
//! token actor, as a first line against spraying many accounts from one address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Double, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::schema::login_throttles;

/// Limits for one kind of key.
#[derive(Clone, Copy, Debug)]
pub struct ThrottlePolicy {
    pub max_failures: i32,
    pub window: Duration,
    pub lockout: Duration,
}

#[derive(QueryableByName)]
struct Recorded {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    locked_until: Option<DateTime<Utc>>,
}

/// Seconds until the account may try again, if it is locked now.
pub async fn account_locked_for(
    conn: &mut AsyncPgConnection,
    account: &str,
) -> QueryResult<Option<u64>> {
    let locked_until: Option<Option<DateTime<Utc>>> = login_throttles::table
        .find(account)
        .select(login_throttles::locked_until)
        .first(conn)
        .await
        .optional()?;
    Ok(locked_until.flatten().and_then(remaining_secs))
}

fn remaining_secs(until: DateTime<Utc>) -> Option<u64> {
    let left = (until - Utc::now()).num_milliseconds();
    (left > 0).then(|| (left as u64).div_ceil(1000))
}

/// Counts one failure in the account's window; returns the lock-out, if this failure caused one.
pub async fn record_account_failure(
    conn: &mut AsyncPgConnection,
    account: &str,
    policy: ThrottlePolicy,
) -> QueryResult<Option<u64>> {
    let recorded: Recorded = diesel::sql_query(
        "INSERT INTO login_throttles AS t (account, failures, window_start, updated_at) \
         VALUES ($1, 1, now(), now()) \
         ON CONFLICT (account) DO UPDATE SET \
           failures = CASE WHEN t.window_start < now() - make_interval(secs => $2) \
                           THEN 1 ELSE t.failures + 1 END, \
           window_start = CASE WHEN t.window_start < now() - make_interval(secs => $2) \
                               THEN now() ELSE t.window_start END, \
           updated_at = now() \
         RETURNING (CASE WHEN failures >= $3 THEN now() + make_interval(secs => $4) END) AS locked_until",
    )
    .bind::<Text, _>(account)
    .bind::<Double, _>(policy.window.as_secs_f64())
    .bind::<Integer, _>(policy.max_failures)
    .bind::<Double, _>(policy.lockout.as_secs_f64())
    .get_result(conn)
    .await?;
    if let Some(until) = recorded.locked_until {
        diesel::update(login_throttles::table.find(account))
            .set((
                login_throttles::locked_until.eq(until),
                login_throttles::failures.eq(0),
                login_throttles::window_start.eq(Utc::now()),
            ))
            .execute(conn)
            .await?;
    }
    Ok(recorded.locked_until.and_then(remaining_secs))
}

/// Forgets the account's failures after a successful login.
pub async fn clear_account(conn: &mut AsyncPgConnection, account: &str) -> QueryResult<()> {
    diesel::delete(login_throttles::table.find(account))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Removes throttle rows whose window and lock-out have both passed.
pub async fn purge_expired(conn: &mut AsyncPgConnection, window: Duration) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM login_throttles WHERE window_start < now() - make_interval(secs => $1) \
         AND (locked_until IS NULL OR locked_until < now())",
    )
    .bind::<Double, _>(window.as_secs_f64())
    .execute(conn)
    .await
}

/// In-memory failure counts per client address.
#[derive(Debug, Default)]
pub struct AddressThrottle {
    entries: HashMap<IpAddr, (u32, Instant, Option<Instant>)>,
}

impl AddressThrottle {
    /// Seconds until `ip` may try again, if it is locked now.
    pub fn locked_for(&self, ip: IpAddr) -> Option<u64> {
        let (_, _, locked) = self.entries.get(&ip)?;
        let until = (*locked)?;
        let left = until.checked_duration_since(Instant::now())?;
        Some(left.as_secs().max(1))
    }

    /// Counts one failure from `ip`.
    pub fn record_failure(&mut self, ip: IpAddr, max: u32, policy: ThrottlePolicy) {
        let now = Instant::now();
        let entry = self.entries.entry(ip).or_insert((0, now, None));
        if now.duration_since(entry.1) > policy.window {
            *entry = (0, now, None);
        }
        entry.0 += 1;
        if entry.0 >= max {
            entry.2 = Some(now + policy.lockout);
            entry.0 = 0;
            entry.1 = now;
        }
        if self.entries.len() > 100_000 {
            self.prune(policy.window.max(policy.lockout));
        }
    }

    /// Forgets entries older than `age`.
    pub fn prune(&mut self, age: Duration) {
        let now = Instant::now();
        self.entries.retain(|_, (_, start, locked)| {
            now.duration_since(*start) <= age || locked.is_some_and(|l| l > now)
        });
    }
}
