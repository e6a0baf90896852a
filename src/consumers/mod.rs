//! Consumers of the topics this service consumes, on JetStream (`jetstream.rs`, durable pull
//! consumers) or Kafka (`kafka.rs`, a consumer group). Each event is handled in a transaction
//! that first records its id in `consumed_events`, so a redelivered event (both buses deliver
//! at least once) is recognised and only acknowledged. An event that is not a CloudEvent, or
//! whose handling fails on every attempt, is recorded as `poison` with what arrived and
//! skipped (`settle`), so it is never redelivered for ever.

pub mod inbound;
pub mod jetstream;
pub mod kafka;
pub mod notify;

use std::sync::Arc;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::DbPool;
use crate::db::schema::consumed_events;
use crate::metrics::Metrics;
use crate::outbox::{CloudEvent, EventBus, Wakeup, topics};

/// The most of a poison event's payload that is kept.
const POISON_PAYLOAD_MAX: usize = 64 * 1024;
use crate::rate_limit::RateLimits;

/// What the consumers need: the pool, the plan-tier gate, the metrics they count in, and the
/// drainers' wake-up for the events their work commits.
#[derive(Clone)]
pub struct ConsumerDeps {
    pub pool: DbPool,
    pub rate_limits: Arc<RateLimits>,
    pub metrics: Arc<Metrics>,
    pub wakeup: Arc<Wakeup>,
    /// Attempts at one event before it is recorded as poison and skipped.
    pub max_attempts: u32,
    /// The process's stop: a consumer takes no record once it stops (and the Kafka consumer
    /// commits its offsets then).
    pub lifecycle: Arc<crate::lifecycle::Lifecycle>,
}

/// What handling one consumed event came to.
#[derive(Debug)]
pub enum Consumed {
    /// Handled now.
    Done {
        outcome: &'static str,
        detail: Option<String>,
    },
    /// Seen before; nothing done.
    Duplicate,
}

/// The consumed topics, each with its durable consumer.
#[derive(Clone, Copy, Debug)]
enum Topic {
    NotifyRequested,
    SmsInbound,
}

impl Topic {
    const ALL: [Topic; 2] = [Topic::NotifyRequested, Topic::SmsInbound];

    /// The consumed topic of that name.
    fn named(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.topic() == name)
    }

    fn topic(self) -> &'static str {
        match self {
            Topic::NotifyRequested => topics::NOTIFY_TRANSACTIONAL_REQUESTED,
            Topic::SmsInbound => topics::SMS_INBOUND,
        }
    }

    fn durable(self) -> &'static str {
        match self {
            Topic::NotifyRequested => "cpaas-notify-transactional",
            Topic::SmsInbound => "cpaas-sms-inbound",
        }
    }

    /// Handles one event; what its work committed wakes the drainers.
    async fn handle(self, deps: &ConsumerDeps, event: &CloudEvent) -> anyhow::Result<Consumed> {
        let consumed = match self {
            Topic::NotifyRequested => notify::handle(deps, event).await,
            Topic::SmsInbound => inbound::handle(&deps.pool, event).await,
        }?;
        if matches!(consumed, Consumed::Done { .. }) {
            deps.wakeup.committed();
        }
        Ok(consumed)
    }
}

/// Starts the consumers of the bus on the background runtime (none on the log bus).
pub fn start(bus: &EventBus, deps: ConsumerDeps) -> anyhow::Result<()> {
    match bus {
        EventBus::Nats(nats) => jetstream::start(nats, deps),
        EventBus::Kafka(kafka) => kafka::start(kafka.settings(), deps),
        EventBus::Log => Ok(()),
    }
}

/// What to do with a record once `settle` is done with it.
#[derive(Debug, PartialEq, Eq)]
enum Settled {
    /// Handled, seen before, or recorded as poison: acknowledge it and go on.
    Done,
    /// Not handled: deliver it again later.
    Retry,
}

/// Handles one record from the bus: `event` as decoded (or why it is not a CloudEvent), `raw`
/// as it arrived, `location` where (for the poison record of a record without an id), and
/// `attempt`, counted from 1. A record that is not a CloudEvent, and one that fails its
/// `max_attempts`th attempt (or any later one), is recorded as poison and done; a failure
/// before that, or a poison record the database does not take, is retried.
async fn settle(
    deps: &ConsumerDeps,
    topic: Topic,
    event: Result<CloudEvent, String>,
    raw: &[u8],
    location: &str,
    attempt: u32,
) -> Settled {
    let name = topic.topic();
    let event = match event {
        Ok(event) => event,
        Err(reason) => {
            tracing::warn!(%location, %reason, "a consumed record is not a CloudEvent; recorded as poison");
            let poison = Poison {
                key: location,
                topic: name,
                tenant: None,
                reason: format!("not a CloudEvent: {reason}"),
                raw,
            };
            return poison.record(deps).await;
        }
    };
    let result = topic.handle(deps, &event).await;
    let outcome = match &result {
        Ok(Consumed::Done { outcome, .. }) => outcome,
        Ok(Consumed::Duplicate) => "duplicate",
        Err(_) => "failed",
    };
    deps.metrics.record_consumed(name, outcome);
    match result {
        Ok(consumed) => {
            tracing::debug!(?consumed, "consumed event handled");
            Settled::Done
        }
        Err(e) if attempt >= deps.max_attempts => {
            tracing::warn!(event_id = %event.id, error = %e, attempt,
                "a consumed event failed on every attempt; recorded as poison");
            let poison = Poison {
                key: &event.id,
                topic: name,
                tenant: tenant_of(&event),
                reason: format!("failed {attempt} times, last: {e}"),
                raw,
            };
            poison.record(deps).await
        }
        Err(e) => {
            tracing::warn!(event_id = %event.id, error = %e, attempt,
                "consumed event failed; it will be tried again");
            Settled::Retry
        }
    }
}

/// A record that is skipped, kept with what arrived.
struct Poison<'a> {
    key: &'a str,
    topic: &'a str,
    tenant: Option<Uuid>,
    reason: String,
    raw: &'a [u8],
}

impl Poison<'_> {
    async fn record(self, deps: &ConsumerDeps) -> Settled {
        let mut end = self.raw.len().min(POISON_PAYLOAD_MAX);
        let payload = loop {
            // Cut on a character boundary when the payload is text.
            match std::str::from_utf8(&self.raw[..end]) {
                Ok(text) => break text.to_owned(),
                Err(e) if e.error_len().is_none() && end > 0 => end = e.valid_up_to(),
                Err(_) => break String::from_utf8_lossy(&self.raw[..end]).into_owned(),
            }
        };
        // PostgreSQL text holds no NUL, and an event id may carry one (a JSON "\u0000").
        let text = |s: &str| s.replace('\0', "\u{FFFD}");
        let recorded = async {
            let mut conn = deps.pool.get().await.map_err(|e| e.to_string())?;
            diesel::insert_into(consumed_events::table)
                .values((
                    consumed_events::event_id.eq(text(self.key)),
                    consumed_events::topic.eq(self.topic),
                    consumed_events::tenant_id.eq(self.tenant),
                    consumed_events::outcome.eq("poison"),
                    consumed_events::detail.eq(text(&self.reason)),
                    consumed_events::payload.eq(text(&payload)),
                ))
                .on_conflict(consumed_events::event_id)
                .do_nothing()
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match recorded {
            Ok(_) => {
                deps.metrics.record_consumed(self.topic, "poison");
                Settled::Done
            }
            Err(e) => {
                tracing::warn!(error = %e, key = self.key, "cannot record a poison event; it will be tried again");
                Settled::Retry
            }
        }
    }
}

/// Records a consumed event id; false when it was recorded before (a redelivery).
pub(crate) async fn record(
    conn: &mut AsyncPgConnection,
    event: &CloudEvent,
    tenant: Option<Uuid>,
    outcome: &str,
    detail: Option<&str>,
) -> QueryResult<bool> {
    let inserted = diesel::insert_into(consumed_events::table)
        .values((
            consumed_events::event_id.eq(&event.id),
            consumed_events::topic.eq(&event.ty),
            consumed_events::tenant_id.eq(tenant),
            consumed_events::outcome.eq(outcome),
            consumed_events::detail.eq(detail),
        ))
        .on_conflict(consumed_events::event_id)
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

/// The tenant an event is about: `data.tenantId`, else the CloudEvent `subject`.
pub(crate) fn tenant_of(event: &CloudEvent) -> Option<Uuid> {
    event.data["tenantId"]
        .as_str()
        .and_then(|t| Uuid::parse_str(t).ok())
        .or_else(|| Uuid::parse_str(&event.subject).ok())
}
