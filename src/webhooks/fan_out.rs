//! The outbox handler that turns each subscribed lifecycle event into one delivery row per
//! active subscribed webhook.

use std::sync::Arc;

use async_trait::async_trait;

use crate::db::DbPool;
use crate::db::webhook_deliveries as store;
use crate::domain::webhook::WEBHOOK_TOPICS;
use crate::outbox::EventHandler;
use crate::outbox::store::ClaimedEvent;

/// The outbox handler that creates the deliveries of each lifecycle event.
pub struct WebhookFanOut {
    pool: DbPool,
}

impl WebhookFanOut {
    pub fn new(pool: DbPool) -> Arc<Self> {
        Arc::new(Self { pool })
    }
}

#[async_trait]
impl EventHandler for WebhookFanOut {
    fn name(&self) -> &'static str {
        "webhooks"
    }

    fn wants(&self, topic: &str) -> bool {
        WEBHOOK_TOPICS.contains(&topic)
    }

    async fn handle(&self, event: &ClaimedEvent) -> Result<(), String> {
        let Some(tenant_id) = event.tenant_id else {
            return Ok(());
        };
        let event_id = event.event_id();
        let row = store::FanOutEvent {
            tenant_id,
            event_id: &event_id,
            topic: &event.topic,
            payload: &event.payload,
        };
        let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
        store::fan_out_many(&mut conn, &[row])
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Fans out the whole batch in one statement.
    async fn handle_batch(
        &self,
        events: &[ClaimedEvent],
        _concurrency: usize,
    ) -> Vec<Result<(), String>> {
        let ids: Vec<String> = events.iter().map(ClaimedEvent::event_id).collect();
        let rows: Vec<store::FanOutEvent<'_>> = events
            .iter()
            .zip(&ids)
            .filter_map(|(e, id)| {
                Some(store::FanOutEvent {
                    tenant_id: e.tenant_id?,
                    event_id: id,
                    topic: &e.topic,
                    payload: &e.payload,
                })
            })
            .collect();
        let outcome = match self.pool.get().await {
            Ok(mut conn) => store::fan_out_many(&mut conn, &rows)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        events.iter().map(|_| outcome.clone()).collect()
    }
}
