//! The outbox handler that starts delivery of an accepted message.

use std::sync::Arc;

use async_trait::async_trait;

use super::Delivery;
use crate::outbox::store::ClaimedEvent;
use crate::outbox::{EventHandler, topics};

/// Delivers the message of each `communication.requested` event (the event's aggregate).
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
        self.handle_batch(std::slice::from_ref(event), 1)
            .await
            .pop()
            .unwrap_or(Ok(()))
    }

    /// Delivers the whole batch with shared statements (`Delivery::deliver_many`).
    async fn handle_batch(
        &self,
        events: &[ClaimedEvent],
        concurrency: usize,
    ) -> Vec<Result<(), String>> {
        let ids: Vec<_> = events.iter().map(|e| e.aggregate_id).collect();
        match self.delivery.deliver_many(&ids, concurrency).await {
            Ok(steps) => ids
                .iter()
                .map(|id| match steps.get(id) {
                    Some(Ok(_)) | None => Ok(()),
                    Some(Err(e)) => Err(e.clone()),
                })
                .collect(),
            Err(e) => {
                let error = e.to_string();
                events.iter().map(|_| Err(error.clone())).collect()
            }
        }
    }
}
