//! A process's stop: once `stop` is called no new work starts (drains claim nothing, jobs do
//! not run), and `drained` waits, up to a deadline, for the work already running to finish
//! and be recorded. Every piece of work holds a `Working` guard while it runs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// The stop signal and the count of work in flight.
#[derive(Debug, Default)]
pub struct Lifecycle {
    stopping: AtomicBool,
    active: AtomicUsize,
    idle: Notify,
}

/// Held by a piece of work while it runs.
#[derive(Debug)]
pub struct Working<'a>(&'a Lifecycle);

impl Drop for Working<'_> {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Lifecycle {
    /// Starts a piece of work; `None` once the process is stopping.
    pub fn enter(&self) -> Option<Working<'_>> {
        self.active.fetch_add(1, Ordering::AcqRel);
        let working = Working(self);
        if self.is_stopping() {
            return None;
        }
        Some(working)
    }

    /// Whether the process is stopping (running work should take nothing new).
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Stops new work from starting.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Work running now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Waits until no work runs, or `deadline` has passed; true when none runs.
    pub async fn drained(&self, deadline: Duration) -> bool {
        let wait = async {
            loop {
                let idle = self.idle.notified();
                if self.active() == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(deadline, wait).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stopping_refuses_new_work_and_waits_for_running_work() {
        let life = std::sync::Arc::new(Lifecycle::default());
        let running = life.enter().map(|_| ());
        assert!(running.is_some());
        let held = life.clone();
        let worker = tokio::spawn(async move {
            let _working = held.enter();
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        life.stop();
        assert!(life.enter().is_none(), "no new work once stopping");
        assert!(!life.drained(Duration::from_millis(20)).await);
        assert!(life.drained(Duration::from_secs(2)).await);
        worker.await.unwrap();
        assert_eq!(life.active(), 0);
    }
}
