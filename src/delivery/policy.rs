//! The delivery decisions as plain functions: how long to wait before a retry, and what a
//! provider's answer makes of a message (sent, failed, retried on the same provider, or moved
//! to the next one). No I/O: the store writes what these decide.

use std::time::Duration;

use rand::Rng;

use crate::config::Settings;
use crate::db::{DbError, PoolError};
use crate::outbox::EnqueueError;
use crate::providers::SendOutcome;

/// Error code of an attempt whose outcome is unknown (the provider may have accepted it).
pub const AMBIGUOUS_OUTCOME: &str = "AMBIGUOUS_OUTCOME";

/// Retry and circuit settings.
#[derive(Clone, Debug)]
pub struct DeliveryPolicy {
    pub max_attempts_per_provider: i32,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    pub circuit_threshold: i32,
    pub circuit_cooldown: Duration,
    pub public_base_url: Option<String>,
    /// How long accepted outcomes are retried when the database does not take them.
    pub record_deadline: Duration,
}

impl DeliveryPolicy {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            max_attempts_per_provider: s.delivery_max_attempts_per_provider.max(1),
            retry_base: s.delivery_retry_base,
            retry_cap: s.delivery_retry_cap,
            circuit_threshold: s.circuit_failure_threshold.max(1),
            circuit_cooldown: s.circuit_cooldown,
            public_base_url: s.public_base_url.clone(),
            record_deadline: s.delivery_record_deadline,
        }
    }

    /// Capped exponential backoff with jitter: between half and all of
    /// `min(retry_base × 2^(attempts − 1), retry_cap)`.
    pub fn backoff(&self, attempts_on_provider: i32) -> Duration {
        let exp = 2f64.powi((attempts_on_provider - 1).clamp(0, 30));
        let step = (self.retry_base.as_secs_f64() * exp).min(self.retry_cap.as_secs_f64());
        Duration::from_secs_f64(step * rand::thread_rng().gen_range(0.5..=1.0))
    }
}

/// What a delivery step ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do: not QUEUED, not due, or another deliverer holds it.
    Skipped,
    Sent,
    Failed,
    /// Queued again for a retry at a later time.
    RetryLater,
    /// Moved to another provider; the next try can run at once.
    FailedOver,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
    /// The shared transaction that records a batch's outcomes failed.
    #[error("{0}")]
    Batch(String),
}

impl From<diesel::result::Error> for DeliveryError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

impl From<PoolError> for DeliveryError {
    fn from(e: PoolError) -> Self {
        Self::Db(DbError::Pool(e))
    }
}

/// Whether a provider's refusal says the recipient opted out at the provider (Twilio 21610
/// after a STOP, Meta 131050 for a user who stopped the business's messages): the recipient is
/// then added to the tenant's opt-outs, so the next send is refused before any provider call.
pub fn opted_out_at_provider(provider_kind: &str, code: &str) -> bool {
    matches!(
        (provider_kind, code),
        ("TWILIO", "21610") | ("META_WHATSAPP", "131050")
    )
}

/// What a provider's answer does to the provider's circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitEffect {
    /// The provider answered as it should (it accepted, or refused the message itself).
    Success,
    /// The provider failed: counts towards opening its circuit.
    Failure,
}

/// The circuit effect of an outcome.
pub fn circuit_effect(outcome: &SendOutcome) -> CircuitEffect {
    match outcome {
        SendOutcome::Accepted { .. } | SendOutcome::PermanentFailure { .. } => {
            CircuitEffect::Success
        }
        SendOutcome::TransientFailure { .. }
        | SendOutcome::RateLimited { .. }
        | SendOutcome::Ambiguous { .. } => CircuitEffect::Failure,
    }
}

/// What becomes of a message after a provider's answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// SENT, with the provider's id and price.
    Sent {
        provider_message_id: String,
        price: Option<crate::pricing::Price>,
    },
    /// FAILED for good.
    Fail { code: String, text: String },
    /// QUEUED again.
    Retry(Retry),
}

/// A message queued again after an attempt that did not go through.
#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    pub code: String,
    pub text: String,
    /// How long to wait; zero when moving on to the next provider.
    pub delay: Duration,
    /// The next try goes to another provider (this one's attempts are spent or its circuit
    /// opened).
    pub move_on: bool,
    /// The attempt may have been accepted: the next try goes to the same provider only.
    pub ambiguous: bool,
}

impl Decision {
    /// The step this decision ends the attempt with.
    pub fn step(&self) -> Step {
        match self {
            Decision::Sent { .. } => Step::Sent,
            Decision::Fail { .. } => Step::Failed,
            Decision::Retry(r) if r.move_on => Step::FailedOver,
            Decision::Retry(_) => Step::RetryLater,
        }
    }
}

/// Decides what an outcome does to a message that has had `provider_attempts` attempts on
/// this provider (the one just made included); `circuit_opened` tells whether recording this
/// outcome opened the provider's circuit.
///
/// - accepted: SENT;
/// - refused for good: FAILED with the provider's code;
/// - a transient failure or a rate limit: a retry after the backoff (or the provider's
///   `Retry-After`, capped), or at once on the next provider when this one's attempts are spent
///   or its circuit just opened;
/// - an unknown outcome: a retry on the same provider only (a second provider could deliver
///   it twice), and FAILED once this provider's attempts are spent.
pub fn decide(
    policy: &DeliveryPolicy,
    outcome: SendOutcome,
    provider_attempts: i32,
    circuit_opened: bool,
) -> Decision {
    let exhausted = provider_attempts >= policy.max_attempts_per_provider;
    let retry = |code: String, text: String, delay: Duration| {
        let move_on = circuit_opened || exhausted;
        Decision::Retry(Retry {
            code,
            text,
            delay: if move_on { Duration::ZERO } else { delay },
            move_on,
            ambiguous: false,
        })
    };
    match outcome {
        SendOutcome::Accepted {
            provider_message_id,
            price,
        } => Decision::Sent {
            provider_message_id,
            price,
        },
        SendOutcome::PermanentFailure { code, message } => Decision::Fail {
            code,
            text: message,
        },
        SendOutcome::TransientFailure { code, message }
        | SendOutcome::RateLimited {
            code,
            message,
            retry_after: None,
        } => retry(code, message, policy.backoff(provider_attempts)),
        SendOutcome::RateLimited {
            code,
            message,
            retry_after: Some(after),
        } => {
            let delay = after
                .max(policy.backoff(provider_attempts))
                .min(policy.retry_cap);
            retry(code, message, delay)
        }
        SendOutcome::Ambiguous { message } if exhausted => Decision::Fail {
            code: AMBIGUOUS_OUTCOME.to_owned(),
            text: format!("{message}; the provider may have accepted it, not re-sent elsewhere"),
        },
        SendOutcome::Ambiguous { message } => Decision::Retry(Retry {
            code: AMBIGUOUS_OUTCOME.to_owned(),
            text: message,
            delay: policy.backoff(provider_attempts),
            move_on: false,
            ambiguous: true,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> DeliveryPolicy {
        DeliveryPolicy {
            max_attempts_per_provider: 3,
            retry_base: Duration::from_secs(2),
            retry_cap: Duration::from_secs(60),
            circuit_threshold: 5,
            circuit_cooldown: Duration::from_secs(30),
            public_base_url: None,
            record_deadline: Duration::from_secs(1),
        }
    }

    fn transient() -> SendOutcome {
        SendOutcome::TransientFailure {
            code: "HTTP_503".into(),
            message: "unavailable".into(),
        }
    }

    fn retry(d: Decision) -> Retry {
        match d {
            Decision::Retry(r) => r,
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn an_accepted_send_is_sent_with_the_providers_id_and_price() {
        let d = decide(
            &policy(),
            SendOutcome::Accepted {
                provider_message_id: "SM1".into(),
                price: Some(crate::pricing::Price::usd(42)),
            },
            1,
            false,
        );
        assert_eq!(d.step(), Step::Sent);
        assert_eq!(
            d,
            Decision::Sent {
                provider_message_id: "SM1".into(),
                price: Some(crate::pricing::Price::usd(42))
            }
        );
    }

    #[test]
    fn a_permanent_refusal_fails_with_the_providers_code() {
        let d = decide(
            &policy(),
            SendOutcome::PermanentFailure {
                code: "21211".into(),
                message: "invalid number".into(),
            },
            1,
            false,
        );
        assert_eq!(
            d,
            Decision::Fail {
                code: "21211".into(),
                text: "invalid number".into()
            }
        );
    }

    #[test]
    fn a_transient_failure_retries_on_the_same_provider_after_a_jittered_backoff() {
        for attempts in 1..=2 {
            let r = retry(decide(&policy(), transient(), attempts, false));
            assert!(!r.move_on && !r.ambiguous);
            let full = Duration::from_secs(2 * 2u64.pow(attempts as u32 - 1));
            assert!(r.delay >= full / 2 && r.delay <= full, "{:?}", r.delay);
        }
    }

    #[test]
    fn the_backoff_never_exceeds_the_cap() {
        assert!(policy().backoff(30) <= Duration::from_secs(60));
    }

    #[test]
    fn spent_attempts_or_an_opened_circuit_move_on_to_the_next_provider_at_once() {
        let spent = decide(&policy(), transient(), 3, false);
        assert_eq!(spent.step(), Step::FailedOver);
        assert_eq!(retry(spent).delay, Duration::ZERO);
        let opened = decide(&policy(), transient(), 1, true);
        assert_eq!(opened.step(), Step::FailedOver);
    }

    #[test]
    fn a_rate_limit_waits_at_least_the_providers_retry_after_up_to_the_cap() {
        let limited = |after: u64| SendOutcome::RateLimited {
            code: "HTTP_429".into(),
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(after)),
        };
        assert_eq!(
            retry(decide(&policy(), limited(40), 1, false)).delay,
            Duration::from_secs(40)
        );
        assert_eq!(
            retry(decide(&policy(), limited(600), 1, false)).delay,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn an_unknown_outcome_retries_on_the_same_provider_only_then_fails() {
        let ambiguous = || SendOutcome::Ambiguous {
            message: "timed out".into(),
        };
        let r = retry(decide(&policy(), ambiguous(), 1, true));
        assert!(r.ambiguous && !r.move_on);
        assert_eq!(r.code, AMBIGUOUS_OUTCOME);
        match decide(&policy(), ambiguous(), 3, false) {
            Decision::Fail { code, text } => {
                assert_eq!(code, AMBIGUOUS_OUTCOME);
                assert!(text.contains("not re-sent elsewhere"));
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn only_the_providers_opt_out_codes_add_an_opt_out() {
        assert!(opted_out_at_provider("TWILIO", "21610"));
        assert!(opted_out_at_provider("META_WHATSAPP", "131050"));
        assert!(!opted_out_at_provider("TWILIO", "21211"));
        assert!(!opted_out_at_provider("VONAGE", "21610"));
    }

    #[test]
    fn only_provider_failures_count_against_its_circuit() {
        assert_eq!(circuit_effect(&transient()), CircuitEffect::Failure);
        assert_eq!(
            circuit_effect(&SendOutcome::PermanentFailure {
                code: "x".into(),
                message: "y".into()
            }),
            CircuitEffect::Success
        );
    }
}
