//! Waking the drainers once events are committed, without a `NOTIFY` in the transaction that
//! wrote them. A `NOTIFY` takes a database-wide lock at commit, so every transaction carrying
//! one queues behind every other; on the send path that caps every tenant's throughput.
//!
//! Instead, whoever commits events calls [`Wakeup::committed`] afterwards: the drainer of this
//! process is woken in-process at once, and the drainers of the other replicas by one
//! `NOTIFY` (its payload this process's id, so the process ignores its own) sent on its own at
//! most once per [`COALESCE`], however many commits there were meanwhile. Drainers also poll
//! (`OUTBOX_POLL_INTERVAL_MS`), so a wake-up that is lost delays events, never loses them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel_async::SimpleAsyncConnection;
use tokio::sync::Notify;
use uuid::Uuid;

use super::NOTIFY_CHANNEL;
use crate::db::DbPool;

/// The longest a commit waits for the `NOTIFY` that wakes the other replicas.
pub const COALESCE: Duration = Duration::from_millis(5);

/// Ends the payload of a `NOTIFY` that announces high-lane events.
pub const URGENT_SUFFIX: &str = ":high";

/// What a replica's `NOTIFY` announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announced {
    /// This process sent it: it woke in-process already.
    Own,
    /// Another replica committed events.
    Events,
    /// Another replica committed events of the high lane.
    Urgent,
}

/// Wake-ups of this process's drainer and of the other replicas'.
#[derive(Debug)]
pub struct Wakeup {
    instance: String,
    local: Notify,
    urgent: Notify,
    remote: Notify,
    remote_urgent: AtomicBool,
}

impl Wakeup {
    /// A wake-up for this process; `announce` must run for the other replicas to hear it.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            instance: Uuid::new_v4().simple().to_string(),
            local: Notify::new(),
            urgent: Notify::new(),
            remote: Notify::new(),
            remote_urgent: AtomicBool::new(false),
        })
    }

    /// This process's id, the payload of its `NOTIFY`s.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Call after a transaction that wrote outbox events has committed.
    pub fn committed(&self) {
        self.local.notify_one();
        self.remote.notify_one();
    }

    /// Call instead of [`Wakeup::committed`] when the transaction wrote high-lane events.
    pub fn committed_urgent(&self) {
        self.urgent.notify_one();
        self.remote_urgent.store(true, Ordering::Release);
        self.committed();
    }

    /// Resolves at the next commit of this process (at once if one came since the last call).
    pub async fn next_local(&self) {
        self.local.notified().await;
    }

    /// Resolves at the next commit of high-lane events of this process.
    pub async fn next_urgent(&self) {
        self.urgent.notified().await;
    }

    /// What a `NOTIFY` payload received on the channel announces.
    pub fn announced(&self, payload: &str) -> Announced {
        let (sender, urgent) = match payload.strip_suffix(URGENT_SUFFIX) {
            Some(sender) => (sender, true),
            None => (payload, false),
        };
        match (sender == self.instance, urgent) {
            (true, _) => Announced::Own,
            (false, true) => Announced::Urgent,
            (false, false) => Announced::Events,
        }
    }

    /// Sends the other replicas' wake-ups, coalesced, until the pool closes: after a commit,
    /// waits [`COALESCE`] (the commits meanwhile ride on the same `NOTIFY`), then sends one.
    pub async fn announce(self: Arc<Self>, pool: DbPool) {
        let statement = format!("NOTIFY {NOTIFY_CHANNEL}, '{}'", self.instance);
        let urgent = format!(
            "NOTIFY {NOTIFY_CHANNEL}, '{}{URGENT_SUFFIX}'",
            self.instance
        );
        loop {
            self.remote.notified().await;
            tokio::time::sleep(COALESCE).await;
            if pool.is_closed() {
                return;
            }
            let statement = if self.remote_urgent.swap(false, Ordering::AcqRel) {
                &urgent
            } else {
                &statement
            };
            let sent = match pool.get().await {
                Ok(mut conn) => conn
                    .batch_execute(statement)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(error) = sent {
                tracing::debug!(%error, "could not wake the other replicas; they poll");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_says_who_sent_it_and_whether_it_was_urgent() {
        let wakeup = Wakeup::new();
        let own = wakeup.instance().to_owned();
        assert_eq!(wakeup.announced(&own), Announced::Own);
        assert_eq!(
            wakeup.announced(&format!("{own}{URGENT_SUFFIX}")),
            Announced::Own
        );
        assert_eq!(wakeup.announced("0123abcd"), Announced::Events);
        assert_eq!(wakeup.announced("0123abcd:high"), Announced::Urgent);
    }
}
