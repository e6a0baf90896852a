//! The in-process consumers of outbox events.

use std::sync::Arc;

use super::EventHandler;
use crate::delivery::{Delivery, DeliveryHandler};

/// Every in-process handler of this process.
pub fn in_process(delivery: &Arc<Delivery>) -> Vec<Arc<dyn EventHandler>> {
    vec![Arc::new(DeliveryHandler::new(delivery.clone()))]
}
