//! Durable JetStream consumers of the topics this service consumes. Each event is handled in a
//! transaction that first records its id in `consumed_events`, so a redelivered event (JetStream
//! delivers at least once) is recognised and only acknowledged.

pub mod notify;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, Consumer, pull};
use futures_util::StreamExt;

use crate::db::DbPool;
use crate::outbox::{CloudEvent, EventBus, topics};

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

/// Starts the consumers on the background runtime when the bus is NATS.
pub fn start(bus: &EventBus, pool: DbPool) -> anyhow::Result<()> {
    let EventBus::Nats {
        jetstream,
        stream,
        prefix,
    } = bus
    else {
        return Ok(());
    };
    let handle = crate::db::connection_runtime()?;
    let jetstream = (**jetstream).clone();
    let subject = format!("{prefix}{}", topics::NOTIFY_TRANSACTIONAL_REQUESTED);
    let stream = stream.clone();
    let pool = Arc::new(pool);
    handle.spawn(async move {
        loop {
            if let Err(e) = consume(
                &jetstream,
                &stream,
                &subject,
                "cpaas-notify-transactional",
                &pool,
            )
            .await
            {
                tracing::warn!(error = %e, subject = %subject, "consumer stopped; restarting");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    Ok(())
}

async fn consume(
    jetstream: &async_nats::jetstream::Context,
    stream: &str,
    subject: &str,
    durable: &str,
    pool: &DbPool,
) -> anyhow::Result<()> {
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
            Ok(event) => notify::handle(pool, &event).await,
            Err(e) => {
                tracing::warn!(error = %e, "a consumed event is not a CloudEvent; dropped");
                Ok(Consumed::Done {
                    outcome: "malformed",
                    detail: Some(e.to_string()),
                })
            }
        };
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
