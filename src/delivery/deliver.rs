//! The delivery service: the provider clients, the policy, and the provider call itself. Every
//! delivery, of one message or of a drained batch, goes through the batch path
//! (`batch.rs`): one state machine, one set of statements.

use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::policy::{DeliveryError, DeliveryPolicy, Step};
use crate::db::DbPool;
use crate::db::providers::Provider;
use crate::metrics::Metrics;
use crate::providers::registry::ProviderRegistry;
use crate::providers::{OutboundMessage, SendOutcome};

/// The delivery service.
pub struct Delivery {
    pub(super) pool: DbPool,
    registry: Arc<ProviderRegistry>,
    pub(super) policy: DeliveryPolicy,
    metrics: Option<Arc<Metrics>>,
}

/// An attempt committed and ready to be made.
pub(super) struct Prepared {
    pub message_id: Uuid,
    pub attempt_id: Uuid,
    pub provider: Provider,
    pub outbound: OutboundMessage,
}

/// An attempt made: what the provider answered, and how long it took.
pub(super) struct Made {
    pub prepared: Prepared,
    pub outcome: SendOutcome,
    pub latency: Duration,
}

impl Made {
    /// The latency in whole milliseconds, as stored.
    pub fn latency_ms(&self) -> i32 {
        self.latency.as_millis().min(i32::MAX as u128) as i32
    }
}

impl Delivery {
    pub fn new(pool: DbPool, registry: Arc<ProviderRegistry>, policy: DeliveryPolicy) -> Self {
        Self {
            pool,
            registry,
            policy,
            metrics: None,
        }
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

    /// Delivers one message as far as it can go now: a batch of one.
    pub async fn deliver(&self, message_id: Uuid) -> Result<Step, DeliveryError> {
        let mut steps = self.deliver_many(&[message_id], 1).await?;
        match steps.remove(&message_id) {
            Some(Ok(step)) => Ok(step),
            Some(Err(e)) => Err(DeliveryError::Batch(e)),
            None => Ok(Step::Skipped),
        }
    }

    /// Makes one prepared provider call.
    pub(super) async fn call(&self, prepared: Prepared) -> Made {
        let started = Instant::now();
        let outcome = match self.registry.client(&prepared.provider) {
            Ok(client) => client.send(&prepared.outbound).await,
            Err(e) => SendOutcome::PermanentFailure {
                code: "PROVIDER_MISCONFIGURED".into(),
                message: e.to_string(),
            },
        };
        let latency = started.elapsed();
        if let Some(metrics) = &self.metrics {
            metrics.record_provider_call(&prepared.provider.kind, outcome.as_str(), latency);
        }
        Made {
            prepared,
            outcome,
            latency,
        }
    }
}
