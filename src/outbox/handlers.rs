//! The in-process consumers of outbox events.

use std::sync::Arc;

use super::EventHandler;
use crate::db::DbPool;
use crate::delivery::{Delivery, DeliveryHandler};
use crate::webhooks::WebhookFanOut;

/// Every in-process handler of this process: delivery of accepted messages, and the fan-out
/// of lifecycle events to tenant webhooks.
pub fn in_process(delivery: &Arc<Delivery>, pool: &DbPool) -> Vec<Arc<dyn EventHandler>> {
    vec![
        Arc::new(DeliveryHandler::new(delivery.clone())),
        WebhookFanOut::new(pool.clone()),
    ]
}
