//! The outbox handler that starts delivery of an accepted message.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::Delivery;
use crate::domain::ids::MessageId;
use crate::outbox::store::ClaimedEvent;
use crate::outbox::{EventHandler, topics};

/// Delivers the message of each `communication.requested` event.
pub struct DeliveryHandler {
    delivery: Arc<Delivery>,
}

impl DeliveryHandler {
    pub fn new(delivery: Arc<Delivery>) -> Self {
        Self { delivery }
    }
}

#[async_trait]
impl EventHandler for DeliveryHandler {
    fn name(&self) -> &'static str {
        "delivery"
    }

    fn wants(&self, topic: &str) -> bool {
        topic == topics::COMMUNICATION_REQUESTED
    }

    async fn handle(&self, event: &ClaimedEvent) -> Result<(), String> {
        let id = event.payload["data"]["messageId"]
            .as_str()
            .and_then(MessageId::parse)
            .ok_or_else(|| "the event names no message".to_owned())?;
        self.delivery
            .deliver(id.uuid())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Delivers the whole batch with shared statements (`Delivery::deliver_many`).
    async fn handle_batch(
        &self,
        events: &[ClaimedEvent],
        concurrency: usize,
    ) -> Vec<Result<(), String>> {
        let ids: Vec<Option<Uuid>> = events
            .iter()
            .map(|e| {
                e.payload["data"]["messageId"]
                    .as_str()
                    .and_then(MessageId::parse)
                    .map(|id| id.uuid())
            })
            .collect();
        let wanted: Vec<Uuid> = ids.iter().flatten().copied().collect();
        let steps = match self.delivery.deliver_many(&wanted, concurrency).await {
            Ok(steps) => steps,
            Err(e) => {
                let error = e.to_string();
                return events.iter().map(|_| Err(error.clone())).collect();
            }
        };
        ids.iter()
            .map(|id| match id {
                None => Err("the event names no message".to_owned()),
                Some(id) => match steps.get(id) {
                    Some(Ok(_)) | None => Ok(()),
                    Some(Err(e)) => Err(e.clone()),
                },
            })
            .collect()
    }
}
