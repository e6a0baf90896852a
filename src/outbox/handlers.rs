//! The in-process consumers of outbox events.

use std::sync::Arc;

use super::EventHandler;
use crate::config::Settings;
use crate::db::DbPool;

/// Every in-process handler of this process.
pub fn in_process(_pool: &DbPool, _settings: &Settings) -> Vec<Arc<dyn EventHandler>> {
    Vec::new()
}
