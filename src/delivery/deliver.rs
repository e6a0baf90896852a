//! The delivery service: the provider clients, the policy, and the provider call itself. Every
//! delivery, of one message or of a drained batch, goes through the batch path
//! (`batch.rs`): one state machine, one set of statements.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::policy::{AMBIGUOUS_OUTCOME, DeliveryError, DeliveryPolicy, Step};
use crate::db::DbPool;
use crate::db::providers::Provider;
use crate::domain::Channel;
use crate::domain::provider_kind::ON_AMBIGUOUS;
use crate::domain::sms::{self, Segmented};
use crate::metrics::Metrics;
use crate::outbox::Wakeup;
use crate::pricing::{Cost, Price, PriceTable};
use crate::providers::registry::ProviderRegistry;
use crate::providers::{Lookup, OutboundMessage, SendOutcome};

/// The delivery service.
pub struct Delivery {
    pub(super) pool: DbPool,
    registry: Arc<ProviderRegistry>,
    pub(super) policy: DeliveryPolicy,
    metrics: Option<Arc<Metrics>>,
    wakeup: Option<Arc<Wakeup>>,
    prices: Arc<PriceTable>,
}

/// An attempt committed and ready to be made.
pub(super) struct Prepared {
    pub message_id: Uuid,
    pub attempt_id: Uuid,
    pub provider: Provider,
    pub outbound: OutboundMessage,
    /// The try before this one had an ambiguous outcome; the first try was made after this
    /// time (the message's creation). The provider is asked before any resend.
    pub after_ambiguous: Option<DateTime<Utc>>,
}

/// An attempt made: what the provider answered, and how long it took.
pub(super) struct Made {
    pub prepared: Prepared,
    pub outcome: SendOutcome,
    pub latency: Duration,
    /// How an ambiguous try before this one was settled, as shown on the attempt.
    pub settled: Option<Settled>,
    /// An accepted send: what it cost and, for an SMS, how it travelled.
    pub priced: Option<Priced>,
}

/// An accepted send's cost, and an SMS's encoding and segments as sent.
#[derive(Clone, Debug)]
pub struct Priced {
    pub cost: Cost,
    pub shape: Option<Segmented>,
}

/// How a try after an ambiguous outcome went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Settled {
    /// The provider's look-up found the first send: nothing was sent again.
    Found,
    /// The look-up found nothing, so the resend cannot duplicate it.
    ResentNotFound,
    /// No look-up (or it failed) and `on_ambiguous` is `resend`.
    Resent,
}

impl Settled {
    /// The attempt's outcome when accepted, and the note recorded with it.
    pub fn outcome_and_note(self) -> (&'static str, &'static str) {
        match self {
            Settled::Found => (
                "RECONCILED",
                "the provider's look-up found the earlier send; nothing was sent again",
            ),
            Settled::ResentNotFound => (
                "ACCEPTED",
                "resent after an ambiguous outcome: the provider's look-up had no such message",
            ),
            Settled::Resent => (
                "ACCEPTED",
                "resent after an ambiguous outcome (config.on_ambiguous is resend)",
            ),
        }
    }
}

impl Made {
    /// The latency in whole milliseconds, as stored.
    pub fn latency_ms(&self) -> i32 {
        self.latency.as_millis().min(i32::MAX as u128) as i32
    }
}

impl Delivery {
    pub fn new(
        pool: DbPool,
        registry: Arc<ProviderRegistry>,
        policy: DeliveryPolicy,
        prices: Arc<PriceTable>,
    ) -> Self {
        Self {
            pool,
            registry,
            policy,
            metrics: None,
            wakeup: None,
            prices,
        }
    }

    /// An accepted send's cost: the provider's price (converted to USD) when it reported one,
    /// else the price table's for the provider kind, the destination and, for an SMS, the
    /// segments of the body as sent.
    fn priced(&self, prepared: &Prepared, reported: Option<&Price>) -> Priced {
        let outbound = &prepared.outbound;
        let shape = (outbound.channel == Channel::Sms).then(|| sms::segment(&outbound.body));
        let cost = self.prices.cost(
            reported,
            outbound.channel,
            prepared.provider.kind.parse().ok(),
            &outbound.recipient,
            shape.map_or(1, |s| s.segments),
        );
        Priced { cost, shape }
    }

    /// The price table sends are costed by.
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    /// The retry and circuit settings.
    pub fn policy(&self) -> &DeliveryPolicy {
        &self.policy
    }

    /// Counts and times every provider call.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Wakes the drainers after each commit that wrote events.
    pub fn with_wakeup(mut self, wakeup: Arc<Wakeup>) -> Self {
        self.wakeup = Some(wakeup);
        self
    }

    /// Call after a transaction that wrote events has committed.
    pub(super) fn committed_events(&self) {
        if let Some(wakeup) = &self.wakeup {
            wakeup.committed();
        }
    }

    /// Delivers one message as far as it can go now: a batch of one.
    pub async fn deliver(&self, message_id: Uuid) -> Result<Step, DeliveryError> {
        let mut steps = self.deliver_many(&[message_id], 1).await?;
        match steps.remove(&message_id) {
            Some(Ok(step)) => Ok(step),
            Some(Err(e)) => Err(DeliveryError::Batch(e)),
            None => Ok(Step::Skipped),
        }
    }

    /// Makes one prepared provider call. After an ambiguous outcome the provider is asked
    /// first, where it can be: a send it took is not made again. Where it cannot be asked,
    /// `config.on_ambiguous` decides: `resend` (the default) or `fail`.
    pub(super) async fn call(&self, prepared: Prepared) -> Made {
        let started = Instant::now();
        let mut settled = None;
        let outcome = match self.registry.client(&prepared.provider) {
            Ok(client) => match prepared.after_ambiguous {
                None => client.send(&prepared.outbound).await,
                Some(since) => match client.lookup(&prepared.outbound, since).await {
                    Lookup::Found {
                        provider_message_id,
                    } => {
                        settled = Some(Settled::Found);
                        SendOutcome::Accepted {
                            provider_message_id,
                            price: None,
                        }
                    }
                    Lookup::NotFound => {
                        settled = Some(Settled::ResentNotFound);
                        client.send(&prepared.outbound).await
                    }
                    Lookup::Unsupported | Lookup::Failed(_)
                        if fails_on_ambiguous(&prepared.provider) =>
                    {
                        SendOutcome::PermanentFailure {
                            code: AMBIGUOUS_OUTCOME.into(),
                            message: "the provider may have taken the earlier try and cannot \
                                      be asked; config.on_ambiguous is fail"
                                .into(),
                        }
                    }
                    Lookup::Unsupported | Lookup::Failed(_) => {
                        settled = Some(Settled::Resent);
                        client.send(&prepared.outbound).await
                    }
                },
            },
            Err(e) => SendOutcome::PermanentFailure {
                code: "PROVIDER_MISCONFIGURED".into(),
                message: e.to_string(),
            },
        };
        let latency = started.elapsed();
        if let Some(metrics) = &self.metrics {
            metrics.record_provider_call(&prepared.provider.kind, outcome.as_str(), latency);
        }
        let priced = match &outcome {
            SendOutcome::Accepted { price, .. } => Some(self.priced(&prepared, price.as_ref())),
            _ => None,
        };
        Made {
            prepared,
            outcome,
            latency,
            settled,
            priced,
        }
    }
}

/// Whether the provider's `config.on_ambiguous` is `fail`.
fn fails_on_ambiguous(provider: &Provider) -> bool {
    provider
        .config
        .get(ON_AMBIGUOUS)
        .and_then(serde_json::Value::as_str)
        == Some("fail")
}
