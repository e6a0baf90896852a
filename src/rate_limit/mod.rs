//! Per-tenant, per-channel send limits by plan tier (SPEC section 3), enforced with GCRA in
//! PostgreSQL (`db::rate_limits`), so every replica shares one bucket per tenant and channel:
//! a tenant may burst up to its per-minute quota, which refills continuously. Concurrent
//! one-message sends of a tenant are admitted together, one statement per batch (`coalesce`).

mod coalesce;

use std::collections::HashMap;
use std::sync::Arc;

use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use self::coalesce::{Coalescer, Outcome};
use crate::db::rate_limits::Take;
use crate::domain::{Channel, PlanTier};
use crate::error::{ApiError, ErrorCode};
use crate::metrics::Metrics;

/// Default per-minute limits; `0` means the tier may not use the channel.
pub fn default_limit(tier: PlanTier, channel: Channel) -> u32 {
    use Channel::*;
    use PlanTier::*;
    match (tier, channel) {
        (Free, Sms | Whatsapp) => 10,
        (Free, Email) => 50,
        (Free, Push) => 100,
        (Free, Voice) => 0,
        (Starter, Sms | Whatsapp) => 60,
        (Starter, Email) => 300,
        (Starter, Push) => 600,
        (Starter, Voice) => 10,
        (Professional, Sms | Whatsapp) => 300,
        (Professional, Email) => 1000,
        (Professional, Push) => 3000,
        (Professional, Voice) => 60,
        (Business, Sms | Whatsapp) => 1000,
        (Business, Email) => 5000,
        (Business, Push) => 10000,
        (Business, Voice) => 200,
        (Enterprise, Sms | Whatsapp) => 5000,
        (Enterprise, Email) => 20000,
        (Enterprise, Push) => 50000,
        (Enterprise, Voice) => 1000,
    }
}

/// The state of a tenant's limit after an admitted request.
#[derive(Clone, Copy, Debug)]
pub struct RateStatus {
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u64,
}

impl RateStatus {
    /// The `X-RateLimit-*` headers.
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            ("x-ratelimit-limit", self.limit.to_string()),
            ("x-ratelimit-remaining", self.remaining.to_string()),
            ("x-ratelimit-reset", self.reset_secs.to_string()),
        ]
    }
}

/// Every tier's per-minute limit of every channel.
pub struct RateLimits {
    limits: HashMap<(PlanTier, Channel), u32>,
    coalescer: Coalescer,
    metrics: Option<Arc<Metrics>>,
}

const TIERS: [PlanTier; 5] = [
    PlanTier::Free,
    PlanTier::Starter,
    PlanTier::Professional,
    PlanTier::Business,
    PlanTier::Enterprise,
];

impl RateLimits {
    /// Limits for every tier and channel, with `overrides` applied.
    pub fn new(overrides: &HashMap<(PlanTier, Channel), u32>) -> Self {
        let mut limits = HashMap::new();
        for tier in TIERS {
            for channel in Channel::ALL {
                let limit = overrides
                    .get(&(tier, channel))
                    .copied()
                    .unwrap_or_else(|| default_limit(tier, channel));
                limits.insert((tier, channel), limit);
            }
        }
        Self {
            limits,
            coalescer: Coalescer::default(),
            metrics: None,
        }
    }

    /// Counts this process's checks and statements.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.coalescer = self.coalescer.with_metrics(metrics.clone());
        self.metrics = Some(metrics);
        self
    }

    /// The per-minute limit; 0 when the tier may not use the channel.
    fn limit(&self, tier: PlanTier, channel: Channel) -> u32 {
        self.limits.get(&(tier, channel)).copied().unwrap_or(0)
    }

    /// The plan-tier gate alone: whether the tier may use the channel at all (a limit of 0
    /// means it may not), without counting anything.
    pub fn allows(&self, tier: PlanTier, channel: Channel) -> Result<(), ApiError> {
        if self.limit(tier, channel) == 0 {
            return Err(ApiError::new(
                ErrorCode::TierInsufficient,
                format!(
                    "the {} plan does not include the {channel} channel",
                    tier.as_str()
                ),
            ));
        }
        Ok(())
    }

    /// Admits `n` messages of `channel` for the tenant, or says why not. At most one statement
    /// on `conn`, which must not be inside a transaction (the bucket's row would stay locked
    /// until it ends); one message waits for, and joins, the tenant's other one-message
    /// requests on this process (`coalesce`).
    pub async fn check(
        &self,
        conn: &mut AsyncPgConnection,
        tenant: Uuid,
        tier: PlanTier,
        channel: Channel,
        n: u32,
    ) -> Result<RateStatus, ApiError> {
        self.allows(tier, channel)?;
        let limit = self.limit(tier, channel);
        if n == 0 {
            return Ok(RateStatus {
                limit,
                remaining: limit,
                reset_secs: 0,
            });
        }
        if n > limit {
            return Err(
                limited(limit, 60, channel).with_details(serde_json::json!([{
                    "field": "items",
                    "message": format!("{n} messages exceed the per-minute limit of {limit}")
                }])),
            );
        }
        let key = format!("send:{tenant}:{channel}");
        let take = Take::per_minute(&key, n as i32, limit as i32);
        let outcome = if n == 1 {
            self.coalescer.take_one(conn, &take).await?
        } else {
            let granted = self.coalescer.statement(conn, &take).await?;
            if granted.units < take.units {
                Outcome::Refused {
                    wait_secs: granted.wait_secs(&take, take.units),
                }
            } else {
                Outcome::Admitted {
                    remaining: granted.remaining(&take),
                }
            }
        };
        if let Some(metrics) = &self.metrics {
            metrics.record_rate_limit_check(matches!(outcome, Outcome::Admitted { .. }));
        }
        let remaining = match outcome {
            Outcome::Admitted { remaining } => remaining.max(0) as u32,
            Outcome::Refused { wait_secs } => {
                return Err(limited(limit, wait_secs.ceil() as u64, channel));
            }
        };
        Ok(RateStatus {
            limit,
            remaining,
            reset_secs: (f64::from(limit - remaining) * take.interval_secs).ceil() as u64,
        })
    }
}

fn limited(limit: u32, retry_after: u64, channel: Channel) -> ApiError {
    let retry_after = retry_after.max(1);
    ApiError::new(
        ErrorCode::RateLimitExceeded,
        format!("the {channel} send limit of {limit} per minute is reached"),
    )
    .with_retry_after(retry_after)
    .with_headers(
        &RateStatus {
            limit,
            remaining: 0,
            reset_secs: retry_after,
        }
        .headers(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_tier_cannot_use_voice() {
        let limits = RateLimits::new(&HashMap::new());
        let err = limits.allows(PlanTier::Free, Channel::Voice).unwrap_err();
        assert_eq!(err.code, ErrorCode::TierInsufficient);
        assert!(limits.allows(PlanTier::Free, Channel::Sms).is_ok());
    }

    #[test]
    fn overrides_replace_defaults() {
        let o = crate::config::parse_overrides("free.SMS=2, enterprise.VOICE=0").unwrap();
        let limits = RateLimits::new(&o);
        assert_eq!(limits.limit(PlanTier::Free, Channel::Sms), 2);
        assert_eq!(limits.limit(PlanTier::Free, Channel::Email), 50);
        assert!(limits.allows(PlanTier::Enterprise, Channel::Voice).is_err());
        assert!(crate::config::parse_overrides("gold.SMS=1").is_err());
        assert!(crate::config::parse_overrides("free.FAX=1").is_err());
    }
}
