//! Durable JetStream consumers of the topics this service consumes. Each event is handled in a
//! transaction that first records its id in `consumed_events`, so a redelivered event (JetStream
//! delivers at least once) is recognised and only acknowledged.

pub mod inbound;
pub mod notify;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, Consumer, pull};
use futures_util::StreamExt;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::DbPool;
use crate::db::schema::consumed_events;
use crate::metrics::Metrics;
use crate::outbox::{CloudEvent, EventBus, Wakeup, topics};
use crate::rate_limit::RateLimits;

/// What the consumers need: the pool, the plan-tier gate, the metrics they count in, and the
/// drainers' wake-up for the events their work commits.
#[derive(Clone)]
pub struct ConsumerDeps {
    pub pool: DbPool,
    pub rate_limits: Arc<RateLimits>,
    pub metrics: Arc<Metrics>,
    pub wakeup: Arc<Wakeup>,
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

/// Starts the consumers on the background runtime when the bus is NATS.
pub fn start(bus: &EventBus, deps: ConsumerDeps) -> anyhow::Result<()> {
    let EventBus::Nats {
        jetstream,
        stream,
        prefix,
    } = bus
    else {
        return Ok(());
    };
    let handle = crate::db::connection_runtime()?;
    let deps = Arc::new(deps);
    for topic in Topic::ALL {
        let jetstream = (**jetstream).clone();
        let subject = format!("{prefix}{}", topic.topic());
        let stream = stream.clone();
        let deps = deps.clone();
        handle.spawn(async move {
            loop {
                if let Err(e) = consume(&jetstream, &stream, &subject, topic, &deps).await {
                    tracing::warn!(error = %e, subject = %subject, "consumer stopped; restarting");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
    Ok(())
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

async fn consume(
    jetstream: &async_nats::jetstream::Context,
    stream: &str,
    subject: &str,
    topic: Topic,
    deps: &ConsumerDeps,
) -> anyhow::Result<()> {
    let durable = topic.durable();
    let stream = jetstream.get_stream(stream).await?;
    let consumer: Consumer<pull::Config> = stream
        .get_or_create_consumer(
            durable,
            pull::Config {
                durable_name: Some(durable.to_owned()),
                filter_subject: subject.to_owned(),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_deliver: 20,
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        let event: Result<CloudEvent, _> = serde_json::from_slice(&message.payload);
        let result = match event {
            Ok(event) => topic.handle(deps, &event).await,
            Err(e) => {
                tracing::warn!(error = %e, "a consumed event is not a CloudEvent; dropped");
                Ok(Consumed::Done {
                    outcome: "malformed",
                    detail: Some(e.to_string()),
                })
            }
        };
        let outcome = match &result {
            Ok(Consumed::Done { outcome, .. }) => outcome,
            Ok(Consumed::Duplicate) => "duplicate",
            Err(_) => "failed",
        };
        deps.metrics.record_consumed(topic.topic(), outcome);
        match result {
            Ok(consumed) => {
                tracing::debug!(?consumed, "consumed event handled");
                message
                    .ack()
                    .await
                    .map_err(|e| anyhow::anyhow!("ack failed: {e}"))?;
            }
            Err(e) => {
                tracing::warn!(error = %e, "consumed event failed; it will be redelivered");
                let _ = message
                    .ack_with(async_nats::jetstream::AckKind::Nak(Some(
                        Duration::from_secs(2),
                    )))
                    .await;
            }
        }
    }
    Ok(())
}
