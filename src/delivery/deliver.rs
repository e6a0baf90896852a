//! One delivery step for one message: choose the provider, commit the attempt, call the
//! provider, record the outcome and the next state. Every step locks the message row, so two
//! drainers (or a retry racing the first try) never deliver one message twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::stream::{self, StreamExt};
use rand::Rng;
use uuid::Uuid;

use super::circuit;
use super::events;
use super::registry::ProviderRegistry;
use crate::config::Settings;
use crate::db::cached::CacheStatement;
use crate::db::messages::{MESSAGE_COLUMNS, Message};
use crate::db::providers::Provider;
use crate::db::schema::{message_attempts, messages, providers};
use crate::db::{DbError, DbPool};
use crate::domain::ids::MessageId;
use crate::domain::{Channel, ProviderKind};
use crate::outbox::{self, EnqueueError};
use crate::providers::{OutboundMessage, SendOutcome};

/// Retry and circuit settings.
#[derive(Clone, Debug)]
pub struct DeliveryPolicy {
    pub max_attempts_per_provider: i32,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    pub circuit_threshold: i32,
    pub circuit_cooldown: Duration,
    pub public_base_url: Option<String>,
}

impl DeliveryPolicy {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            max_attempts_per_provider: s.delivery_max_attempts_per_provider.max(1),
            retry_base: s.delivery_retry_base,
            retry_cap: s.delivery_retry_cap,
            circuit_threshold: s.circuit_failure_threshold.max(1),
            circuit_cooldown: s.circuit_cooldown,
            public_base_url: s.public_base_url.clone(),
        }
    }

    fn backoff(&self, attempts_on_provider: i32) -> Duration {
        let exp = 2f64.powi((attempts_on_provider - 1).clamp(0, 30));
        let step = (self.retry_base.as_secs_f64() * exp).min(self.retry_cap.as_secs_f64());
        Duration::from_secs_f64(step * rand::thread_rng().gen_range(0.5..=1.0))
    }
}

/// What a delivery step ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do: not QUEUED, not due, or another deliverer holds it.
    Skipped,
    Sent,
    Failed,
    /// Queued again for a retry at a later time.
    RetryLater,
    /// Moved to another provider; the next try can run at once.
    FailedOver,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
}

impl From<diesel::result::Error> for DeliveryError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

impl From<crate::db::PoolError> for DeliveryError {
    fn from(e: crate::db::PoolError) -> Self {
        Self::Db(DbError::Pool(e))
    }
}

/// The delivery service.
pub struct Delivery {
    pool: DbPool,
    registry: ProviderRegistry,
    policy: DeliveryPolicy,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// An attempt committed and ready to be made.
struct Prepared {
    attempt_id: Uuid,
    provider: Provider,
    outbound: OutboundMessage,
}

/// The provider a failover moves from (id, kind) and why.
type FailoverFrom = Option<(Uuid, String, &'static str)>;

enum Route {
    Use {
        provider: Box<Provider>,
        failover_from: FailoverFrom,
    },
    Wait(Duration),
    Exhausted(&'static str, String),
}

impl Delivery {
    pub fn new(pool: DbPool, registry: ProviderRegistry, policy: DeliveryPolicy) -> Self {
        Self {
            pool,
            registry,
            policy,
            metrics: None,
        }
    }

    /// The provider clients delivery uses (jobs that call providers share them).
    pub fn registry(&self) -> &ProviderRegistry {
        &self.registry
    }

    /// The retry and circuit settings.
    pub fn policy(&self) -> &DeliveryPolicy {
        &self.policy
    }

    /// Counts and times every provider call.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn from_settings(
        pool: DbPool,
        cipher: crate::crypto::CredentialCipher,
        settings: &Settings,
    ) -> anyhow::Result<Self> {
        let http = crate::providers::http::http_client_with_timeout(settings.provider_timeout)?;
        Ok(Self::new(
            pool,
            ProviderRegistry::new(cipher, http),
            DeliveryPolicy::from_settings(settings),
        ))
    }

    /// Delivers a message as far as it can go now: tries, and on a failover tries the next
    /// provider at once (at most once per provider).
    pub async fn deliver(&self, message_id: Uuid) -> Result<Step, DeliveryError> {
        let mut step = self.step(message_id).await?;
        for _ in 0..8 {
            if step != Step::FailedOver {
                break;
            }
            step = self.step(message_id).await?;
        }
        Ok(step)
    }

    async fn step(&self, message_id: Uuid) -> Result<Step, DeliveryError> {
        let Some(prepared) = self.prepare(message_id).await? else {
            return Ok(Step::Skipped);
        };
        let prepared = match prepared {
            Ok(p) => p,
            Err(step) => return Ok(step),
        };
        let (_, prepared, outcome, latency) = self.call(message_id, prepared).await;
        self.record(message_id, &prepared, outcome, latency).await
    }

    /// Locks the message, picks the provider and commits the attempt row.
    async fn prepare(
        &self,
        message_id: Uuid,
    ) -> Result<Option<Result<Prepared, Step>>, DeliveryError> {
        let mut conn = self.pool.get().await?;
        let policy = &self.policy;
        conn.transaction::<_, DeliveryError, _>(async |conn| {
            let message: Option<Message> = messages::table
                .find(message_id)
                .select(Message::as_select())
                .for_update()
                .skip_locked()
                .first(conn)
                .await
                .optional()?;
            let Some(message) = message else {
                return Ok(None);
            };
            let (next_at, provider_attempts, tried, ambiguous): (
                Option<chrono::DateTime<Utc>>,
                i32,
                Vec<Option<Uuid>>,
                bool,
            ) = messages::table
                .find(message_id)
                .select((
                    messages::next_attempt_at,
                    messages::provider_attempts,
                    messages::tried_provider_ids,
                    messages::ambiguous,
                ))
                .first(conn)
                .await?;
            if message.status != "QUEUED" || next_at.is_some_and(|at| at > Utc::now()) {
                return Ok(None);
            }
            let tried: Vec<Uuid> = tried.into_iter().flatten().collect();
            let route = route(conn, policy, &message, provider_attempts, &tried, ambiguous).await?;
            let (provider, failover_from) = match route {
                Route::Use {
                    provider,
                    failover_from,
                } => (*provider, failover_from),
                Route::Wait(after) => {
                    diesel::update(messages::table.find(message_id))
                        .set(
                            messages::next_attempt_at
                                .eq(Utc::now()
                                    + chrono::Duration::from_std(after).unwrap_or_default()),
                        )
                        .execute(conn)
                        .await?;
                    return Ok(Some(Err(Step::RetryLater)));
                }
                Route::Exhausted(code, reason) => {
                    let failed = fail_message(conn, &message, code, &reason).await?;
                    outbox::enqueue(conn, &[events::failed(&failed)]).await?;
                    return Ok(Some(Err(Step::Failed)));
                }
            };
            let switching = message.provider_id != Some(provider.id);
            let attempt_id = Uuid::now_v7();
            diesel::insert_into(message_attempts::table)
                .values((
                    message_attempts::id.eq(attempt_id),
                    message_attempts::message_id.eq(message.id),
                    message_attempts::tenant_id.eq(message.tenant_id),
                    message_attempts::attempt_number.eq(message.attempts + 1),
                    message_attempts::provider_id.eq(provider.id),
                    message_attempts::provider_kind.eq(&provider.kind),
                ))
                .execute(conn)
                .await?;
            let mut tried_now = tried.clone();
            if !tried_now.contains(&provider.id) {
                tried_now.push(provider.id);
            }
            let updated: Message = diesel::update(messages::table.find(message_id))
                .set((
                    messages::status.eq("SENDING"),
                    messages::attempts.eq(message.attempts + 1),
                    messages::provider_attempts.eq(if switching {
                        1
                    } else {
                        provider_attempts + 1
                    }),
                    messages::provider_id.eq(provider.id),
                    messages::provider_kind.eq(&provider.kind),
                    messages::tried_provider_ids
                        .eq(tried_now.into_iter().map(Some).collect::<Vec<_>>()),
                    messages::next_attempt_at.eq(None::<chrono::DateTime<Utc>>),
                    messages::updated_at.eq(Utc::now()),
                ))
                .returning(Message::as_returning())
                .get_result(conn)
                .await?;
            if let Some((from_id, from_kind, reason)) = failover_from {
                let e = events::failover(
                    &updated,
                    (from_id, &from_kind),
                    (provider.id, &provider.kind),
                    reason,
                );
                outbox::enqueue(conn, &[e]).await?;
            }
            let outbound = outbound(policy, &updated, &provider);
            Ok(Some(Ok(Prepared {
                attempt_id,
                provider,
                outbound,
            })))
        })
        .await
    }

    /// Records the outcome of an attempt and moves the message on.
    async fn record(
        &self,
        message_id: Uuid,
        prepared: &Prepared,
        outcome: SendOutcome,
        latency: Duration,
    ) -> Result<Step, DeliveryError> {
        let mut conn = self.pool.get().await?;
        let policy = &self.policy;
        conn.transaction::<_, DeliveryError, _>(async |conn| {
            let (code, message_text, provider_message_id) = match &outcome {
                SendOutcome::Accepted {
                    provider_message_id,
                    ..
                } => (None, None, Some(provider_message_id.clone())),
                SendOutcome::PermanentFailure { code, message }
                | SendOutcome::TransientFailure { code, message }
                | SendOutcome::RateLimited { code, message, .. } => {
                    (Some(code.clone()), Some(message.clone()), None)
                }
                SendOutcome::Ambiguous { message } => (
                    Some("AMBIGUOUS_OUTCOME".to_owned()),
                    Some(message.clone()),
                    None,
                ),
            };
            diesel::update(message_attempts::table.find(prepared.attempt_id))
                .set((
                    message_attempts::finished_at.eq(Utc::now()),
                    message_attempts::outcome.eq(outcome.as_str()),
                    message_attempts::error_code.eq(&code),
                    message_attempts::error_message.eq(&message_text),
                    message_attempts::latency_ms
                        .eq(latency.as_millis().min(i32::MAX as u128) as i32),
                    message_attempts::provider_message_id.eq(&provider_message_id),
                ))
                .execute(conn)
                .await?;
            let message: Message = messages::table
                .find(message_id)
                .select(Message::as_select())
                .for_update()
                .first(conn)
                .await?;
            if message.status != "SENDING" {
                return Ok(Step::Skipped);
            }
            let provider_attempts: i32 = messages::table
                .find(message_id)
                .select(messages::provider_attempts)
                .first(conn)
                .await?;
            let now = Utc::now();
            match outcome {
                SendOutcome::Accepted {
                    provider_message_id,
                    cost_usd_micros,
                } => {
                    circuit::record_success(conn, prepared.provider.id).await?;
                    let cost = cost_usd_micros.or_else(|| Some(default_price(&message.channel)));
                    let sent: Message = diesel::update(messages::table.find(message_id))
                        .set((
                            messages::status.eq("SENT"),
                            messages::provider_message_id.eq(provider_message_id),
                            messages::cost_usd_micros.eq(cost),
                            messages::sent_at.eq(now),
                            messages::updated_at.eq(now),
                            messages::ambiguous.eq(false),
                            messages::error_code.eq(None::<String>),
                            messages::error_message.eq(None::<String>),
                        ))
                        .returning(Message::as_returning())
                        .get_result(conn)
                        .await?;
                    outbox::enqueue(conn, &[events::sent(&sent)]).await?;
                    Ok(Step::Sent)
                }
                SendOutcome::PermanentFailure {
                    code,
                    message: text,
                } => {
                    circuit::record_success(conn, prepared.provider.id).await?;
                    let failed = fail_message(conn, &message, &code, &text).await?;
                    outbox::enqueue(conn, &[events::failed(&failed)]).await?;
                    Ok(Step::Failed)
                }
                SendOutcome::TransientFailure {
                    code,
                    message: text,
                }
                | SendOutcome::RateLimited {
                    code,
                    message: text,
                    retry_after: None,
                } => {
                    let opened = circuit::record_failure(
                        conn,
                        prepared.provider.id,
                        &text,
                        policy.circuit_threshold,
                    )
                    .await?;
                    let delay = policy.backoff(provider_attempts);
                    requeue(
                        conn,
                        message_id,
                        &code,
                        &text,
                        provider_attempts,
                        opened,
                        delay,
                        policy,
                        false,
                    )
                    .await
                }
                SendOutcome::RateLimited {
                    code,
                    message: text,
                    retry_after: Some(after),
                } => {
                    let opened = circuit::record_failure(
                        conn,
                        prepared.provider.id,
                        &text,
                        policy.circuit_threshold,
                    )
                    .await?;
                    let delay = after
                        .max(policy.backoff(provider_attempts))
                        .min(policy.retry_cap);
                    requeue(
                        conn,
                        message_id,
                        &code,
                        &text,
                        provider_attempts,
                        opened,
                        delay,
                        policy,
                        false,
                    )
                    .await
                }
                SendOutcome::Ambiguous { message: text } => {
                    circuit::record_failure(
                        conn,
                        prepared.provider.id,
                        &text,
                        policy.circuit_threshold,
                    )
                    .await?;
                    if provider_attempts >= policy.max_attempts_per_provider {
                        let failed = fail_message(
                            conn,
                            &message,
                            "AMBIGUOUS_OUTCOME",
                            &format!(
                                "{text}; the provider may have accepted it, not re-sent elsewhere"
                            ),
                        )
                        .await?;
                        outbox::enqueue(conn, &[events::failed(&failed)]).await?;
                        return Ok(Step::Failed);
                    }
                    let delay = policy.backoff(provider_attempts);
                    requeue(
                        conn,
                        message_id,
                        "AMBIGUOUS_OUTCOME",
                        &text,
                        provider_attempts,
                        false,
                        delay,
                        policy,
                        true,
                    )
                    .await
                }
            }
        })
        .await
    }

    /// Delivers many messages as far as they can go now, with the statements shared across
    /// them: one transaction locks the messages and commits an attempt for each (before any
    /// provider call), the provider calls run `concurrency` at a time, and one transaction
    /// records every accepted send. Other outcomes are recorded one message at a time, and a
    /// failover goes on at once with the next provider. Returns the step of each message; the
    /// error is the shared transaction's (no message of the batch moved on).
    pub async fn deliver_many(
        &self,
        ids: &[Uuid],
        concurrency: usize,
    ) -> Result<HashMap<Uuid, Result<Step, String>>, DeliveryError> {
        let mut steps: HashMap<Uuid, Result<Step, String>> =
            ids.iter().map(|id| (*id, Ok(Step::Skipped))).collect();
        if ids.is_empty() {
            return Ok(steps);
        }
        let prepared = self.prepare_many(ids).await?;
        let mut calls = Vec::new();
        for (id, ready) in prepared {
            match ready {
                Ok(p) => calls.push(self.call(id, p)),
                Err(step) => {
                    steps.insert(id, Ok(step));
                }
            }
        }
        let made: Vec<(Uuid, Prepared, SendOutcome, Duration)> = stream::iter(calls)
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let (accepted, others): (Vec<_>, Vec<_>) = made
            .into_iter()
            .partition(|(_, _, outcome, _)| matches!(outcome, SendOutcome::Accepted { .. }));
        let records: Vec<_> = others
            .into_iter()
            .map(|(id, p, outcome, latency)| async move {
                let step = self.record(id, &p, outcome, latency).await;
                (id, step)
            })
            .collect();
        let (sent, recorded) = futures_util::join!(
            self.record_accepted(accepted),
            stream::iter(records)
                .buffer_unordered(concurrency.max(1))
                .collect::<Vec<_>>()
        );
        match sent {
            Ok(sent) => steps.extend(sent.into_iter().map(|(id, step)| (id, Ok(step)))),
            Err((ids, e)) => {
                let text = e.to_string();
                steps.extend(ids.into_iter().map(|id| (id, Err(text.clone()))));
            }
        }
        let mut failed_over = Vec::new();
        for (id, step) in recorded {
            if matches!(step, Ok(Step::FailedOver)) {
                failed_over.push(id);
            }
            steps.insert(id, step.map_err(|e| e.to_string()));
        }
        let next: Vec<_> = failed_over
            .into_iter()
            .map(|id| async move { (id, self.deliver(id).await.map_err(|e| e.to_string())) })
            .collect();
        let next: Vec<_> = stream::iter(next)
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        steps.extend(next);
        Ok(steps)
    }

    /// Makes one prepared provider call.
    async fn call(&self, id: Uuid, prepared: Prepared) -> (Uuid, Prepared, SendOutcome, Duration) {
        let started = Instant::now();
        let outcome = match self.registry.client(&prepared.provider) {
            Ok(client) => client.send(&prepared.outbound).await,
            Err(e) => SendOutcome::PermanentFailure {
                code: "PROVIDER_MISCONFIGURED".into(),
                message: e.to_string(),
            },
        };
        let latency = started.elapsed();
        if let Some(metrics) = &self.metrics {
            metrics.record_provider_call(&prepared.provider.kind, outcome.as_str(), latency);
        }
        (id, prepared, outcome, latency)
    }

    /// The multi-row updates below join `unnest` of the batch's values and also filter the
    /// table by `id = ANY(ids)`: without it the planner hash-joins against the whole table.
    ///
    /// `prepare` for many messages in one transaction: the due QUEUED ones not held by another
    /// deliverer are locked, routed (providers read once per tenant, channel and pin), and get
    /// their attempt rows in one insert and their SENDING state in one update. Messages not
    /// returned are skipped.
    async fn prepare_many(
        &self,
        ids: &[Uuid],
    ) -> Result<Vec<(Uuid, Result<Prepared, Step>)>, DeliveryError> {
        type Locked = (
            Message,
            Option<chrono::DateTime<Utc>>,
            i32,
            Vec<Option<Uuid>>,
            bool,
        );
        let mut conn = self.pool.get().await?;
        let policy = &self.policy;
        conn.transaction::<_, DeliveryError, _>(async |conn| {
            let locked: Vec<Locked> = messages::table
                .filter(messages::id.eq_any(ids))
                .filter(messages::status.eq("QUEUED"))
                .order(messages::id)
                .select((
                    Message::as_select(),
                    messages::next_attempt_at,
                    messages::provider_attempts,
                    messages::tried_provider_ids,
                    messages::ambiguous,
                ))
                .for_update()
                .skip_locked()
                .load(conn)
                .await?;
            let now = Utc::now();
            let mut routes: HashMap<(Uuid, String, Option<Uuid>), Vec<Candidate>> = HashMap::new();
            let mut half_open: Vec<Uuid> = Vec::new();
            let mut out: Vec<(Uuid, Result<Prepared, Step>)> = Vec::new();
            let mut events_out = Vec::new();
            // (message, provider, failover_from, attempt id)
            let mut going: Vec<(Message, Provider, FailoverFrom, Uuid)> = Vec::new();
            for (message, next_at, provider_attempts, tried, ambiguous) in locked {
                if next_at.is_some_and(|at| at > now) {
                    continue;
                }
                let key = (
                    message.tenant_id,
                    message.channel.clone(),
                    message.pinned_provider_id,
                );
                if !routes.contains_key(&key) {
                    let found = candidates(conn, key.0, &key.1, key.2).await?;
                    routes.insert(key.clone(), found);
                }
                let found = routes.get(&key).map(Vec::as_slice).unwrap_or_default();
                let tried: Vec<Uuid> = tried.into_iter().flatten().collect();
                let (route, half) =
                    choose(policy, &message, provider_attempts, &tried, ambiguous, found);
                if let Some(id) = half
                    && !half_open.contains(&id)
                {
                    half_open.push(id);
                }
                match route {
                    Route::Use {
                        provider,
                        failover_from,
                    } => going.push((message, *provider, failover_from, Uuid::now_v7())),
                    Route::Wait(after) => {
                        diesel::update(messages::table.find(message.id))
                            .set(
                                messages::next_attempt_at
                                    .eq(now + chrono::Duration::from_std(after).unwrap_or_default()),
                            )
                            .execute(conn)
                            .await?;
                        out.push((message.id, Err(Step::RetryLater)));
                    }
                    Route::Exhausted(code, reason) => {
                        let failed = fail_message(conn, &message, code, &reason).await?;
                        events_out.push(events::failed(&failed));
                        out.push((message.id, Err(Step::Failed)));
                    }
                }
            }
            half_open.sort();
            for id in half_open {
                circuit::half_open_if_due(conn, id, policy.circuit_cooldown).await?;
            }
            if !going.is_empty() {
                for chunk in going.chunks(1000) {
                    let rows: Vec<_> = chunk
                        .iter()
                        .map(|(message, provider, _, attempt_id)| {
                            (
                                message_attempts::id.eq(*attempt_id),
                                message_attempts::message_id.eq(message.id),
                                message_attempts::tenant_id.eq(message.tenant_id),
                                message_attempts::attempt_number.eq(message.attempts + 1),
                                message_attempts::provider_id.eq(provider.id),
                                message_attempts::provider_kind.eq(provider.kind.clone()),
                            )
                        })
                        .collect();
                    diesel::insert_into(message_attempts::table)
                        .values(rows)
                        .execute(conn)
                        .await?;
                }
                let ids: Vec<Uuid> = going.iter().map(|g| g.0.id).collect();
                let provider_ids: Vec<Uuid> = going.iter().map(|g| g.1.id).collect();
                let kinds: Vec<String> = going.iter().map(|g| g.1.kind.clone()).collect();
                let updated: Vec<Message> = diesel::sql_query(format!(
                    "UPDATE messages m SET status = 'SENDING', attempts = m.attempts + 1, \
                       provider_attempts = CASE WHEN m.provider_id IS DISTINCT FROM v.provider_id \
                                                THEN 1 ELSE m.provider_attempts + 1 END, \
                       provider_id = v.provider_id, provider_kind = v.provider_kind, \
                       tried_provider_ids = CASE WHEN v.provider_id = ANY(m.tried_provider_ids) \
                                                 THEN m.tried_provider_ids \
                                                 ELSE array_append(m.tried_provider_ids, v.provider_id) END, \
                       next_attempt_at = NULL, updated_at = $4 \
                     FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS v(id, provider_id, provider_kind) \
                     WHERE m.id = v.id AND m.id = ANY($1) \
                     RETURNING {MESSAGE_COLUMNS}",
                ))
                .bind::<Array<SqlUuid>, _>(&ids)
                .bind::<Array<SqlUuid>, _>(&provider_ids)
                .bind::<Array<Text>, _>(&kinds)
                .bind::<Timestamptz, _>(now)
                .cached()
                .load(conn)
                .await?;
                let updated: HashMap<Uuid, Message> =
                    updated.into_iter().map(|m| (m.id, m)).collect();
                for (message, provider, failover_from, attempt_id) in going {
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
                            attempt_id,
                            provider,
                            outbound,
                        }),
                    ));
                }
            }
            if !events_out.is_empty() {
                outbox::enqueue(conn, &events_out).await?;
            }
            Ok(out)
        })
        .await
    }

    /// `record` for many accepted sends in one transaction: the attempts, the circuits, the
    /// messages (SENT) and their `communication.sent` events. On failure, returns the ids it
    /// was given with the error.
    #[allow(clippy::type_complexity)]
    async fn record_accepted(
        &self,
        accepted: Vec<(Uuid, Prepared, SendOutcome, Duration)>,
    ) -> Result<Vec<(Uuid, Step)>, (Vec<Uuid>, DeliveryError)> {
        if accepted.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = accepted.iter().map(|a| a.0).collect();
        let result = async {
            let mut conn = self.pool.get().await?;
            conn.transaction::<_, DeliveryError, _>(async |conn| {
                let now = Utc::now();
                let mut attempt_ids = Vec::with_capacity(accepted.len());
                let mut latencies = Vec::with_capacity(accepted.len());
                let mut provider_message_ids = Vec::with_capacity(accepted.len());
                let mut sent_by: HashMap<Uuid, (Uuid, String, Option<i64>)> = HashMap::new();
                for (id, prepared, outcome, latency) in &accepted {
                    if let SendOutcome::Accepted {
                        provider_message_id,
                        cost_usd_micros,
                    } = outcome
                    {
                        attempt_ids.push(prepared.attempt_id);
                        latencies.push(latency.as_millis().min(i32::MAX as u128) as i32);
                        provider_message_ids.push(provider_message_id.clone());
                        sent_by.insert(
                            *id,
                            (
                                prepared.provider.id,
                                provider_message_id.clone(),
                                *cost_usd_micros,
                            ),
                        );
                    }
                }
                diesel::sql_query(
                    "UPDATE message_attempts a SET finished_at = $4, outcome = 'ACCEPTED', \
                       error_code = NULL, error_message = NULL, latency_ms = v.latency_ms, \
                       provider_message_id = v.provider_message_id \
                     FROM unnest($1::uuid[], $2::int4[], $3::text[]) \
                       AS v(id, latency_ms, provider_message_id) \
                     WHERE a.id = v.id AND a.id = ANY($1)",
                )
                .bind::<Array<SqlUuid>, _>(&attempt_ids)
                .bind::<Array<Integer>, _>(&latencies)
                .bind::<Array<Text>, _>(&provider_message_ids)
                .bind::<Timestamptz, _>(now)
                .cached()
                .execute(conn)
                .await?;
                let locked: Vec<Message> = messages::table
                    .filter(messages::id.eq_any(&ids))
                    .order(messages::id)
                    .select(Message::as_select())
                    .for_update()
                    .load(conn)
                    .await?;
                let mut steps: Vec<(Uuid, Step)> = Vec::with_capacity(ids.len());
                let mut sending = Vec::new();
                let mut pmids = Vec::new();
                let mut costs = Vec::new();
                let mut providers_ok: Vec<Uuid> = Vec::new();
                for message in &locked {
                    let Some((provider_id, pmid, cost)) = sent_by.get(&message.id) else {
                        continue;
                    };
                    if message.status != "SENDING" {
                        steps.push((message.id, Step::Skipped));
                        continue;
                    }
                    sending.push(message.id);
                    pmids.push(pmid.clone());
                    costs.push(cost.unwrap_or_else(|| default_price(&message.channel)));
                    if !providers_ok.contains(provider_id) {
                        providers_ok.push(*provider_id);
                    }
                }
                providers_ok.sort();
                for provider_id in providers_ok {
                    circuit::record_success(conn, provider_id).await?;
                }
                if !sending.is_empty() {
                    let sent: Vec<Message> = diesel::sql_query(format!(
                        "UPDATE messages m SET status = 'SENT', \
                           provider_message_id = v.provider_message_id, \
                           cost_usd_micros = v.cost, sent_at = $4, updated_at = $4, \
                           ambiguous = false, error_code = NULL, error_message = NULL \
                         FROM unnest($1::uuid[], $2::text[], $3::int8[]) \
                           AS v(id, provider_message_id, cost) \
                         WHERE m.id = v.id AND m.id = ANY($1) \
                         RETURNING {MESSAGE_COLUMNS}",
                    ))
                    .bind::<Array<SqlUuid>, _>(&sending)
                    .bind::<Array<Text>, _>(&pmids)
                    .bind::<Array<BigInt>, _>(&costs)
                    .bind::<Timestamptz, _>(now)
                    .cached()
                    .load(conn)
                    .await?;
                    let events_out: Vec<_> = sent.iter().map(events::sent).collect();
                    outbox::enqueue(conn, &events_out).await?;
                    steps.extend(sent.iter().map(|m| (m.id, Step::Sent)));
                }
                Ok(steps)
            })
            .await
        }
        .await;
        result.map_err(|e| (ids, e))
    }
}

#[allow(clippy::too_many_arguments)]
async fn requeue(
    conn: &mut AsyncPgConnection,
    message_id: Uuid,
    code: &str,
    text: &str,
    provider_attempts: i32,
    circuit_opened: bool,
    delay: Duration,
    policy: &DeliveryPolicy,
    ambiguous: bool,
) -> Result<Step, DeliveryError> {
    let move_on =
        !ambiguous && (circuit_opened || provider_attempts >= policy.max_attempts_per_provider);
    let at = if move_on {
        Utc::now()
    } else {
        Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default()
    };
    diesel::update(messages::table.find(message_id))
        .set((
            messages::status.eq("QUEUED"),
            messages::next_attempt_at.eq(at),
            messages::error_code.eq(code),
            messages::error_message.eq(text),
            messages::ambiguous.eq(ambiguous),
            messages::provider_attempts.eq(if move_on {
                policy.max_attempts_per_provider
            } else {
                provider_attempts
            }),
            messages::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(if move_on {
        Step::FailedOver
    } else {
        Step::RetryLater
    })
}

async fn fail_message(
    conn: &mut AsyncPgConnection,
    message: &Message,
    code: &str,
    text: &str,
) -> QueryResult<Message> {
    let now = Utc::now();
    diesel::update(messages::table.find(message.id))
        .set((
            messages::status.eq("FAILED"),
            messages::error_code.eq(code),
            messages::error_message.eq(text),
            messages::failed_at.eq(now),
            messages::updated_at.eq(now),
            messages::next_attempt_at.eq(None::<chrono::DateTime<Utc>>),
        ))
        .returning(Message::as_returning())
        .get_result(conn)
        .await
}

/// A provider that may carry a message, with its circuit.
struct Candidate {
    provider: Provider,
    circuit_state: String,
    circuit_opened_at: Option<chrono::DateTime<Utc>>,
}

/// The active providers of a tenant that carry a channel (only the pinned one when a message
/// pins one), in routing order.
async fn candidates(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    channel: &str,
    pinned: Option<Uuid>,
) -> QueryResult<Vec<Candidate>> {
    let mut query = providers::table
        .filter(providers::tenant_id.eq(tenant_id))
        .filter(providers::deleted_at.is_null())
        .filter(providers::is_active.eq(true))
        .filter(providers::channels.contains(vec![Some(channel.to_owned())]))
        .order((providers::priority.asc(), providers::id.asc()))
        .select((
            Provider::as_select(),
            providers::circuit_state,
            providers::circuit_opened_at,
        ))
        .into_boxed();
    if let Some(pinned) = pinned {
        query = query.filter(providers::id.eq(pinned));
    }
    let rows: Vec<(Provider, String, Option<chrono::DateTime<Utc>>)> = query.load(conn).await?;
    Ok(rows
        .into_iter()
        .map(|(provider, circuit_state, circuit_opened_at)| Candidate {
            provider,
            circuit_state,
            circuit_opened_at,
        })
        .collect())
}

/// Chooses the provider for the next try.
async fn route(
    conn: &mut AsyncPgConnection,
    policy: &DeliveryPolicy,
    message: &Message,
    provider_attempts: i32,
    tried: &[Uuid],
    ambiguous: bool,
) -> QueryResult<Route> {
    let candidates = candidates(
        conn,
        message.tenant_id,
        &message.channel,
        message.pinned_provider_id,
    )
    .await?;
    let (route, half_open) = choose(
        policy,
        message,
        provider_attempts,
        tried,
        ambiguous,
        &candidates,
    );
    if let Some(id) = half_open {
        circuit::half_open_if_due(conn, id, policy.circuit_cooldown).await?;
    }
    Ok(route)
}

/// The routing decision, and the provider whose open circuit turns half-open if its cool-down
/// has passed (the caller writes that).
fn choose(
    policy: &DeliveryPolicy,
    message: &Message,
    provider_attempts: i32,
    tried: &[Uuid],
    ambiguous: bool,
    candidates: &[Candidate],
) -> (Route, Option<Uuid>) {
    let open = |id: Uuid| {
        candidates
            .iter()
            .find(|c| c.provider.id == id)
            .is_some_and(|c| {
                !circuit::allows(
                    &c.circuit_state,
                    c.circuit_opened_at,
                    policy.circuit_cooldown,
                )
            })
    };
    // Only an OPEN circuit can turn half-open; a closed one needs no write.
    let half_open = |id: Uuid| {
        candidates
            .iter()
            .any(|c| c.provider.id == id && c.circuit_state == "OPEN")
            .then_some(id)
    };
    let current = message
        .provider_id
        .and_then(|id| candidates.iter().map(|c| &c.provider).find(|p| p.id == id));
    if ambiguous {
        return match current {
            Some(p) => (
                Route::Use {
                    provider: Box::new(p.clone()),
                    failover_from: None,
                },
                None,
            ),
            None => (
                Route::Exhausted(
                    "AMBIGUOUS_OUTCOME",
                    "the provider of an unconfirmed attempt is gone; not re-sent elsewhere".into(),
                ),
                None,
            ),
        };
    }
    if let Some(p) = current
        && provider_attempts < policy.max_attempts_per_provider
        && !open(p.id)
    {
        return (
            Route::Use {
                provider: Box::new(p.clone()),
                failover_from: None,
            },
            half_open(p.id),
        );
    }
    let next = candidates
        .iter()
        .map(|c| &c.provider)
        .find(|p| !tried.contains(&p.id) && !open(p.id));
    match next {
        Some(p) => {
            let failover_from = current.map(|c| {
                let reason = if open(c.id) {
                    "circuit_open"
                } else {
                    "retries_exhausted"
                };
                (c.id, c.kind.clone(), reason)
            });
            (
                Route::Use {
                    provider: Box::new(p.clone()),
                    failover_from,
                },
                half_open(p.id),
            )
        }
        None if candidates.iter().any(|c| !tried.contains(&c.provider.id)) => {
            (Route::Wait(policy.circuit_cooldown), None)
        }
        None if candidates.is_empty() => (
            Route::Exhausted(
                "NO_PROVIDER_AVAILABLE",
                format!("no active provider carries {}", message.channel),
            ),
            None,
        ),
        None => (
            Route::Exhausted(
                "ALL_PROVIDERS_FAILED",
                message
                    .error_message
                    .clone()
                    .unwrap_or_else(|| "every provider was tried".into()),
            ),
            None,
        ),
    }
}

fn callback_kind(kind: ProviderKind) -> Option<&'static str> {
    match kind {
        ProviderKind::Twilio => Some("twilio"),
        ProviderKind::Vonage => Some("vonage"),
        _ => None,
    }
}

fn outbound(policy: &DeliveryPolicy, message: &Message, provider: &Provider) -> OutboundMessage {
    let kind: Option<ProviderKind> = provider.kind.parse().ok();
    let status_callback_url = match (&policy.public_base_url, kind.and_then(callback_kind)) {
        (Some(base), Some(kind)) => Some(format!(
            "{base}/cpaas/v1/provider-callbacks/{kind}/{}",
            crate::domain::ProviderId::from_uuid(provider.id)
        )),
        _ => None,
    };
    OutboundMessage {
        message_id: MessageId::from_uuid(message.id).to_string(),
        tenant_id: message.tenant_id,
        channel: message.channel.parse().unwrap_or(Channel::Sms),
        recipient: message.recipient.clone(),
        subject: message.subject.clone(),
        body: message.body.clone(),
        provider_template: None,
        metadata: message.metadata.clone(),
        status_callback_url,
    }
}

/// The price used when the provider reports none, in micro-USD.
pub fn default_price(channel: &str) -> i64 {
    match channel {
        "SMS" => 7_900,
        "WHATSAPP" => 5_000,
        "EMAIL" => 100,
        "VOICE" => 13_000,
        _ => 0,
    }
}

/// Messages whose retry time has come, oldest first.
pub async fn due_retries(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<Uuid>> {
    messages::table
        .filter(messages::status.eq("QUEUED"))
        .filter(messages::next_attempt_at.le(Utc::now()))
        .order(messages::next_attempt_at.asc())
        .limit(limit)
        .select(messages::id)
        .load(conn)
        .await
}

/// Shares one delivery service.
pub type SharedDelivery = Arc<Delivery>;
