//! The steps of fallback chains (`message_chain_steps`): a chain's first message is step 0, and
//! each later step is PENDING until it is started (STARTED, with its message), refused when it
//! was due (REFUSED, with the error), CANCELLED, or SKIPPED because an earlier step was
//! delivered.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int2, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::cached::CacheStatement;
use super::schema::message_chain_steps as steps;

/// A step not started yet.
pub const PENDING: &str = "PENDING";
/// A step whose message exists.
pub const STARTED: &str = "STARTED";
/// A step its checks refused when it was due.
pub const REFUSED: &str = "REFUSED";
pub const CANCELLED: &str = "CANCELLED";
/// A step not needed: an earlier one was delivered.
pub const SKIPPED: &str = "SKIPPED";

/// What a later step sends: its recipient and its content, rendered at accept time.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepSpec {
    pub recipient: String,
    pub subject: Option<String>,
    pub body: String,
    pub html_body: Option<String>,
    pub reply_to: Option<String>,
    pub template_id: Option<Uuid>,
    pub template_version: Option<i32>,
}

/// A step row to insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = steps)]
pub struct NewChainStep {
    pub chain_id: Uuid,
    pub step: i16,
    pub tenant_id: Uuid,
    pub channel: String,
    pub state: &'static str,
    pub message_id: Option<Uuid>,
    pub spec: Option<Value>,
    pub after_secs: Option<i32>,
    pub plan_tier: String,
    pub due_at: Option<DateTime<Utc>>,
}

/// A step row.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = steps)]
pub struct ChainStep {
    pub chain_id: Uuid,
    pub step: i16,
    pub tenant_id: Uuid,
    pub channel: String,
    pub state: String,
    pub message_id: Option<Uuid>,
    pub spec: Option<Value>,
    pub after_secs: Option<i32>,
    pub plan_tier: String,
}

pub async fn insert_steps(conn: &mut AsyncPgConnection, rows: &[NewChainStep]) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    diesel::insert_into(steps::table)
        .values(rows)
        .execute(conn)
        .await
        .map(|_| ())
}

/// One step of a chain.
pub async fn get_step(
    conn: &mut AsyncPgConnection,
    chain_id: Uuid,
    step: i16,
) -> QueryResult<Option<ChainStep>> {
    steps::table
        .find((chain_id, step))
        .select(ChainStep::as_select())
        .first(conn)
        .await
        .optional()
}

/// One step of a chain, locked for the caller's transaction.
pub async fn lock_step(
    conn: &mut AsyncPgConnection,
    chain_id: Uuid,
    step: i16,
) -> QueryResult<Option<ChainStep>> {
    steps::table
        .find((chain_id, step))
        .select(ChainStep::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// The step whose message `message_id` is.
pub async fn step_of_message(
    conn: &mut AsyncPgConnection,
    chain_id: Uuid,
    message_id: Uuid,
) -> QueryResult<Option<i16>> {
    steps::table
        .filter(steps::chain_id.eq(chain_id))
        .filter(steps::message_id.eq(message_id))
        .select(steps::step)
        .first(conn)
        .await
        .optional()
}

/// Records a step as started with its message; the next step, if it waits on this one with
/// `after_secs`, becomes due that long from now.
pub async fn start_step(
    conn: &mut AsyncPgConnection,
    chain_id: Uuid,
    step: i16,
    message_id: Uuid,
    reason: &str,
) -> QueryResult<()> {
    diesel::sql_query(
        "WITH s AS ( \
           UPDATE message_chain_steps SET state = 'STARTED', message_id = $3, reason = $4, \
             updated_at = now() \
           WHERE chain_id = $1 AND step = $2) \
         UPDATE message_chain_steps \
         SET due_at = now() + make_interval(secs => after_secs), updated_at = now() \
         WHERE chain_id = $1 AND step = $2 + 1 AND state = 'PENDING' AND after_secs IS NOT NULL",
    )
    .bind::<SqlUuid, _>(chain_id)
    .bind::<Int2, _>(step)
    .bind::<SqlUuid, _>(message_id)
    .bind::<Text, _>(reason)
    .cached()
    .execute(conn)
    .await
    .map(|_| ())
}

/// Records a step as refused with the error its checks gave.
pub async fn refuse_step(
    conn: &mut AsyncPgConnection,
    chain_id: Uuid,
    step: i16,
    reason: &str,
    code: &str,
    message: &str,
) -> QueryResult<()> {
    diesel::update(steps::table.find((chain_id, step)))
        .set((
            steps::state.eq(REFUSED),
            steps::reason.eq(reason),
            steps::error_code.eq(code),
            steps::error_message.eq(message),
            steps::due_at.eq(None::<DateTime<Utc>>),
            steps::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Ends the chain's pending steps with `state` (SKIPPED or CANCELLED); returns how many.
pub async fn end_pending(
    conn: &mut AsyncPgConnection,
    chain_id: Uuid,
    state: &'static str,
    reason: &str,
) -> QueryResult<usize> {
    diesel::update(
        steps::table
            .filter(steps::chain_id.eq(chain_id))
            .filter(steps::state.eq(PENDING)),
    )
    .set((
        steps::state.eq(state),
        steps::reason.eq(reason),
        steps::due_at.eq(None::<DateTime<Utc>>),
        steps::updated_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await
}

/// A pending step whose `after_secs` has run out.
#[derive(Debug, QueryableByName)]
pub struct DueStep {
    #[diesel(sql_type = SqlUuid)]
    pub chain_id: Uuid,
    #[diesel(sql_type = Int2)]
    pub step: i16,
    #[diesel(sql_type = SqlUuid)]
    pub tenant_id: Uuid,
}

/// Pending steps whose time has come, oldest first.
pub async fn due_steps(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<DueStep>> {
    diesel::sql_query(
        "SELECT chain_id, step, tenant_id FROM message_chain_steps \
         WHERE state = 'PENDING' AND due_at IS NOT NULL AND due_at <= now() \
         ORDER BY due_at LIMIT $1",
    )
    .bind::<BigInt, _>(limit)
    .cached()
    .load(conn)
    .await
}

/// Whether a message of the chain has reached DELIVERED or READ.
pub async fn delivered(conn: &mut AsyncPgConnection, chain_id: Uuid) -> QueryResult<bool> {
    use super::schema::messages;
    diesel::select(diesel::dsl::exists(
        messages::table
            .filter(messages::chain_id.eq(chain_id))
            .filter(messages::status.eq_any(["DELIVERED", "READ"])),
    ))
    .get_result(conn)
    .await
}

/// A step as the message view shows it: its row, and its message's status and error once
/// it has one.
#[derive(Clone, Debug, QueryableByName)]
pub struct StepView {
    #[diesel(sql_type = SqlUuid)]
    pub chain_id: Uuid,
    #[diesel(sql_type = Int2)]
    pub step: i16,
    #[diesel(sql_type = Text)]
    pub channel: String,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub message_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Int4>)]
    pub after_secs: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    pub reason: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub due_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub message_status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub error_code: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub error_message: Option<String>,
}

/// The steps of the tenant's chains `chain_ids`, in order.
pub async fn step_views(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    chain_ids: &[Uuid],
) -> QueryResult<Vec<StepView>> {
    if chain_ids.is_empty() {
        return Ok(Vec::new());
    }
    diesel::sql_query(
        "SELECT s.chain_id, s.step, s.channel, s.state, s.message_id, s.after_secs, s.reason, \
           s.due_at, m.status AS message_status, \
           COALESCE(m.error_code, s.error_code) AS error_code, \
           COALESCE(m.error_message, s.error_message) AS error_message \
         FROM message_chain_steps s LEFT JOIN messages m ON m.id = s.message_id \
         WHERE s.tenant_id = $1 AND s.chain_id = ANY($2) \
         ORDER BY s.chain_id, s.step",
    )
    .bind::<SqlUuid, _>(tenant_id)
    .bind::<diesel::sql_types::Array<SqlUuid>, _>(chain_ids)
    .cached()
    .load(conn)
    .await
}

/// The chain's messages other than `except` that can still be cancelled (SCHEDULED or
/// QUEUED), locked for the caller's transaction.
pub async fn lock_cancellable(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    chain_id: Uuid,
    except: Uuid,
) -> QueryResult<Vec<super::messages::Message>> {
    use super::messages::Message;
    use super::schema::messages;
    messages::table
        .filter(messages::tenant_id.eq(tenant_id))
        .filter(messages::chain_id.eq(chain_id))
        .filter(messages::id.ne(except))
        .filter(messages::status.eq_any(["SCHEDULED", "QUEUED"]))
        .order(messages::id)
        .select(Message::as_select())
        .for_update()
        .load(conn)
        .await
}
