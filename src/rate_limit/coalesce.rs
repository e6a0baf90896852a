//! One-message admissions on one bucket, coalesced within a process. While a request has the
//! bucket's statement in flight, the requests arriving behind it queue; when it returns, the
//! first of them takes units for the whole queue in one statement, granting as many as the
//! bucket holds in arrival order. Every unit granted goes to exactly one admitted request, so
//! the count stays exact across replicas; a busy tenant's sends make one statement per batch
//! instead of one each, and their bucket row is updated once per batch.
//!
//! Cancel-safe: a leader dropped before it answers hands its batch back to the queue, and the
//! next request in line leads. (Units its statement had already granted are then lost to the
//! window; the bucket never admits more than its capacity.)

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use diesel_async::AsyncPgConnection;
use tokio::sync::oneshot;

use crate::db::rate_limits::{self, Granted, Take};
use crate::metrics::Metrics;

/// What one request was given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// Admitted, with the units left in the bucket after it (the units of requests admitted
    /// after it in the same batch count as left).
    Admitted { remaining: i32 },
    /// Refused; one unit comes back in `wait_secs`.
    Refused { wait_secs: f64 },
}

/// What a queued request is told.
enum Turn {
    Answered(Outcome),
    /// Take the queue and make its statement.
    Lead,
    /// The batch's statement failed on its leader's connection: make one of your own.
    Alone,
}

#[derive(Default)]
struct Queue {
    /// A request of this process is making (or about to make) the bucket's statement.
    leading: bool,
    waiting: VecDeque<oneshot::Sender<Turn>>,
}

/// The queues of the buckets this process is taking from.
#[derive(Default)]
pub struct Coalescer {
    queues: Mutex<HashMap<String, Queue>>,
    metrics: Option<Arc<Metrics>>,
}

impl Coalescer {
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// One statement on the bucket, counted.
    pub async fn statement(
        &self,
        conn: &mut AsyncPgConnection,
        take: &Take<'_>,
    ) -> diesel::QueryResult<Granted> {
        if let Some(metrics) = &self.metrics {
            metrics.record_rate_limit_statement();
        }
        rate_limits::take(conn, take).await
    }

    fn queues(&self) -> MutexGuard<'_, HashMap<String, Queue>> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one unit of `take`'s bucket (its `units` are ignored) for one request.
    pub async fn take_one(
        &self,
        conn: &mut AsyncPgConnection,
        take: &Take<'_>,
    ) -> diesel::QueryResult<Outcome> {
        let queued = {
            let mut queues = self.queues();
            let queue = queues.entry(take.key.to_owned()).or_default();
            if queue.leading {
                let (tx, rx) = oneshot::channel();
                queue.waiting.push_back(tx);
                Some(rx)
            } else {
                queue.leading = true;
                None
            }
        };
        if let Some(turn) = queued {
            match turn.await {
                Ok(Turn::Answered(outcome)) => return Ok(outcome),
                Ok(Turn::Lead) => {}
                Ok(Turn::Alone) | Err(_) => return self.alone(conn, take).await,
            }
        }
        self.lead(conn, take).await
    }

    /// Makes the statement for this request and every one queued behind it, answers them, and
    /// hands the bucket on to the next in line.
    async fn lead(
        &self,
        conn: &mut AsyncPgConnection,
        take: &Take<'_>,
    ) -> diesel::QueryResult<Outcome> {
        let mut batch = Batch {
            coalescer: self,
            key: take.key,
            followers: self.followers(take.key),
        };
        let units = 1 + batch.followers.len() as i32;
        let result = self
            .statement(
                conn,
                &Take {
                    units,
                    all_or_none: false,
                    ..*take
                },
            )
            .await;
        let followers = std::mem::take(&mut batch.followers);
        match result {
            Ok(granted) => {
                for (i, follower) in followers.into_iter().enumerate() {
                    let _ = follower.send(Turn::Answered(outcome(take, &granted, i + 1)));
                }
                Ok(outcome(take, &granted, 0))
            }
            Err(err) => {
                for follower in followers {
                    let _ = follower.send(Turn::Alone);
                }
                Err(err)
            }
        }
    }

    /// The requests queued on `key` that are still waiting, taken off the queue.
    fn followers(&self, key: &str) -> Vec<oneshot::Sender<Turn>> {
        let mut queues = self.queues();
        let Some(queue) = queues.get_mut(key) else {
            return Vec::new();
        };
        queue
            .waiting
            .drain(..)
            .filter(|tx| !tx.is_closed())
            .collect()
    }

    /// Passes the lead on `key` to the first request still waiting, or ends it.
    fn hand_on(&self, key: &str, unanswered: Vec<oneshot::Sender<Turn>>) {
        let mut queues = self.queues();
        let Some(queue) = queues.get_mut(key) else {
            return;
        };
        for tx in unanswered.into_iter().rev() {
            queue.waiting.push_front(tx);
        }
        while let Some(next) = queue.waiting.pop_front() {
            if next.send(Turn::Lead).is_ok() {
                return;
            }
        }
        queues.remove(key);
    }

    /// One request's own statement, all or nothing.
    async fn alone(
        &self,
        conn: &mut AsyncPgConnection,
        take: &Take<'_>,
    ) -> diesel::QueryResult<Outcome> {
        let one = Take {
            units: 1,
            all_or_none: true,
            ..*take
        };
        let granted = self.statement(conn, &one).await?;
        Ok(outcome(&one, &granted, 0))
    }
}

/// A leader's batch; dropping it (answered or not) hands the bucket on.
struct Batch<'a> {
    coalescer: &'a Coalescer,
    key: &'a str,
    /// Followers not answered yet.
    followers: Vec<oneshot::Sender<Turn>>,
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        let unanswered = std::mem::take(&mut self.followers);
        self.coalescer.hand_on(self.key, unanswered);
    }
}

/// The outcome of the `i`th request of a batch that was granted `granted`.
fn outcome(take: &Take<'_>, granted: &Granted, i: usize) -> Outcome {
    let admitted = granted.units.max(0) as usize;
    if i < admitted {
        Outcome::Admitted {
            remaining: granted.remaining(take) + (admitted - 1 - i) as i32,
        }
    } else {
        Outcome::Refused {
            wait_secs: granted.wait_secs(take, 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_admitted_in_order_with_counts_that_follow_each_other() {
        let take = Take {
            all_or_none: false,
            ..Take::per_minute("k", 1, 10)
        };
        // Four asked, three granted, the bucket then empty.
        let granted = Granted {
            units: 3,
            ahead_secs: 60.0,
        };
        let outcomes: Vec<Outcome> = (0..4).map(|i| outcome(&take, &granted, i)).collect();
        assert_eq!(
            outcomes[..3],
            [
                Outcome::Admitted { remaining: 2 },
                Outcome::Admitted { remaining: 1 },
                Outcome::Admitted { remaining: 0 },
            ]
        );
        assert_eq!(outcomes[3], Outcome::Refused { wait_secs: 6.0 });
    }

    #[test]
    fn the_lead_passes_to_the_first_request_still_waiting() {
        let coalescer = Coalescer::default();
        let (gone, gone_rx) = oneshot::channel();
        drop(gone_rx);
        let (next, mut next_rx) = oneshot::channel();
        let (last, mut last_rx) = oneshot::channel();
        coalescer.queues().insert(
            "k".into(),
            Queue {
                leading: true,
                waiting: VecDeque::from([last]),
            },
        );
        // A cancelled leader gives back its unanswered followers ahead of the queue.
        coalescer.hand_on("k", vec![gone, next]);
        assert!(matches!(next_rx.try_recv(), Ok(Turn::Lead)));
        assert!(last_rx.try_recv().is_err(), "the last one still waits");
        assert_eq!(coalescer.queues()["k"].waiting.len(), 1);
        drop(last_rx);
        coalescer.hand_on("k", Vec::new());
        assert!(
            coalescer.queues().is_empty(),
            "no one left: the queue is gone"
        );
    }
}
