//! `cleanup`: removes what has outlived its use — expired or long-revoked refresh tokens,
//! stale login-throttle rows, expired idempotency keys (whose stored answers may hold
//! secrets shown once, such as a new webhook's), published outbox rows, finished webhook deliveries and provider
//! callbacks older than their retention (kept well beyond the longest provider redelivery window, Meta's
//! seven days, so their event identities still catch replays), and rate-limit buckets that
//! have been full for an hour (a missing bucket is a full one).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::JobReport;
use crate::config::Settings;
use crate::db::DbPool;
use crate::db::schema::{refresh_token_families, refresh_tokens};

/// Revoked families are kept this long for forensics before they are deleted.
const REVOKED_RETENTION_DAYS: i64 = 7;
/// Provider callbacks are kept this long.
const CALLBACK_RETENTION_DAYS: i64 = 30;
/// Finished webhook deliveries (and their attempts) are listed this long.
const WEBHOOK_DELIVERY_RETENTION_DAYS: i64 = 30;

pub async fn run(pool: &DbPool, settings: &Settings) -> Result<JobReport, super::JobError> {
    let mut conn = pool.get().await?;
    let now = chrono::Utc::now();
    let expired_tokens =
        diesel::delete(refresh_tokens::table.filter(refresh_tokens::expires_at.lt(now)))
            .execute(&mut conn)
            .await?;
    let revoked_before = now - chrono::Duration::days(REVOKED_RETENTION_DAYS);
    let old_families = diesel::delete(
        refresh_token_families::table.filter(refresh_token_families::revoked_at.lt(revoked_before)),
    )
    .execute(&mut conn)
    .await?;
    let throttles =
        crate::auth::throttle::purge_expired(&mut conn, std::time::Duration::from_secs(24 * 3600))
            .await?;
    let idempotency_keys = crate::db::idempotency_keys::purge_expired(&mut conn).await?;
    let outbox_events =
        crate::outbox::store::purge_done(&mut conn, settings.outbox_retention).await?;
    let callbacks = crate::db::callbacks::purge_callbacks(
        &mut conn,
        now - chrono::Duration::days(CALLBACK_RETENTION_DAYS),
    )
    .await?;
    let webhook_deliveries = crate::db::webhook_deliveries::delete_finished_before(
        &mut conn,
        now - chrono::Duration::days(WEBHOOK_DELIVERY_RETENTION_DAYS),
    )
    .await?;
    let rate_limit_buckets = crate::db::rate_limits::purge_full(&mut conn, 3600.0).await?;
    let mut report = JobReport {
        job: "cleanup".into(),
        ..Default::default()
    };
    for (name, n) in [
        ("expired_refresh_tokens", expired_tokens),
        ("revoked_families", old_families),
        ("login_throttles", throttles),
        ("idempotency_keys", idempotency_keys),
        ("outbox_events", outbox_events),
        ("provider_callbacks", callbacks),
        ("webhook_deliveries", webhook_deliveries),
        ("rate_limit_buckets", rate_limit_buckets),
    ] {
        report.counts.insert(name.into(), n as i64);
    }
    Ok(report)
}
