//! The SQL of delivery. The multi-row updates join `unnest` of the batch's values and also
//! filter the table by `id = ANY(ids)`: without it the planner hash-joins against the whole
//! table. Every statement over a batch of ids is planned on each run
//! ([`CacheStatement::planned_each_run`]), so its plan follows the table's size.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::policy::{AMBIGUOUS_OUTCOME, Retry};
use super::routing::{Candidate, Progress};
use crate::db::cached::CacheStatement;
use crate::db::messages::{MESSAGE_COLUMNS, Message};
use crate::db::providers::Provider;
use crate::db::schema::{message_attempts, messages, providers};
use crate::domain::{Channel, MessageStatus};
use crate::providers::SendOutcome;

/// A QUEUED message locked for delivery, with its delivery progress and retry time.
pub struct Locked {
    pub message: Message,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub progress: Progress,
}

/// A message row with its retry time, attempts on its provider, tried providers and ambiguity.
type LockedRow = (Message, Option<DateTime<Utc>>, i32, Vec<Option<Uuid>>, bool);

/// Locks the QUEUED messages among `ids` that no other deliverer holds, in id order.
pub async fn lock_queued(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<Locked>> {
    let rows: Vec<LockedRow> = messages::table
        .filter(messages::id.eq_any(ids))
        .filter(messages::status.eq(MessageStatus::Queued))
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
        .planned_each_run()
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(message, next_attempt_at, provider_attempts, tried, ambiguous)| Locked {
                message,
                next_attempt_at,
                progress: Progress {
                    provider_attempts,
                    tried: tried.into_iter().flatten().collect(),
                    ambiguous,
                },
            },
        )
        .collect())
}

/// The active providers of a tenant that carry a channel (only the pinned one when a message
/// pins one), in routing order.
pub async fn candidates(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    channel: Channel,
    pinned: Option<Uuid>,
) -> QueryResult<Vec<Candidate>> {
    let mut query = providers::table
        .filter(providers::tenant_id.eq(tenant_id))
        .filter(providers::deleted_at.is_null())
        .filter(providers::is_active.eq(true))
        .filter(providers::channels.contains(vec![Some(channel.as_str().to_owned())]))
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
    let rows: Vec<(Provider, String, Option<DateTime<Utc>>)> = query.load(conn).await?;
    Ok(rows
        .into_iter()
        .map(|(provider, circuit_state, circuit_opened_at)| Candidate {
            provider,
            circuit_state,
            circuit_opened_at,
        })
        .collect())
}

/// Puts off a QUEUED message's next try.
pub async fn postpone(conn: &mut AsyncPgConnection, id: Uuid, after: Duration) -> QueryResult<()> {
    let at = Utc::now() + chrono::Duration::from_std(after).unwrap_or_default();
    diesel::update(messages::table.find(id))
        .set(messages::next_attempt_at.eq(at))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Postpones many messages, each by its own wait.
pub async fn postpone_many(
    conn: &mut AsyncPgConnection,
    waits: &[(Uuid, Duration)],
) -> QueryResult<()> {
    let now = Utc::now();
    let ids: Vec<Uuid> = waits.iter().map(|(id, _)| *id).collect();
    let ats: Vec<DateTime<Utc>> = waits
        .iter()
        .map(|(_, wait)| now + chrono::Duration::from_std(*wait).unwrap_or_default())
        .collect();
    diesel::sql_query(
        "UPDATE messages m SET next_attempt_at = v.at \
         FROM unnest($1::uuid[], $2::timestamptz[]) AS v(id, at) \
         WHERE m.id = v.id AND m.id = ANY($1)",
    )
    .bind::<Array<SqlUuid>, _>(&ids)
    .bind::<Array<Timestamptz>, _>(&ats)
    .planned_each_run()
    .execute(conn)
    .await
    .map(|_| ())
}

/// An attempt about to be made.
pub struct NewAttempt<'a> {
    pub id: Uuid,
    pub message: &'a Message,
    pub provider: &'a Provider,
}

/// Inserts the attempt rows (before any provider call), in chunks.
pub async fn insert_attempts(
    conn: &mut AsyncPgConnection,
    attempts: &[NewAttempt<'_>],
) -> QueryResult<()> {
    for chunk in attempts.chunks(1000) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|a| {
                (
                    message_attempts::id.eq(a.id),
                    message_attempts::message_id.eq(a.message.id),
                    message_attempts::tenant_id.eq(a.message.tenant_id),
                    message_attempts::attempt_number.eq(a.message.attempts + 1),
                    message_attempts::provider_id.eq(a.provider.id),
                    message_attempts::provider_kind.eq(a.provider.kind.clone()),
                )
            })
            .collect();
        diesel::insert_into(message_attempts::table)
            .values(rows)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Moves messages to SENDING on the given providers: one more attempt, the provider's count
/// restarted when it changes, the provider added to the tried ones.
pub async fn mark_sending(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
    provider_ids: &[Uuid],
    kinds: &[String],
    now: DateTime<Utc>,
) -> QueryResult<Vec<Message>> {
    diesel::sql_query(format!(
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
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Array<SqlUuid>, _>(provider_ids)
    .bind::<Array<Text>, _>(kinds)
    .bind::<Timestamptz, _>(now)
    .planned_each_run()
    .load(conn)
    .await
}

/// Accepted attempts, column by column.
#[derive(Debug, Default)]
pub struct AcceptedAttempts {
    pub attempt_ids: Vec<Uuid>,
    pub latencies_ms: Vec<i32>,
    pub provider_message_ids: Vec<String>,
    pub costs: Vec<Option<i64>>,
    /// `ACCEPTED`, or `RECONCILED` when a look-up found an earlier send.
    pub outcomes: Vec<String>,
    /// How an ambiguous try before was settled, when one was.
    pub notes: Vec<Option<String>>,
}

/// Records accepted attempts: outcome, latency, the provider's message id and price.
pub async fn finish_accepted_attempts(
    conn: &mut AsyncPgConnection,
    accepted: &AcceptedAttempts,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE message_attempts a SET finished_at = $5, outcome = v.outcome, \
           error_code = NULL, error_message = v.note, latency_ms = v.latency_ms, \
           provider_message_id = v.provider_message_id, cost_usd_micros = v.cost \
         FROM unnest($1::uuid[], $2::int4[], $3::text[], $4::int8[], $6::text[], $7::text[]) \
           AS v(id, latency_ms, provider_message_id, cost, outcome, note) \
         WHERE a.id = v.id AND a.id = ANY($1)",
    )
    .bind::<Array<SqlUuid>, _>(&accepted.attempt_ids)
    .bind::<Array<Integer>, _>(&accepted.latencies_ms)
    .bind::<Array<Text>, _>(&accepted.provider_message_ids)
    .bind::<Array<Nullable<BigInt>>, _>(&accepted.costs)
    .bind::<Timestamptz, _>(now)
    .bind::<Array<Text>, _>(&accepted.outcomes)
    .bind::<Array<Nullable<Text>>, _>(&accepted.notes)
    .planned_each_run()
    .execute(conn)
    .await
    .map(|_| ())
}

/// Records an attempt that was not accepted: its outcome, code, message and latency.
pub async fn finish_attempt(
    conn: &mut AsyncPgConnection,
    attempt_id: Uuid,
    outcome: &SendOutcome,
    latency_ms: i32,
) -> QueryResult<()> {
    let (code, text) = match outcome {
        SendOutcome::Accepted { .. } => (None, None),
        SendOutcome::PermanentFailure { code, message }
        | SendOutcome::TransientFailure { code, message }
        | SendOutcome::RateLimited { code, message, .. } => (Some(code.as_str()), Some(message)),
        SendOutcome::Ambiguous { message } => (Some(AMBIGUOUS_OUTCOME), Some(message)),
    };
    diesel::update(message_attempts::table.find(attempt_id))
        .set((
            message_attempts::finished_at.eq(Utc::now()),
            message_attempts::outcome.eq(outcome.as_str()),
            message_attempts::error_code.eq(code),
            message_attempts::error_message.eq(text),
            message_attempts::latency_ms.eq(latency_ms),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Locks messages by id, in id order (whatever their status).
pub async fn lock(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<Message>> {
    messages::table
        .filter(messages::id.eq_any(ids))
        .order(messages::id)
        .select(Message::as_select())
        .for_update()
        .planned_each_run()
        .load(conn)
        .await
}

/// Locks one message, with its attempts on its current provider.
pub async fn lock_one(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<(Message, i32)> {
    messages::table
        .find(id)
        .select((Message::as_select(), messages::provider_attempts))
        .for_update()
        .first(conn)
        .await
}

/// What [`mark_sent`] records of each message, column by column.
#[derive(Debug, Default)]
pub struct SentRows {
    pub ids: Vec<Uuid>,
    pub provider_message_ids: Vec<String>,
    pub costs_usd: Vec<i64>,
    pub cost_currencies: Vec<String>,
    pub cost_amounts: Vec<i64>,
    /// An SMS's encoding and segments as sent; `None` keeps what acceptance recorded.
    pub encodings: Vec<Option<String>>,
    pub segments: Vec<Option<i32>>,
}

impl SentRows {
    /// Adds a message; without `priced` it costs nothing recorded here (0 USD).
    pub fn push(
        &mut self,
        id: Uuid,
        provider_message_id: String,
        priced: Option<&crate::delivery::deliver::Priced>,
    ) {
        let cost = priced.map(|p| p.cost.clone());
        self.push_cost(
            id,
            provider_message_id,
            cost.unwrap_or(crate::pricing::Cost {
                usd_micros: 0,
                priced: crate::pricing::Price::usd(0),
            }),
        );
        let shape = priced.and_then(|p| p.shape);
        self.encodings
            .push(shape.map(|s| s.encoding.as_str().to_owned()));
        self.segments.push(shape.map(|s| s.segments));
    }

    fn push_cost(&mut self, id: Uuid, provider_message_id: String, cost: crate::pricing::Cost) {
        self.ids.push(id);
        self.provider_message_ids.push(provider_message_id);
        self.costs_usd.push(cost.usd_micros);
        self.cost_currencies.push(cost.priced.currency);
        self.cost_amounts.push(cost.priced.micros);
    }

    /// Adds a message whose cost in USD was recorded on its attempt.
    pub fn push_usd(&mut self, id: Uuid, provider_message_id: String, usd_micros: i64) {
        self.push_cost(
            id,
            provider_message_id,
            crate::pricing::Cost {
                usd_micros,
                priced: crate::pricing::Price::usd(usd_micros),
            },
        );
        self.encodings.push(None);
        self.segments.push(None);
    }
}

/// Moves SENDING messages to SENT with their provider ids, prices and (SMS) shapes as sent.
pub async fn mark_sent(
    conn: &mut AsyncPgConnection,
    rows: &SentRows,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Message>> {
    diesel::sql_query(format!(
        "UPDATE messages m SET status = 'SENT', \
           provider_message_id = v.provider_message_id, \
           cost_usd_micros = v.cost, cost_currency = v.currency, cost_amount_micros = v.amount, \
           encoding = COALESCE(v.encoding, m.encoding), segments = COALESCE(v.segments, m.segments), \
           sent_at = $4, updated_at = $4, \
           ambiguous = false, error_code = NULL, error_message = NULL \
         FROM unnest($1::uuid[], $2::text[], $3::int8[], $5::text[], $6::int8[], $7::text[], \
                     $8::int4[]) \
           AS v(id, provider_message_id, cost, currency, amount, encoding, segments) \
         WHERE m.id = v.id AND m.id = ANY($1) \
         RETURNING {MESSAGE_COLUMNS}",
    ))
    .bind::<Array<SqlUuid>, _>(&rows.ids)
    .bind::<Array<Text>, _>(&rows.provider_message_ids)
    .bind::<Array<BigInt>, _>(&rows.costs_usd)
    .bind::<Timestamptz, _>(now)
    .bind::<Array<Text>, _>(&rows.cost_currencies)
    .bind::<Array<BigInt>, _>(&rows.cost_amounts)
    .bind::<Array<Nullable<Text>>, _>(&rows.encodings)
    .bind::<Array<Nullable<Integer>>, _>(&rows.segments)
    .planned_each_run()
    .load(conn)
    .await
}

/// Queues a message again after an attempt that did not go through. Moving on to the next
/// provider marks this one's attempts spent, so routing passes it by.
pub async fn requeue(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    retry: &Retry,
    provider_attempts: i32,
    max_attempts_per_provider: i32,
) -> QueryResult<()> {
    let now = Utc::now();
    diesel::update(messages::table.find(id))
        .set((
            messages::status.eq(MessageStatus::Queued),
            messages::next_attempt_at
                .eq(now + chrono::Duration::from_std(retry.delay).unwrap_or_default()),
            messages::error_code.eq(&retry.code),
            messages::error_message.eq(&retry.text),
            messages::ambiguous.eq(retry.ambiguous),
            messages::provider_attempts.eq(if retry.move_on {
                max_attempts_per_provider
            } else {
                provider_attempts
            }),
            messages::updated_at.eq(now),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Moves a message to FAILED with a code and text.
pub async fn fail(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    code: &str,
    text: &str,
) -> QueryResult<Message> {
    let now = Utc::now();
    diesel::update(messages::table.find(id))
        .set((
            messages::status.eq(MessageStatus::Failed),
            messages::error_code.eq(code),
            messages::error_message.eq(text),
            messages::failed_at.eq(now),
            messages::updated_at.eq(now),
            messages::next_attempt_at.eq(None::<DateTime<Utc>>),
        ))
        .returning(Message::as_returning())
        .get_result(conn)
        .await
}

/// Messages whose retry time has come or whose validity window closed, oldest first.
pub async fn due_retries(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<Uuid>> {
    let now = Utc::now();
    messages::table
        .filter(messages::status.eq(MessageStatus::Queued))
        .filter(
            messages::next_attempt_at
                .le(now)
                .or(messages::expires_at.le(now)),
        )
        .order(messages::next_attempt_at.asc())
        .limit(limit)
        .select(messages::id)
        .load(conn)
        .await
}

/// A SENDING message whose current attempt the provider accepted.
#[derive(Debug, QueryableByName)]
pub struct AcceptedSending {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub channel: Channel,
    #[diesel(sql_type = Text)]
    pub provider_message_id: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub cost_usd_micros: Option<i64>,
}

/// Locks the SENDING messages untouched for `stale_after_secs` whose current attempt is
/// recorded as accepted: the outcome was written, the message's own update was not.
pub async fn lock_accepted_sending(
    conn: &mut AsyncPgConnection,
    stale_after_secs: f64,
    limit: i64,
) -> QueryResult<Vec<AcceptedSending>> {
    diesel::sql_query(
        "SELECT m.id, m.channel, a.provider_message_id, a.cost_usd_micros \
         FROM messages m JOIN message_attempts a \
           ON a.message_id = m.id AND a.attempt_number = m.attempts \
         WHERE m.status = 'SENDING' AND m.updated_at < now() - make_interval(secs => $1) \
           AND a.outcome IN ('ACCEPTED', 'RECONCILED') AND a.provider_message_id IS NOT NULL \
         ORDER BY m.id LIMIT $2 \
         FOR UPDATE OF m SKIP LOCKED",
    )
    .bind::<diesel::sql_types::Double, _>(stale_after_secs)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}
