//! Login throttling, in three parts, so that an attacker cannot turn it against the users:
//!
//! - per (account, client address): attempts are charged *before* the password is checked, so
//!   concurrent guesses cannot exceed the limit; `LOGIN_MAX_FAILURES` within the window lock that
//!   pair for `LOGIN_LOCKOUT_SECS`. Counted in the database: the lock spans replicas and survives
//!   restarts. Failures from one address never lock out the account's owner at another.
//! - per account, whatever the address: not a lock-out (five requests every fifteen minutes
//!   would keep it closed) but a bounded progressive delay before the check, at most 2 s.
//! - per client address, in memory in the token actor: a first line against one address
//!   spraying many accounts. IPv6 addresses count per /64, which one host usually holds whole.

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

/// The throttle key of an account tried from a client address.
pub fn pair_key(account: &str, client: Option<IpAddr>) -> String {
    match client {
        Some(ip) => format!("{account}|{}", address_key(ip)),
        None => format!("{account}|unknown"),
    }
}

/// A client address as it is counted: IPv4 as it is, IPv6 by its /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
    }
}

#[derive(QueryableByName)]
struct Charged {
    #[diesel(sql_type = Integer)]
    failures: i32,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    locked_until: Option<DateTime<Utc>>,
}

/// Charges one attempt to `key` before the password is checked; returns the seconds to wait
/// when the key is locked (this attempt included when it is one too many).
pub async fn charge(
    conn: &mut AsyncPgConnection,
    key: &str,
    policy: ThrottlePolicy,
) -> QueryResult<Option<u64>> {
    let charged = count_attempt(conn, key, policy.window).await?;
    if let Some(wait) = charged.locked_until.and_then(remaining_secs) {
        return Ok(Some(wait));
    }
    if charged.failures <= policy.max_failures {
        return Ok(None);
    }
    let until = Utc::now()
        + chrono::Duration::from_std(policy.lockout)
            .unwrap_or_else(|_| chrono::Duration::minutes(15));
    diesel::update(login_throttles::table.find(key))
        .set((
            login_throttles::locked_until.eq(until),
            login_throttles::failures.eq(0),
            login_throttles::window_start.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(remaining_secs(until))
}

/// Charges one attempt to the account as a whole; returns its attempts in the window.
pub async fn charge_account(
    conn: &mut AsyncPgConnection,
    account: &str,
    window: Duration,
) -> QueryResult<i32> {
    Ok(count_attempt(conn, account, window).await?.failures)
}

/// The wait before checking a password of an account tried `attempts` times in the window:
/// none up to `max`, then 100 ms doubling per attempt, at most 2 s.
pub fn account_delay(attempts: i32, max: i32) -> Duration {
    let over = attempts - max;
    if over <= 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(100u64.saturating_mul(1 << (over - 1).min(5) as u64))
        .min(Duration::from_secs(2))
}

async fn count_attempt(
    conn: &mut AsyncPgConnection,
    key: &str,
    window: Duration,
) -> QueryResult<Charged> {
    diesel::sql_query(
        "INSERT INTO login_throttles AS t (account, failures, window_start, updated_at) \
         VALUES ($1, 1, now(), now()) \
         ON CONFLICT (account) DO UPDATE SET \
           failures = CASE WHEN t.locked_until > now() THEN t.failures \
                           WHEN t.window_start < now() - make_interval(secs => $2) THEN 1 \
                           ELSE t.failures + 1 END, \
           window_start = CASE WHEN t.locked_until > now() THEN t.window_start \
                               WHEN t.window_start < now() - make_interval(secs => $2) THEN now() \
                               ELSE t.window_start END, \
           locked_until = CASE WHEN t.locked_until > now() THEN t.locked_until END, \
           updated_at = now() \
         RETURNING failures, locked_until",
    )
    .bind::<Text, _>(key)
    .bind::<Double, _>(window.as_secs_f64())
    .get_result(conn)
    .await
}

/// Forgets the keys' attempts after a successful login.
pub async fn clear(conn: &mut AsyncPgConnection, keys: &[&str]) -> QueryResult<()> {
    diesel::delete(login_throttles::table.filter(login_throttles::account.eq_any(keys)))
        .execute(conn)
        .await
        .map(|_| ())
}

fn remaining_secs(until: DateTime<Utc>) -> Option<u64> {
    let left = (until - Utc::now()).num_milliseconds();
    (left > 0).then(|| (left as u64).div_ceil(1000))
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
