//! SchedulerActor: runs each job of `jobs::SCHEDULE` once per slot of its interval, across
//! replicas (the slot row is the claim), through the same `Jobs::run` as
//! `POST /cpaas/v1/jobs/{name}`. A panicking job is caught, recorded as FAILED, and the actor
//! carries on.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use futures_util::FutureExt;

use crate::jobs::{Jobs, runs};

/// The scheduler actor of this process.
pub struct SchedulerActor {
    jobs: Arc<Jobs>,
    owner: String,
    schedule: Vec<(&'static str, Duration)>,
    last_slot: HashMap<&'static str, chrono::DateTime<Utc>>,
    running: HashSet<&'static str>,
}

impl SchedulerActor {
    pub fn new(jobs: Arc<Jobs>, schedule: Vec<(&'static str, Duration)>) -> Self {
        Self {
            jobs,
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            schedule,
            last_slot: HashMap::new(),
            running: HashSet::new(),
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = Utc::now();
        for (name, interval) in self.schedule.clone() {
            let slot = runs::slot_of(now, interval);
            if self.last_slot.get(name) == Some(&slot) || self.running.contains(name) {
                continue;
            }
            self.last_slot.insert(name, slot);
            self.running.insert(name);
            let jobs = self.jobs.clone();
            let owner = self.owner.clone();
            let run = async move { run_slot(&jobs, name, slot, &owner).await };
            ctx.spawn(run.into_actor(self).map(move |_, act, _| {
                act.running.remove(name);
            }));
        }
    }
}

async fn run_slot(jobs: &Jobs, name: &'static str, slot: chrono::DateTime<Utc>, owner: &str) {
    let claimed = match jobs.pool().get().await {
        Ok(mut conn) => runs::claim(&mut conn, name, slot, owner)
            .await
            .unwrap_or(false),
        Err(_) => false,
    };
    if !claimed {
        return;
    }
    let outcome = AssertUnwindSafe(jobs.run(name)).catch_unwind().await;
    let (counts, error) = match outcome {
        Ok(Some(Ok(report))) => (
            serde_json::to_value(&report.counts).unwrap_or_default(),
            None,
        ),
        Ok(Some(Err(e))) => (serde_json::json!({}), Some(e.to_string())),
        Ok(None) => (serde_json::json!({}), Some("unknown job".to_owned())),
        Err(_) => (serde_json::json!({}), Some("the job panicked".to_owned())),
    };
    if let Some(e) = &error {
        tracing::warn!(job = name, error = %e, "scheduled job failed");
    }
    if let Ok(mut conn) = jobs.pool().get().await
        && let Err(e) = runs::finish(&mut conn, name, slot, &counts, error.as_deref()).await
    {
        tracing::warn!(job = name, error = %e, "could not record the job run");
    }
}

impl actix::Supervised for SchedulerActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.running.clear();
        tracing::warn!("scheduler actor restarting");
    }
}

impl Actor for SchedulerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_millis(100), |act, ctx| act.tick(ctx));
    }
}
