//! The event bus, chosen by `EVENT_BUS`: NATS JetStream (`nats.rs`), Kafka (`kafka.rs`), or a
//! log sink that writes each event as one JSON line.

pub mod kafka;
pub mod nats;

use serde_json::Value;

pub use kafka::KafkaBus;
pub use nats::{NatsAuth, NatsBus};

/// One event to publish.
pub struct Publication<'a> {
    pub event_id: &'a str,
    pub topic: &'a str,
    pub payload: &'a Value,
}

/// Where events go.
pub enum EventBus {
    Nats(NatsBus),
    Kafka(Box<KafkaBus>),
    Log,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventBus::Nats(nats) => write!(f, "EventBus::Nats({})", nats.stream),
            EventBus::Kafka(kafka) => write!(f, "EventBus::Kafka({})", kafka.settings().brokers),
            EventBus::Log => f.write_str("EventBus::Log"),
        }
    }
}

impl EventBus {
    /// `nats`, `kafka` or `log`.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBus::Nats(_) => "nats",
            EventBus::Kafka(_) => "kafka",
            EventBus::Log => "log",
        }
    }

    /// Whether the bus answers (for readiness).
    pub async fn check(&self) -> Result<(), String> {
        match self {
            EventBus::Nats(nats) => nats.check().await,
            EventBus::Kafka(kafka) => kafka.check().await,
            EventBus::Log => Ok(()),
        }
    }

    /// Publishes every event; one result per event, in order, each `Ok` only once the bus
    /// acknowledged it.
    pub async fn publish(&self, events: &[Publication<'_>]) -> Vec<Result<(), String>> {
        match self {
            EventBus::Nats(nats) => nats.publish(events).await,
            EventBus::Kafka(kafka) => kafka.publish(events).await,
            EventBus::Log => events
                .iter()
                .map(|e| {
                    tracing::info!(target: "cpaas::events", topic = e.topic, event_id = e.event_id, "{}", e.payload);
                    Ok(())
                })
                .collect(),
        }
    }
}
