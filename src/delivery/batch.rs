//! The one delivery state machine, for a batch of messages (one message is a batch of one).
//!
//! A round: one transaction locks the due QUEUED messages no other deliverer holds, routes
//! them, and commits an attempt row and the SENDING state for each (before any provider call);
//! the provider calls run `concurrency` at a time; every accepted send is recorded (attempt
//! first, then SENT and its event in one transaction, each retried: `durable.rs`), and each
//! other outcome is recorded in a transaction of its own, a few at a time.
//! Messages that failed over go round again at once, with their next provider. Every status
//! move is checked by `MessageStatus::can_move_to`, as callbacks check theirs.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use chrono::Utc;
use diesel_async::AsyncPgConnection;
use futures_util::stream::{self, StreamExt};
use uuid::Uuid;

use super::circuit;
use super::deliver::{Delivery, Made, Prepared, Priced};
use super::durable::{self, accepted_attempts};
use super::outbound::outbound;
use super::pacing;
use super::policy::{self, CircuitEffect, Decision, DeliveryError, Step};
use super::routing::{self, Candidate, FailoverFrom, Route};
use super::store;
use crate::db::messages::Message;
use crate::db::providers::Provider;
use crate::db::tx;
use crate::domain::opt_out::OptOutSource;
use crate::domain::{Channel, MessageStatus};
use crate::messages::events;
use crate::outbox;
use crate::providers::SendOutcome;

/// Rounds of one delivery: the first try and the failovers after it.
const MAX_ROUNDS: usize = 9;

/// The error of a message not handed to a provider within its validity window.
const EXPIRED: &str = "EXPIRED";
const EXPIRED_TEXT: &str = "not handed to a provider within its ttl_secs";

/// Refused outcomes recorded at once (each takes a connection of the shared pool).
const RECORD_CONCURRENCY: usize = 4;

/// What each message of a batch ended with; an error is that message's recording error.
pub type Steps = HashMap<Uuid, Result<Step, String>>;

/// Whether an attempt's outcome may move `message` to `next`: the attempt is the one in flight
/// (the message is still SENDING) and the move is one the status machine allows.
fn applies(message: &Message, next: MessageStatus) -> bool {
    message.status == MessageStatus::Sending && message.status.can_move_to(next)
}

impl Delivery {
    /// Delivers many messages as far as they can go now, with the statements shared across
    /// them. Returns the step of each message; the error is the first round's shared
    /// transaction's (no message of the batch moved on).
    pub async fn deliver_many(
        &self,
        ids: &[Uuid],
        concurrency: usize,
    ) -> Result<Steps, DeliveryError> {
        let mut steps: Steps = ids.iter().map(|id| (*id, Ok(Step::Skipped))).collect();
        let mut pending = ids.to_vec();
        for round in 0..MAX_ROUNDS {
            if pending.is_empty() {
                break;
            }
            let done = match self.round(&pending, concurrency.max(1)).await {
                Ok(done) => done,
                Err(e) if round == 0 => return Err(e),
                Err(e) => {
                    let text = e.to_string();
                    steps.extend(pending.iter().map(|id| (*id, Err(text.clone()))));
                    break;
                }
            };
            pending = done
                .iter()
                .filter(|(_, step)| matches!(step, Ok(Step::FailedOver)))
                .map(|(id, _)| *id)
                .collect();
            steps.extend(done);
        }
        Ok(steps)
    }

    /// One try of each message: prepare, call, record.
    async fn round(
        &self,
        ids: &[Uuid],
        concurrency: usize,
    ) -> Result<Vec<(Uuid, Result<Step, String>)>, DeliveryError> {
        let mut done = Vec::with_capacity(ids.len());
        let mut calls = Vec::new();
        for (id, ready) in self.prepare(ids).await? {
            match ready {
                Ok(p) => calls.push(self.call(p)),
                Err(step) => done.push((id, Ok(step))),
            }
        }
        let made: Vec<Made> = stream::iter(calls)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let (accepted, refused): (Vec<_>, Vec<_>) = made
            .into_iter()
            .partition(|m| matches!(m.outcome, SendOutcome::Accepted { .. }));
        let accepted_ids: Vec<Uuid> = accepted.iter().map(|m| m.prepared.message_id).collect();
        let deadline = self.policy.record_deadline;
        let records: Vec<_> = refused
            .into_iter()
            .map(|made| async move {
                let id = made.prepared.message_id;
                let recorded =
                    durable::with_retries("refused send", deadline, || self.record_refused(&made))
                        .await;
                (id, recorded.map_err(|e| e.to_string()))
            })
            .collect();
        let (sent, recorded) = futures_util::join!(
            self.record_accepted_durably(accepted),
            stream::iter(records)
                .buffer_unordered(concurrency.min(RECORD_CONCURRENCY))
                .collect::<Vec<_>>()
        );
        match sent {
            Ok(sent) => done.extend(sent.into_iter().map(|(id, step)| (id, Ok(step)))),
            Err(e) => {
                let text = e.to_string();
                done.extend(accepted_ids.into_iter().map(|id| (id, Err(text.clone()))));
            }
        }
        done.extend(recorded);
        Ok(done)
    }

    /// Locks the due QUEUED messages among `ids`, routes them (providers read once per tenant,
    /// channel and pin), and commits their attempt rows and SENDING state. Messages not
    /// returned are skipped.
    async fn prepare(
        &self,
        ids: &[Uuid],
    ) -> Result<Vec<(Uuid, Result<Prepared, Step>)>, DeliveryError> {
        let mut conn = self.pool.get().await?;
        let policy = &self.policy;
        tx::run(&mut conn, async |conn: &mut AsyncPgConnection| {
            let now = Utc::now();
            let mut routes: HashMap<(Uuid, Channel, Option<Uuid>), Vec<Candidate>> = HashMap::new();
            let mut half_open: Vec<Uuid> = Vec::new();
            let mut out: Vec<(Uuid, Result<Prepared, Step>)> = Vec::new();
            let mut events_out = Vec::new();
            let mut going: Vec<(Message, Provider, FailoverFrom, Uuid, bool)> = Vec::new();
            for locked in store::lock_queued(conn, ids).await? {
                let message = locked.message;
                if !message.status.can_move_to(MessageStatus::Sending) {
                    continue;
                }
                if message.expires_at.is_some_and(|at| at <= now) {
                    let failed = store::fail(conn, message.id, EXPIRED, EXPIRED_TEXT).await?;
                    events_out.push(events::failed(&failed));
                    out.push((message.id, Err(Step::Failed)));
                    continue;
                }
                if locked.next_attempt_at.is_some_and(|at| at > now) {
                    continue;
                }
                let key = (
                    message.tenant_id,
                    message.channel,
                    message.pinned_provider_id,
                );
                if let Entry::Vacant(slot) = routes.entry(key) {
                    slot.insert(store::candidates(conn, key.0, key.1, key.2).await?);
                }
                let found = routes.get(&key).map(Vec::as_slice).unwrap_or_default();
                let (route, half) = routing::choose(policy, &message, &locked.progress, found);
                if let Some(id) = half
                    && !half_open.contains(&id)
                {
                    half_open.push(id);
                }
                match route {
                    Route::Use {
                        provider,
                        failover_from,
                    } => going.push((
                        message,
                        *provider,
                        failover_from,
                        Uuid::now_v7(),
                        locked.progress.ambiguous,
                    )),
                    Route::Wait(after) => {
                        // Not past the end of its validity, when it is looked at again.
                        let left = message
                            .expires_at
                            .and_then(|at| (at - now).to_std().ok())
                            .unwrap_or(after);
                        store::postpone(conn, message.id, after.min(left)).await?;
                        out.push((message.id, Err(Step::RetryLater)));
                    }
                    Route::Exhausted(code, reason) => {
                        let failed = store::fail(conn, message.id, code, &reason).await?;
                        events_out.push(events::failed(&failed));
                        out.push((message.id, Err(Step::Failed)));
                    }
                }
            }
            half_open.sort();
            for id in half_open {
                circuit::half_open_if_due(conn, id, policy.circuit_cooldown).await?;
            }
            let (going, paced) = pacing::pace(conn, going, |g| (&g.1, g.0.id)).await?;
            if !paced.is_empty() {
                store::postpone_many(conn, &paced).await?;
                out.extend(paced.iter().map(|(id, _)| (*id, Err(Step::RetryLater))));
            }
            if !going.is_empty() {
                let attempts: Vec<store::NewAttempt> = going
                    .iter()
                    .map(|(message, provider, _, attempt_id, _)| store::NewAttempt {
                        id: *attempt_id,
                        message,
                        provider,
                    })
                    .collect();
                store::insert_attempts(conn, &attempts).await?;
                let ids: Vec<Uuid> = going.iter().map(|g| g.0.id).collect();
                let provider_ids: Vec<Uuid> = going.iter().map(|g| g.1.id).collect();
                let kinds: Vec<String> = going.iter().map(|g| g.1.kind.clone()).collect();
                let updated: HashMap<Uuid, Message> =
                    store::mark_sending(conn, &ids, &provider_ids, &kinds, now)
                        .await?
                        .into_iter()
                        .map(|m| (m.id, m))
                        .collect();
                for (message, provider, failover_from, attempt_id, ambiguous) in going {
                    let Some(updated) = updated.get(&message.id) else {
                        continue;
                    };
                    if let Some((from_id, from_kind, reason)) = failover_from {
                        events_out.push(events::failover(
                            updated,
                            (from_id, &from_kind),
                            (provider.id, &provider.kind),
                            reason,
                        ));
                    }
                    let outbound = outbound(policy, updated, &provider);
                    out.push((
                        message.id,
                        Ok(Prepared {
                            message_id: message.id,
                            attempt_id,
                            provider,
                            outbound,
                            after_ambiguous: ambiguous.then_some(message.created_at),
                        }),
                    ));
                }
            }
            if !events_out.is_empty() {
                outbox::enqueue(conn, &events_out).await?;
            }
            Ok::<_, DeliveryError>((out, !events_out.is_empty()))
        })
        .await
        .map(|(out, wrote_events)| {
            if wrote_events {
                self.committed_events();
            }
            out
        })
    }

    /// Records the accepted sends in one transaction: the circuits, the messages (SENT) and
    /// their `communication.sent` events, and the attempts too unless they were written
    /// already (`durable.rs` writes them first, on their own).
    pub(super) async fn record_accepted(
        &self,
        accepted: &[Made],
        with_attempts: bool,
    ) -> Result<Vec<(Uuid, Step)>, DeliveryError> {
        if accepted.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = accepted.iter().map(|m| m.prepared.message_id).collect();
        let attempts = with_attempts.then(|| accepted_attempts(accepted));
        let mut sent_by: HashMap<Uuid, (Uuid, String, Option<&Priced>)> = HashMap::new();
        for made in accepted {
            if let SendOutcome::Accepted {
                provider_message_id,
                ..
            } = &made.outcome
            {
                sent_by.insert(
                    made.prepared.message_id,
                    (
                        made.prepared.provider.id,
                        provider_message_id.clone(),
                        made.priced.as_ref(),
                    ),
                );
            }
        }
        let mut conn = self.pool.get().await?;
        tx::run(&mut conn, async |conn: &mut AsyncPgConnection| {
            let now = Utc::now();
            if let Some(attempts) = &attempts {
                store::finish_accepted_attempts(conn, attempts, now).await?;
            }
            let mut steps: Vec<(Uuid, Step)> = Vec::with_capacity(ids.len());
            let mut sending = store::SentRows::default();
            let mut providers_ok: Vec<Uuid> = Vec::new();
            for message in store::lock(conn, &ids).await? {
                let Some((provider_id, pmid, priced)) = sent_by.get(&message.id) else {
                    continue;
                };
                if !applies(&message, MessageStatus::Sent) {
                    steps.push((message.id, Step::Skipped));
                    continue;
                }
                sending.push(message.id, pmid.clone(), *priced);
                if !providers_ok.contains(provider_id) {
                    providers_ok.push(*provider_id);
                }
            }
            providers_ok.sort();
            for provider_id in providers_ok {
                circuit::record_success(conn, provider_id).await?;
            }
            if !sending.ids.is_empty() {
                let sent = store::mark_sent(conn, &sending, now).await?;
                let events_out: Vec<_> = sent.iter().map(events::sent).collect();
                outbox::enqueue(conn, &events_out).await?;
                steps.extend(sent.iter().map(|m| (m.id, Step::Sent)));
            }
            Ok::<_, DeliveryError>(steps)
        })
        .await
        .inspect(|steps| {
            if steps.iter().any(|(_, step)| *step == Step::Sent) {
                self.committed_events();
            }
        })
    }

    /// Records an attempt that was not accepted, in its own transaction: the attempt, the
    /// provider's circuit, and the message FAILED (with its event) or QUEUED again.
    async fn record_refused(&self, made: &Made) -> Result<Step, DeliveryError> {
        let mut conn = self.pool.get().await?;
        let policy = &self.policy;
        tx::run(&mut conn, async |conn: &mut AsyncPgConnection| {
            let prepared = &made.prepared;
            store::finish_attempt(conn, prepared.attempt_id, &made.outcome, made.latency_ms())
                .await?;
            let (message, provider_attempts) = store::lock_one(conn, prepared.message_id).await?;
            if message.status != MessageStatus::Sending {
                return Ok(Step::Skipped);
            }
            let opened = match policy::circuit_effect(&made.outcome) {
                CircuitEffect::Success => {
                    circuit::record_success(conn, prepared.provider.id).await?;
                    false
                }
                CircuitEffect::Failure => {
                    circuit::record_failure(
                        conn,
                        prepared.provider.id,
                        outcome_text(&made.outcome),
                        policy.circuit_threshold,
                    )
                    .await?
                }
            };
            let decision = policy::decide(policy, made.outcome.clone(), provider_attempts, opened);
            let step = decision.step();
            match decision {
                Decision::Fail { code, text } if applies(&message, MessageStatus::Failed) => {
                    if policy::opted_out_at_provider(&prepared.provider.kind, &code) {
                        crate::db::opt_outs::add_opt_out(
                            conn,
                            message.tenant_id,
                            &message.recipient,
                            message.channel.as_str(),
                            OptOutSource::Provider.as_str(),
                            Some(&format!("{} {code}: {text}", prepared.provider.kind)),
                        )
                        .await?;
                    }
                    let failed = store::fail(conn, message.id, &code, &text).await?;
                    outbox::enqueue(conn, &[events::failed(&failed)]).await?;
                }
                Decision::Retry(retry) if applies(&message, MessageStatus::Queued) => {
                    store::requeue(
                        conn,
                        message.id,
                        &retry,
                        provider_attempts,
                        policy.max_attempts_per_provider,
                    )
                    .await?;
                }
                _ => return Ok(Step::Skipped),
            }
            Ok::<_, DeliveryError>(step)
        })
        .await
        .inspect(|step| {
            if *step == Step::Failed {
                self.committed_events();
            }
        })
    }
}

/// The provider's message of an outcome, recorded on its circuit.
fn outcome_text(outcome: &SendOutcome) -> &str {
    match outcome {
        SendOutcome::Accepted {
            provider_message_id,
            ..
        } => provider_message_id,
        SendOutcome::PermanentFailure { message, .. }
        | SendOutcome::TransientFailure { message, .. }
        | SendOutcome::RateLimited { message, .. }
        | SendOutcome::Ambiguous { message } => message,
    }
}
