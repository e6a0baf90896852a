//! Per-tenant, per-channel send limits by plan tier (SPEC section 3), enforced with GCRA
//! (`governor`): a tenant may burst up to its per-minute quota, which refills continuously.
//! Limits are held in memory by each replica.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use uuid::Uuid;

use crate::domain::{Channel, PlanTier};
use crate::error::{ApiError, ErrorCode};

type TenantLimiter =
    RateLimiter<Uuid, DefaultKeyedStateStore<Uuid>, DefaultClock, StateInformationMiddleware>;

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

/// The per-minute limit of one tier and channel, and its limiter (none when the limit is 0).
type Limit = (u32, Option<Arc<TenantLimiter>>);

/// Every limiter of the process.
pub struct RateLimits {
    limiters: HashMap<(PlanTier, Channel), Limit>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimits(..)")
    }
}

const TIERS: [PlanTier; 5] = [
    PlanTier::Free,
    PlanTier::Starter,
    PlanTier::Professional,
    PlanTier::Business,
    PlanTier::Enterprise,
];

impl RateLimits {
    /// Limiters for every tier and channel, with `overrides` applied.
    pub fn new(overrides: &HashMap<(PlanTier, Channel), u32>) -> Self {
        let mut limiters = HashMap::new();
        for tier in TIERS {
            for channel in Channel::ALL {
                let limit = overrides
                    .get(&(tier, channel))
                    .copied()
                    .unwrap_or_else(|| default_limit(tier, channel));
                let limiter = NonZeroU32::new(limit).map(|n| {
                    Arc::new(
                        RateLimiter::keyed(Quota::per_minute(n))
                            .with_middleware::<StateInformationMiddleware>(),
                    )
                });
                limiters.insert((tier, channel), (limit, limiter));
            }
        }
        Self {
            limiters,
            clock: DefaultClock::default(),
        }
    }

    /// The plan-tier gate alone: whether the tier may use the channel at all (a limit of 0
    /// means it may not), without counting anything.
    pub fn allows(&self, tier: PlanTier, channel: Channel) -> Result<(), ApiError> {
        match self.limiters.get(&(tier, channel)) {
            Some((_, Some(_))) => Ok(()),
            _ => Err(ApiError::new(
                ErrorCode::TierInsufficient,
                format!(
                    "the {} plan does not include the {channel} channel",
                    tier.as_str()
                ),
            )),
        }
    }

    /// Admits `n` messages of `channel` for the tenant, or says why not.
    pub fn check(
        &self,
        tenant: Uuid,
        tier: PlanTier,
        channel: Channel,
        n: u32,
    ) -> Result<RateStatus, ApiError> {
        let Some((limit, limiter)) = self.limiters.get(&(tier, channel)) else {
            return Err(ApiError::internal(anyhow::anyhow!(
                "no limiter for {tier:?}/{channel}"
            )));
        };
        let Some(limiter) = limiter else {
            return Err(ApiError::new(
                ErrorCode::TierInsufficient,
                format!(
                    "the {} plan does not include the {channel} channel",
                    tier.as_str()
                ),
            ));
        };
        let per_message_secs = 60.0 / f64::from(*limit);
        let Some(n) = NonZeroU32::new(n) else {
            return Ok(RateStatus {
                limit: *limit,
                remaining: *limit,
                reset_secs: 0,
            });
        };
        match limiter.check_key_n(&tenant, n) {
            Ok(Ok(snapshot)) => {
                let remaining = snapshot.remaining_burst_capacity();
                Ok(RateStatus {
                    limit: *limit,
                    remaining,
                    reset_secs: (f64::from(limit - remaining) * per_message_secs).ceil() as u64,
                })
            }
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let retry = wait.as_secs_f64().ceil() as u64;
                Err(limited(*limit, retry, channel))
            }
            Err(_) => Err(
                limited(*limit, 60, channel).with_details(serde_json::json!([{
                    "field": "items",
                    "message": format!("{n} messages exceed the per-minute limit of {limit}")
                }])),
            ),
        }
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
    fn the_limit_admits_the_quota_then_refuses_with_a_wait() {
        let limits = RateLimits::new(&HashMap::new());
        let tenant = Uuid::now_v7();
        for _ in 0..10 {
            limits
                .check(tenant, PlanTier::Free, Channel::Sms, 1)
                .unwrap();
        }
        let err = limits
            .check(tenant, PlanTier::Free, Channel::Sms, 1)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::RateLimitExceeded);
        assert!(err.retry_after_secs.unwrap() >= 1);
        let other = Uuid::now_v7();
        assert!(
            limits.check(other, PlanTier::Free, Channel::Sms, 1).is_ok(),
            "tenants are independent"
        );
        assert!(
            limits
                .check(tenant, PlanTier::Free, Channel::Email, 1)
                .is_ok(),
            "channels are independent"
        );
    }

    #[test]
    fn free_tier_cannot_use_voice() {
        let limits = RateLimits::new(&HashMap::new());
        let err = limits
            .check(Uuid::now_v7(), PlanTier::Free, Channel::Voice, 1)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::TierInsufficient);
    }

    #[test]
    fn overrides_replace_defaults() {
        let o = crate::config::parse_overrides("free.SMS=2, enterprise.VOICE=0").unwrap();
        let limits = RateLimits::new(&o);
        let t = Uuid::now_v7();
        limits.check(t, PlanTier::Free, Channel::Sms, 2).unwrap();
        assert!(limits.check(t, PlanTier::Free, Channel::Sms, 1).is_err());
        assert!(
            limits
                .check(t, PlanTier::Enterprise, Channel::Voice, 1)
                .is_err()
        );
        assert!(crate::config::parse_overrides("gold.SMS=1").is_err());
        assert!(crate::config::parse_overrides("free.FAX=1").is_err());
    }
}
