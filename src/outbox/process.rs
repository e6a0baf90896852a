//! Draining the outbox: claim a batch, publish it to the bus, run the in-process handlers that
//! want each event, record each destination's progress, then complete, retry with capped
//! exponential backoff and jitter, or dead-letter. The OutboxActor, the internal endpoint and
//! the tests all call `Outbox::drain`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use futures_util::future::join_all;
use futures_util::stream::{self, FuturesUnordered, StreamExt};
use rand::Rng;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::bus::{EventBus, Publication};
use super::pipeline::{EXPRESS_DEPTH, HighLane};
use super::store::{self, ClaimedEvent, FailureFate, LOWEST_LANE};
use crate::config::Settings;
use crate::db::{DbError, DbPool};
use crate::lifecycle::Lifecycle;

/// The destination name of the event bus.
pub const BUS: &str = "bus";

/// An in-process consumer of outbox events. It must be idempotent: an event is delivered at
/// least once.
#[async_trait]
pub trait EventHandler: Send + Sync {
    /// The name its progress is recorded under.
    fn name(&self) -> &'static str;
    /// Whether it acts on events of this topic.
    fn wants(&self, topic: &str) -> bool;
    /// Acts on one event.
    async fn handle(&self, event: &ClaimedEvent) -> Result<(), String>;

    /// Acts on the events of one claimed batch that it wants; one result per event, in order.
    /// By default each event is handled on its own, `concurrency` at a time, and a panic fails
    /// only its event. A handler that can share work across events (one statement for many)
    /// overrides it.
    async fn handle_batch(
        &self,
        events: &[ClaimedEvent],
        concurrency: usize,
    ) -> Vec<Result<(), String>> {
        let runs: Vec<_> = events
            .iter()
            .map(|event| async move {
                match AssertUnwindSafe(self.handle(event)).catch_unwind().await {
                    Ok(outcome) => outcome,
                    Err(panic) => Err(format!("handler panicked: {}", panic_message(&panic))),
                }
            })
            .collect();
        stream::iter(runs)
            .buffered(concurrency.max(1))
            .collect()
            .await
    }
}

/// What one drain did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct DrainReport {
    pub claimed: i64,
    pub published: i64,
    pub failed: i64,
    pub dead_lettered: i64,
    /// Events whose lease expired during the batch and another drainer took; that one
    /// records them.
    pub lost: i64,
    /// Events still pending after the drain: counted for a caller that reports it (the
    /// drain endpoint), not by the drain itself (a count of a large backlog costs as much as
    /// a batch, and the drainer does not need it).
    pub remaining: i64,
}

/// Timing of retries and claims.
#[derive(Clone, Debug)]
pub struct OutboxPolicy {
    pub batch_size: i64,
    pub lease: Duration,
    pub max_attempts: i32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    pub handler_concurrency: usize,
}

impl OutboxPolicy {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            batch_size: s.outbox_batch_size,
            lease: s.outbox_lease,
            max_attempts: s.outbox_max_attempts,
            backoff_base: s.outbox_backoff_base,
            backoff_cap: s.outbox_backoff_cap,
            handler_concurrency: 64,
        }
    }

    /// Capped exponential backoff with jitter (between half and all of the step).
    pub fn backoff(&self, attempts: i32) -> Duration {
        let exp = 2f64.powi(attempts.clamp(0, 30));
        let step = (self.backoff_base.as_secs_f64() * exp).min(self.backoff_cap.as_secs_f64());
        Duration::from_secs_f64(step * rand::thread_rng().gen_range(0.5..=1.0))
    }
}

/// The outbox drainer of this process.
pub struct Outbox {
    pool: DbPool,
    bus: Arc<EventBus>,
    handlers: Vec<Arc<dyn EventHandler>>,
    owner: String,
    policy: OutboxPolicy,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// New events were committed while a drain runs.
    nudged: tokio::sync::Notify,
    /// New high-lane events were committed while a drain runs.
    urgent: tokio::sync::Notify,
    /// Once stopping, drains claim nothing new; running batches finish and are recorded.
    lifecycle: Arc<Lifecycle>,
    /// When a claim of this process last took high-lane events.
    high_lane: HighLane,
}

impl Outbox {
    pub fn new(
        pool: DbPool,
        bus: Arc<EventBus>,
        handlers: Vec<Arc<dyn EventHandler>>,
        policy: OutboxPolicy,
    ) -> Self {
        Self {
            pool,
            bus,
            handlers,
            owner: format!("{}-{}", std::process::id(), Uuid::new_v4().simple()),
            policy,
            metrics: None,
            nudged: tokio::sync::Notify::new(),
            urgent: tokio::sync::Notify::new(),
            lifecycle: Arc::default(),
            high_lane: HighLane::default(),
        }
    }

    /// Shares the process's stop: once it stops, drains claim nothing new.
    pub fn with_lifecycle(mut self, lifecycle: Arc<Lifecycle>) -> Self {
        self.lifecycle = lifecycle;
        self
    }

    /// Tells a running drain that new events were committed: one that is waiting on its
    /// in-flight batches after an empty claim claims again at once.
    pub fn nudge(&self) {
        self.nudged.notify_one();
    }

    /// Tells a running drain that high-lane events were committed: it claims them in an
    /// express batch of their own, even while its pipeline is full.
    pub fn nudge_urgent(&self) {
        self.urgent.notify_one();
    }

    /// Counts what each drain publishes, fails and dead-letters.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Drains up to `max_events` events whose time has come. Several batches are in flight
    /// (`pipeline`): the next claim runs while earlier batches wait on their handlers. Order
    /// per aggregate holds because an event stays PENDING (and blocks the later events of its
    /// aggregate) until it is completed.
    pub async fn drain(&self, max_events: i64) -> Result<DrainReport, DbError> {
        let mut report = DrainReport::default();
        let Some(_working) = self.lifecycle.enter() else {
            return Ok(report);
        };
        let mut in_flight = FuturesUnordered::new();
        // Claimed but not yet reported, so the drain never claims more than `max_events`.
        let mut reserved = 0i64;
        // A claim came back empty; no new claim until a batch that claimed something ends.
        let mut dry = false;
        // A batch had failures: no new claim, so an event that just failed is not claimed again
        // (its backoff may be shorter than a batch) and a destination that is down is not
        // hammered within one drain.
        let mut stop = false;
        let mut failure: Option<DbError> = None;
        // Express claims (the high lane alone) in flight.
        let mut express = 0usize;
        loop {
            // While express batches run, no new batch of the other lanes starts: the high
            // lane's statements meet less of the bulk's load.
            while !stop
                && !dry
                && express == 0
                && !self.lifecycle.is_stopping()
                && in_flight.len() < self.high_lane.depth()
                && report.claimed + reserved < max_events
            {
                let limit = self
                    .policy
                    .batch_size
                    .min(max_events - report.claimed - reserved);
                reserved += limit;
                in_flight.push(
                    async move { (limit, false, self.drain_batch(limit, LOWEST_LANE).await) }
                        .boxed(),
                );
            }
            if in_flight.is_empty() {
                break;
            }
            // While batches are in flight, new events wake a drain whose last claim was empty,
            // and high-lane events get an express claim even when the pipeline is full, so a
            // one-time code waits for a claim, not for the slowest batch of someone's bulk.
            let express_open = !stop && express < EXPRESS_DEPTH && !self.lifecycle.is_stopping();
            let next = tokio::select! {
                next = in_flight.next() => next,
                () = self.nudged.notified(), if dry && !stop => {
                    dry = false;
                    continue;
                }
                () = self.urgent.notified(), if express_open => {
                    express += 1;
                    let limit = self.policy.batch_size;
                    reserved += limit;
                    in_flight.push(
                        async move { (limit, true, self.drain_batch(limit, 0).await) }.boxed(),
                    );
                    continue;
                }
            };
            let Some((limit, was_express, result)) = next else {
                break;
            };
            express -= usize::from(was_express);
            reserved -= limit;
            match result {
                Ok(batch) => {
                    report.claimed += batch.claimed;
                    report.published += batch.published;
                    report.failed += batch.failed;
                    report.dead_lettered += batch.dead_lettered;
                    report.lost += batch.lost;
                    // Handlers add events (a delivery adds `communication.sent`): keep going
                    // until a claim comes back empty (an express claim that found nothing says
                    // nothing of the other lanes).
                    dry = if was_express {
                        dry && batch.claimed == 0
                    } else {
                        batch.claimed == 0
                    };
                    stop |= batch.failed > 0;
                }
                Err(e) => {
                    stop = true;
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(metrics) = &self.metrics {
            metrics.record_outbox(report.published, report.failed, report.dead_lettered);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    async fn drain_batch(&self, limit: i64, max_lane: i16) -> Result<DrainReport, DbError> {
        let mut conn = self.pool.get().await?;
        let events =
            store::claim(&mut conn, &self.owner, self.policy.lease, limit, max_lane).await?;
        drop(conn);
        if events.iter().any(|e| e.lane == 0) {
            self.high_lane.claimed();
        }
        let mut report = DrainReport {
            claimed: events.len() as i64,
            ..Default::default()
        };
        if events.is_empty() {
            return Ok(report);
        }
        let mut errors: Vec<Vec<String>> = vec![Vec::new(); events.len()];

        let to_publish: Vec<usize> = (0..events.len())
            .filter(|&i| !events[i].is_done(BUS))
            .collect();
        let event_ids: Vec<String> = to_publish.iter().map(|&i| events[i].event_id()).collect();
        let publications: Vec<Publication<'_>> = to_publish
            .iter()
            .zip(&event_ids)
            .map(|(&i, id)| Publication {
                event_id: id,
                topic: &events[i].topic,
                payload: &events[i].payload,
            })
            .collect();
        // The bus and every handler work at once; each handler gets the events it still owes
        // in one call.
        let concurrency = self.policy.handler_concurrency.max(1);
        let runs: Vec<_> = self
            .handlers
            .iter()
            .filter_map(|handler| {
                let owed: Vec<usize> = (0..events.len())
                    .filter(|&i| {
                        handler.wants(&events[i].topic) && !events[i].is_done(handler.name())
                    })
                    .collect();
                if owed.is_empty() {
                    return None;
                }
                let batch: Vec<ClaimedEvent> = owed.iter().map(|&i| events[i].clone()).collect();
                let handler = handler.clone();
                Some(async move {
                    let outcomes = AssertUnwindSafe(handler.handle_batch(&batch, concurrency))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|panic| {
                            let error = format!("handler panicked: {}", panic_message(&panic));
                            vec![Err(error); batch.len()]
                        });
                    (handler.name(), owed, outcomes)
                })
            })
            .collect();
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        let work = async { futures_util::join!(self.bus.publish(&publications), join_all(runs)) };
        // The leases are renewed while the batch runs, so a slow provider or bus never hands
        // the batch to a second drainer.
        let (results, handled) = tokio::select! {
            biased;
            out = work => out,
            never = self.keep_leases(&ids) => match never {},
        };
        let mut succeeded: Vec<Vec<&'static str>> = vec![Vec::new(); events.len()];
        for (&i, result) in to_publish.iter().zip(results) {
            match result {
                Ok(()) => {
                    report.published += 1;
                    succeeded[i].push(BUS);
                }
                Err(e) => errors[i].push(format!("{BUS}: {e}")),
            }
        }
        for (name, owed, outcomes) in handled {
            let mut outcomes = outcomes.into_iter();
            for i in owed {
                let outcome = outcomes
                    .next()
                    .unwrap_or_else(|| Err("the handler returned no outcome".to_owned()));
                match outcome {
                    Ok(()) => succeeded[i].push(name),
                    Err(e) => {
                        tracing::warn!(event_id = %events[i].event_id(), handler = name, error = %e, "outbox handler failed");
                        errors[i].push(format!("{name}: {e}"));
                    }
                }
            }
        }

        // Fully handled events are completed in one statement; the progress of partly handled
        // ones is recorded so their retry skips what already happened.
        let mut conn = self.pool.get().await?;
        let done: Vec<Uuid> = events
            .iter()
            .zip(&errors)
            .filter(|(_, errs)| errs.is_empty())
            .map(|(e, _)| e.id)
            .collect();
        let completed = store::complete(&mut conn, &self.owner, &done).await?;
        if completed < done.len() {
            report.lost += (done.len() - completed) as i64;
            tracing::warn!(
                lost = done.len() - completed,
                "outbox leases lost; the drainers holding them now complete those events"
            );
        }
        for (i, event) in events
            .iter()
            .enumerate()
            .filter(|(i, _)| !errors[*i].is_empty())
        {
            report.failed += 1;
            for destination in &succeeded[i] {
                store::mark_destination(&mut conn, event.id, destination).await?;
            }
            let delay = self.policy.backoff(event.attempts);
            let error = errors[i].join("; ");
            let fate = store::fail(
                &mut conn,
                &self.owner,
                event.id,
                &error,
                delay,
                self.policy.max_attempts,
            )
            .await?;
            let Some(fate) = fate else {
                report.lost += 1;
                tracing::warn!(event_id = %event.event_id(), "outbox lease lost; the drainer holding it now records the event");
                continue;
            };
            if fate == FailureFate::DeadLettered {
                report.dead_lettered += 1;
                tracing::error!(event_id = %event.event_id(), topic = %event.topic, %error, "outbox event dead-lettered");
            }
        }
        Ok(report)
    }

    /// Renews the leases on `ids` every third of the lease, for as long as it is polled; a
    /// renewal that fails is tried again at the next tick.
    async fn keep_leases(&self, ids: &[Uuid]) -> std::convert::Infallible {
        let every = (self.policy.lease / 3).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(every).await;
            let renewed = match self.pool.get().await {
                Ok(mut conn) => store::renew(&mut conn, &self.owner, ids, self.policy.lease)
                    .await
                    .map_err(DbError::from),
                Err(e) => Err(DbError::from(e)),
            };
            match renewed {
                Ok(held) if held < ids.len() => {
                    tracing::warn!(
                        held,
                        claimed = ids.len(),
                        "outbox leases lost during a batch"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not renew outbox leases"),
            }
        }
    }

    /// Gives up this process's leases (graceful shutdown).
    pub async fn release(&self) -> Result<usize, DbError> {
        let mut conn = self.pool.get().await?;
        Ok(store::release(&mut conn, &self.owner).await?)
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = OutboxPolicy {
            batch_size: 10,
            lease: Duration::from_secs(30),
            max_attempts: 5,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(60),
            handler_concurrency: 1,
        };
        let first = policy.backoff(0);
        assert!(first >= Duration::from_millis(250) && first <= Duration::from_millis(500));
        let fourth = policy.backoff(3);
        assert!(fourth >= Duration::from_secs(2) && fourth <= Duration::from_secs(4));
        assert!(policy.backoff(20) <= Duration::from_secs(60));
        assert!(policy.backoff(20) >= Duration::from_secs(30));
    }
}
