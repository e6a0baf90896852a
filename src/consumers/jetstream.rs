//! The consumed topics on JetStream: one durable pull consumer per topic, explicit acks. A
//! failed event is redelivered after a short delay, up to `CONSUMER_MAX_ATTEMPTS` times (the
//! consumer's own delivery count), then recorded as poison and acknowledged.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, Consumer, pull};
use futures_util::StreamExt;

use super::{ConsumerDeps, Settled, Topic, settle};
use crate::outbox::CloudEvent;
use crate::outbox::bus::NatsBus;

/// How long a failed event waits before it is delivered again.
const REDELIVERY_DELAY: Duration = Duration::from_secs(2);

/// Starts one consumer per consumed topic.
pub fn start(nats: &NatsBus, deps: ConsumerDeps) -> anyhow::Result<()> {
    let handle = crate::db::connection_runtime()?;
    let deps = Arc::new(deps);
    for topic in Topic::ALL {
        let jetstream = (*nats.jetstream).clone();
        let subject = format!("{}{}", nats.prefix, topic.topic());
        let stream = nats.stream.clone();
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
                // Unbounded here: the last attempt records the event as poison, and a poison
                // record the database does not take yet must be tried again.
                max_deliver: -1,
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        let (attempt, location) = match message.info() {
            Ok(info) => (
                u32::try_from(info.delivered).unwrap_or(u32::MAX),
                format!("jetstream:{}:{}", info.stream, info.stream_sequence),
            ),
            Err(_) => (1, format!("jetstream:{subject}")),
        };
        let event =
            serde_json::from_slice::<CloudEvent>(&message.payload).map_err(|e| e.to_string());
        match settle(
            deps,
            topic,
            event,
            &message.payload,
            &location,
            attempt.min(deps.max_attempts),
        )
        .await
        {
            Settled::Done => message
                .ack()
                .await
                .map_err(|e| anyhow::anyhow!("ack failed: {e}"))?,
            Settled::Retry => {
                let _ = message
                    .ack_with(async_nats::jetstream::AckKind::Nak(Some(REDELIVERY_DELAY)))
                    .await;
            }
        }
    }
    Ok(())
}
