//! The transactional outbox. A change and the event that describes it are written in one
//! PostgreSQL transaction (`enqueue` refuses a connection that is not inside one); after the
//! commit, [`Wakeup::committed`] wakes the drainers (`wake.rs`: no `NOTIFY` inside the
//! transaction). Events are delivered at least once, in creation order per aggregate.

pub mod bus;
pub mod event;
mod pipeline;
pub mod process;
pub mod store;
pub mod wake;

pub use bus::EventBus;
pub use event::{CloudEvent, topics};
pub use process::{DrainReport, EventHandler, Outbox, OutboxPolicy};
pub use wake::{Announced, Wakeup};

use diesel::prelude::*;
use diesel_async::{AnsiTransactionManager, TransactionManager};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::cached::CacheStatement;
use crate::db::schema::outbox_events;

/// The channel on which replicas wake each other's drainers (`wake.rs`).
pub const NOTIFY_CHANNEL: &str = "cpaas_outbox";

/// What the outbox needs to know about an event.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub aggregate_type: &'static str,
    pub aggregate_id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub event: CloudEvent,
    /// The drain lane (`Priority::lane`): lower lanes are served first.
    pub lane: i16,
}

/// An enqueue that could not happen.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("outbox events can only be written inside the transaction of the change they describe")]
    NotInTransaction,
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

impl From<EnqueueError> for crate::db::DbError {
    fn from(err: EnqueueError) -> Self {
        match err {
            EnqueueError::NotInTransaction => Self::Query(diesel::result::Error::NotInTransaction),
            EnqueueError::Query(e) => Self::Query(e),
        }
    }
}

impl From<EnqueueError> for crate::error::ApiError {
    fn from(err: EnqueueError) -> Self {
        match err {
            EnqueueError::Query(e) => e.into(),
            other => crate::error::ApiError::internal(other),
        }
    }
}

fn in_transaction(conn: &mut AsyncPgConnection) -> bool {
    match <AnsiTransactionManager as TransactionManager<AsyncPgConnection>>::transaction_manager_status_mut(conn)
        .transaction_depth()
    {
        Ok(depth) => depth.is_some(),
        Err(_) => false,
    }
}

#[derive(Insertable)]
#[diesel(table_name = outbox_events)]
struct NewOutboxRow<'a> {
    id: Uuid,
    tenant_id: Option<Uuid>,
    aggregate_type: &'a str,
    aggregate_id: Uuid,
    topic: &'a str,
    payload: serde_json::Value,
    lane: i16,
}

/// Writes events in the caller's transaction. Once it commits, the caller calls
/// [`Wakeup::committed`]; until then, nothing wakes the drainers but their polling.
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    events: &[OutboxEvent],
) -> Result<(), EnqueueError> {
    if !in_transaction(conn) {
        return Err(EnqueueError::NotInTransaction);
    }
    if events.is_empty() {
        return Ok(());
    }
    let rows: Vec<NewOutboxRow<'_>> = events
        .iter()
        .map(|e| NewOutboxRow {
            id: e.event.uuid(),
            tenant_id: e.tenant_id,
            aggregate_type: e.aggregate_type,
            aggregate_id: e.aggregate_id,
            topic: &e.event.ty,
            payload: e.event.to_value(),
            lane: e.lane,
        })
        .collect();
    for chunk in rows.chunks(5000) {
        match chunk {
            // One event: one SQL text, so its statement is kept.
            [row] => {
                diesel::insert_into(outbox_events::table)
                    .values(row)
                    .cached()
                    .execute(conn)
                    .await?
            }
            _ => {
                diesel::insert_into(outbox_events::table)
                    .values(chunk)
                    .execute(conn)
                    .await?
            }
        };
    }
    Ok(())
}
