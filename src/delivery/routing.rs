//! Routing: which provider the next try of a message goes to. Providers are tried in priority
//! order; a message stays on its provider until that provider's attempts are spent or its
//! circuit opens, then moves to the next untried one (a failover). An attempt with an unknown
//! outcome is retried on its own provider only. Pure: the caller reads the candidates and
//! writes what the choice implies.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::circuit;
use super::policy::{AMBIGUOUS_OUTCOME, DeliveryPolicy};
use crate::db::messages::Message;
use crate::db::providers::Provider;
use crate::domain::provider_kind::{COUNTRIES, limits_countries, serves_country};
use crate::domain::recipient::country_of;

/// A provider that may carry a message, with its circuit.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub provider: Provider,
    pub circuit_state: String,
    pub circuit_opened_at: Option<DateTime<Utc>>,
}

/// The provider a failover moves from (id, kind) and why.
pub type FailoverFrom = Option<(Uuid, String, &'static str)>;

/// The message's delivery state besides its row: attempts on its current provider, the
/// providers tried so far, and whether the last attempt's outcome is unknown.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub provider_attempts: i32,
    pub tried: Vec<Uuid>,
    pub ambiguous: bool,
}

/// Where the next try goes.
#[derive(Debug)]
pub enum Route {
    Use {
        provider: Box<Provider>,
        failover_from: FailoverFrom,
    },
    /// Every untried provider's circuit is open: try again after the cool-down.
    Wait(Duration),
    /// Nothing left to try: FAILED with this code and text.
    Exhausted(&'static str, String),
}

/// The candidates that carry the message's destination: all of them, but for providers limited
/// to some countries (`config.countries`) when its number is of none of them.
pub fn serving<'a>(
    message: &Message,
    candidates: &'a [Candidate],
) -> impl Iterator<Item = &'a Candidate> + 'a {
    let channel = message.channel;
    // A numbering-plan match, made only when some candidate is limited to some countries.
    let country = (channel.takes_phone_numbers()
        && candidates
            .iter()
            .any(|c| limits_countries(&c.provider.config)))
    .then(|| country_of(&message.recipient))
    .flatten();
    candidates
        .iter()
        .filter(move |c| serves_country(&c.provider.config, channel, country.as_deref()))
}

/// The routing decision, and the provider whose open circuit turns half-open if its cool-down
/// has passed (the caller writes that).
pub fn choose(
    policy: &DeliveryPolicy,
    message: &Message,
    progress: &Progress,
    candidates: &[Candidate],
) -> (Route, Option<Uuid>) {
    // Providers limited to some countries (`config.countries`) only carry their numbers.
    let limited: Vec<Candidate>;
    let candidates = if candidates
        .iter()
        .any(|c| c.provider.config.get(COUNTRIES).is_some())
    {
        limited = serving(message, candidates).cloned().collect();
        &limited[..]
    } else {
        candidates
    };
    let open = |id: Uuid| {
        candidates
            .iter()
            .find(|c| c.provider.id == id)
            .is_some_and(|c| {
                !circuit::allows(
                    &c.circuit_state,
                    c.circuit_opened_at,
                    policy.circuit_cooldown,
                )
            })
    };
    // Only an OPEN circuit can turn half-open; a closed one needs no write.
    let half_open = |id: Uuid| {
        candidates
            .iter()
            .any(|c| c.provider.id == id && c.circuit_state == "OPEN")
            .then_some(id)
    };
    let use_provider = |p: &Provider, failover_from: FailoverFrom| Route::Use {
        provider: Box::new(p.clone()),
        failover_from,
    };
    let current = message
        .provider_id
        .and_then(|id| candidates.iter().map(|c| &c.provider).find(|p| p.id == id));
    if progress.ambiguous {
        return match current {
            Some(p) => (use_provider(p, None), None),
            None => (
                Route::Exhausted(
                    AMBIGUOUS_OUTCOME,
                    "the provider of an unconfirmed attempt is gone; not re-sent elsewhere".into(),
                ),
                None,
            ),
        };
    }
    if let Some(p) = current
        && progress.provider_attempts < policy.max_attempts_per_provider
        && !open(p.id)
    {
        return (use_provider(p, None), half_open(p.id));
    }
    let tried = &progress.tried;
    let next = candidates
        .iter()
        .map(|c| &c.provider)
        .find(|p| !tried.contains(&p.id) && !open(p.id));
    match next {
        Some(p) => {
            let failover_from = current.map(|c| {
                let reason = if open(c.id) {
                    "circuit_open"
                } else {
                    "retries_exhausted"
                };
                (c.id, c.kind.clone(), reason)
            });
            (use_provider(p, failover_from), half_open(p.id))
        }
        None if candidates.iter().any(|c| !tried.contains(&c.provider.id)) => {
            (Route::Wait(policy.circuit_cooldown), None)
        }
        None if candidates.is_empty() => (
            Route::Exhausted(
                "NO_PROVIDER_AVAILABLE",
                format!("no active provider carries {}", message.channel),
            ),
            None,
        ),
        None => (
            Route::Exhausted(
                "ALL_PROVIDERS_FAILED",
                message
                    .error_message
                    .clone()
                    .unwrap_or_else(|| "every provider was tried".into()),
            ),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, MessageStatus};

    fn policy() -> DeliveryPolicy {
        DeliveryPolicy {
            max_attempts_per_provider: 2,
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(10),
            circuit_threshold: 3,
            circuit_cooldown: Duration::from_secs(30),
            public_base_url: None,
            record_deadline: Duration::from_secs(1),
        }
    }

    fn candidate(n: u128, kind: &str, circuit: &str, opened_secs_ago: i64) -> Candidate {
        let now = Utc::now();
        Candidate {
            provider: Provider {
                id: Uuid::from_u128(n),
                tenant_id: Uuid::nil(),
                name: kind.into(),
                kind: kind.into(),
                channels: vec![Some("SMS".into())],
                priority: n as i32,
                is_active: true,
                config: serde_json::json!({}),
                credentials_encrypted: Vec::new(),
                credential_keys: Vec::new(),
                health_state: "HEALTHY".into(),
                consecutive_failures: 0,
                last_error: None,
                health_changed_at: now,
                created_at: now,
                updated_at: now,
                deleted_at: None,
            },
            circuit_state: circuit.into(),
            circuit_opened_at: (circuit == "OPEN")
                .then(|| now - chrono::Duration::seconds(opened_secs_ago)),
        }
    }

    fn message(on: Option<u128>) -> Message {
        let now = Utc::now();
        Message {
            id: Uuid::from_u128(99),
            tenant_id: Uuid::nil(),
            channel: Channel::Sms,
            recipient: "+14155550100".into(),
            status: MessageStatus::Queued,
            subject: None,
            body: "hi".into(),
            template_id: None,
            template_version: None,
            pinned_provider_id: None,
            provider_id: on.map(Uuid::from_u128),
            provider_kind: None,
            provider_message_id: None,
            attempts: 0,
            cost_usd_micros: None,
            error_code: None,
            error_message: Some("HTTP_503".into()),
            metadata: serde_json::json!({}),
            source_event_id: None,
            scheduled_at: None,
            created_at: now,
            updated_at: now,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            failed_at: None,
            cancelled_at: None,
            notification_id: None,
            html_body: None,
            reply_to: None,
            priority: crate::domain::Priority::Normal,
            expires_at: None,
            chain_id: None,
            encoding: None,
            segments: None,
            cost_currency: None,
            cost_amount_micros: None,
            media: None,
        }
    }

    fn progress(provider_attempts: i32, tried: &[u128], ambiguous: bool) -> Progress {
        Progress {
            provider_attempts,
            tried: tried.iter().copied().map(Uuid::from_u128).collect(),
            ambiguous,
        }
    }

    fn used(route: &Route) -> (Uuid, Option<&'static str>) {
        match route {
            Route::Use {
                provider,
                failover_from,
            } => (provider.id, failover_from.as_ref().map(|f| f.2)),
            other => panic!("expected a provider, got {other:?}"),
        }
    }

    #[test]
    fn a_new_message_goes_to_the_first_provider_by_priority() {
        let c = [
            candidate(1, "twilio", "CLOSED", 0),
            candidate(2, "vonage", "CLOSED", 0),
        ];
        let (route, half) = choose(&policy(), &message(None), &progress(0, &[], false), &c);
        assert_eq!(used(&route), (Uuid::from_u128(1), None));
        assert_eq!(half, None);
    }

    #[test]
    fn a_message_stays_on_its_provider_until_its_attempts_are_spent() {
        let c = [
            candidate(1, "twilio", "CLOSED", 0),
            candidate(2, "vonage", "CLOSED", 0),
        ];
        let (route, _) = choose(&policy(), &message(Some(1)), &progress(1, &[1], false), &c);
        assert_eq!(used(&route), (Uuid::from_u128(1), None));
        let (route, _) = choose(&policy(), &message(Some(1)), &progress(2, &[1], false), &c);
        assert_eq!(
            used(&route),
            (Uuid::from_u128(2), Some("retries_exhausted"))
        );
    }

    #[test]
    fn an_open_circuit_fails_over_and_a_cooled_one_is_tried_half_open() {
        let c = [
            candidate(1, "twilio", "OPEN", 5),
            candidate(2, "vonage", "CLOSED", 0),
        ];
        let (route, _) = choose(&policy(), &message(Some(1)), &progress(1, &[1], false), &c);
        assert_eq!(used(&route), (Uuid::from_u128(2), Some("circuit_open")));
        let cooled = [candidate(1, "twilio", "OPEN", 60)];
        let (route, half) = choose(&policy(), &message(None), &progress(0, &[], false), &cooled);
        assert_eq!(used(&route), (Uuid::from_u128(1), None));
        assert_eq!(half, Some(Uuid::from_u128(1)));
    }

    #[test]
    fn untried_providers_behind_open_circuits_make_the_message_wait() {
        let c = [
            candidate(1, "twilio", "CLOSED", 0),
            candidate(2, "vonage", "OPEN", 1),
        ];
        let (route, _) = choose(&policy(), &message(Some(1)), &progress(2, &[1], false), &c);
        assert!(matches!(route, Route::Wait(d) if d == Duration::from_secs(30)));
    }

    #[test]
    fn nothing_left_to_try_fails_the_message_with_a_reason() {
        let none = choose(&policy(), &message(None), &progress(0, &[], false), &[]).0;
        assert!(matches!(none, Route::Exhausted("NO_PROVIDER_AVAILABLE", _)));
        let c = [candidate(1, "twilio", "CLOSED", 0)];
        let all = choose(&policy(), &message(Some(1)), &progress(2, &[1], false), &c).0;
        assert!(matches!(all, Route::Exhausted("ALL_PROVIDERS_FAILED", t) if t == "HTTP_503"));
    }

    #[test]
    fn an_unknown_outcome_is_retried_on_its_own_provider_or_not_at_all() {
        let c = [
            candidate(1, "twilio", "OPEN", 1),
            candidate(2, "vonage", "CLOSED", 0),
        ];
        let (route, _) = choose(&policy(), &message(Some(1)), &progress(2, &[1], true), &c);
        assert_eq!(used(&route), (Uuid::from_u128(1), None));
        let gone = choose(&policy(), &message(Some(3)), &progress(1, &[3], true), &c).0;
        assert!(matches!(gone, Route::Exhausted(AMBIGUOUS_OUTCOME, _)));
    }
}
