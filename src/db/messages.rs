//! Message and attempt rows and their queries, always scoped by tenant.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use super::cached::CacheStatement;
use super::schema::{message_attempts, messages};
use crate::domain::{Channel, MessageStatus, Priority};

/// A message row.
#[derive(Clone, Debug, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = messages)]
pub struct Message {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub channel: Channel,
    pub recipient: String,
    pub status: MessageStatus,
    pub subject: Option<String>,
    pub body: String,
    pub template_id: Option<Uuid>,
    pub template_version: Option<i32>,
    pub pinned_provider_id: Option<Uuid>,
    pub provider_id: Option<Uuid>,
    pub provider_kind: Option<String>,
    pub provider_message_id: Option<String>,
    pub attempts: i32,
    pub cost_usd_micros: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub metadata: Value,
    pub source_event_id: Option<String>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// notify-svc's id of the notification this message was sent for.
    pub notification_id: Option<String>,
    /// The HTML part of an e-mail (`body` is its plain-text part).
    pub html_body: Option<String>,
    pub reply_to: Option<String>,
    pub priority: Priority,
    /// The end of its validity window (`ttl_secs`): not handed to a provider by then, it fails
    /// with EXPIRED.
    pub expires_at: Option<DateTime<Utc>>,
    /// The chain it is a step of (the id of the chain's first message), when it has fallback
    /// steps or is one.
    pub chain_id: Option<Uuid>,
    /// SMS: `GSM-7` or `UCS-2`, as accepted, then as sent.
    pub encoding: Option<String>,
    /// SMS: how many segments carriers split it in.
    pub segments: Option<i32>,
    /// The currency it was priced in: its provider's, or USD from the price table.
    pub cost_currency: Option<String>,
    /// The price in that currency, in millionths.
    pub cost_amount_micros: Option<i64>,
    /// `[{ url, content_type, filename }]`, when it carries media.
    pub media: Option<Value>,
}

/// The columns of [`Message`] for raw SQL that returns messages from the table aliased `m`.
/// Listed rather than `m.*`: a kept prepared statement that returns `*` fails ("cached plan
/// must not change result type") once a migration adds a column while the process runs.
pub const MESSAGE_COLUMNS: &str = "\
    m.id, m.tenant_id, m.channel, m.recipient, m.status, m.subject, m.body, m.template_id, \
    m.template_version, m.pinned_provider_id, m.provider_id, m.provider_kind, \
    m.provider_message_id, m.attempts, m.cost_usd_micros, m.error_code, m.error_message, \
    m.metadata, m.source_event_id, m.scheduled_at, m.created_at, m.updated_at, m.sent_at, \
    m.delivered_at, m.read_at, m.failed_at, m.cancelled_at, m.notification_id, m.html_body, m.reply_to, \
    m.priority, m.expires_at, m.chain_id, m.encoding, m.segments, m.cost_currency, \
    m.cost_amount_micros, m.media";

/// A message to insert.
#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = messages)]
pub struct NewMessage {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub channel: Channel,
    pub recipient: String,
    pub status: MessageStatus,
    pub subject: Option<String>,
    pub body: String,
    pub template_id: Option<Uuid>,
    pub template_version: Option<i32>,
    pub pinned_provider_id: Option<Uuid>,
    pub metadata: Value,
    pub source_event_id: Option<String>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub notification_id: Option<String>,
    pub html_body: Option<String>,
    pub reply_to: Option<String>,
    pub priority: Priority,
    pub expires_at: Option<DateTime<Utc>>,
    pub chain_id: Option<Uuid>,
    pub encoding: Option<String>,
    pub segments: Option<i32>,
    pub media: Option<Value>,
    /// The ISO 3166 country of a phone recipient (known from its parse), which providers
    /// limited to some countries are checked against; not a column.
    #[diesel(skip_insertion)]
    pub country: Option<String>,
}

impl NewMessage {
    /// The row as it is once inserted, before anything else happens to it: no provider, no
    /// attempt, no outcome (the events of its acceptance are built from it before the insert).
    pub fn as_inserted(&self) -> Message {
        Message {
            id: self.id,
            tenant_id: self.tenant_id,
            channel: self.channel,
            recipient: self.recipient.clone(),
            status: self.status,
            subject: self.subject.clone(),
            body: self.body.clone(),
            template_id: self.template_id,
            template_version: self.template_version,
            pinned_provider_id: self.pinned_provider_id,
            provider_id: None,
            provider_kind: None,
            provider_message_id: None,
            attempts: 0,
            cost_usd_micros: None,
            error_code: None,
            error_message: None,
            metadata: self.metadata.clone(),
            source_event_id: self.source_event_id.clone(),
            scheduled_at: self.scheduled_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            failed_at: None,
            cancelled_at: None,
            notification_id: self.notification_id.clone(),
            html_body: self.html_body.clone(),
            reply_to: self.reply_to.clone(),
            priority: self.priority,
            expires_at: self.expires_at,
            chain_id: self.chain_id,
            encoding: self.encoding.clone(),
            segments: self.segments,
            cost_currency: None,
            cost_amount_micros: None,
            media: self.media.clone(),
        }
    }
}

/// An attempt row.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = message_attempts)]
pub struct Attempt {
    pub id: Uuid,
    pub message_id: Uuid,
    pub tenant_id: Uuid,
    pub attempt_number: i32,
    pub provider_id: Uuid,
    pub provider_kind: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub latency_ms: Option<i32>,
    pub provider_message_id: Option<String>,
}

/// Filters of the message list; every field narrows it.
#[derive(Debug, Default)]
pub struct MessageFilter {
    pub status: Option<String>,
    pub channel: Option<String>,
    pub recipient: Option<String>,
    pub provider_id: Option<Uuid>,
    pub provider_kind: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

pub async fn insert_messages(
    conn: &mut AsyncPgConnection,
    rows: &[NewMessage],
) -> QueryResult<Vec<Message>> {
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(1000) {
        out.extend(match chunk {
            // One row (every single send): its text varies only with which optional columns
            // are empty (DEFAULT), a bounded set, so its statements are kept.
            [row] => {
                diesel::insert_into(messages::table)
                    .values(row)
                    .returning(Message::as_returning())
                    .cached()
                    .get_results(conn)
                    .await?
            }
            _ => {
                diesel::insert_into(messages::table)
                    .values(chunk)
                    .returning(Message::as_returning())
                    .get_results(conn)
                    .await?
            }
        });
    }
    Ok(out)
}

pub use super::send_checks::*;

pub async fn get_message(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Message>> {
    messages::table
        .filter(messages::tenant_id.eq(tenant_id))
        .filter(messages::id.eq(id))
        .select(Message::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn lock_message(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Message>> {
    messages::table
        .filter(messages::tenant_id.eq(tenant_id))
        .filter(messages::id.eq(id))
        .select(Message::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Newest first, `limit + 1` rows older than the cursor.
pub async fn list_messages(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    filter: &MessageFilter,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<Message>> {
    let mut query = messages::table
        .filter(messages::tenant_id.eq(tenant_id))
        .select(Message::as_select())
        .order(messages::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(messages::id.lt(before));
    }
    if let Some(status) = &filter.status {
        query = query.filter(messages::status.eq(status.clone()));
    }
    if let Some(channel) = &filter.channel {
        query = query.filter(messages::channel.eq(channel.clone()));
    }
    if let Some(recipient) = &filter.recipient {
        query = query.filter(messages::recipient.eq(recipient.clone()));
    }
    if let Some(id) = filter.provider_id {
        query = query.filter(messages::provider_id.eq(id));
    }
    if let Some(kind) = &filter.provider_kind {
        query = query.filter(messages::provider_kind.eq(kind.clone()));
    }
    if let Some(after) = filter.created_after {
        query = query.filter(messages::created_at.ge(after));
    }
    if let Some(before) = filter.created_before {
        query = query.filter(messages::created_at.lt(before));
    }
    query.load(conn).await
}

pub async fn list_attempts(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    message_id: Uuid,
) -> QueryResult<Vec<Attempt>> {
    message_attempts::table
        .filter(message_attempts::tenant_id.eq(tenant_id))
        .filter(message_attempts::message_id.eq(message_id))
        .order(message_attempts::attempt_number.asc())
        .select(Attempt::as_select())
        .load(conn)
        .await
}

/// Marks a message cancelled; the caller has checked its state under a lock.
pub async fn mark_cancelled(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Message> {
    let now = Utc::now();
    diesel::update(messages::table.find(id))
        .set((
            messages::status.eq(MessageStatus::Cancelled),
            messages::cancelled_at.eq(now),
            messages::updated_at.eq(now),
        ))
        .returning(Message::as_returning())
        .get_result(conn)
        .await
}

/// A SANDBOX message whose delivery report is due, and its provider.
#[derive(QueryableByName)]
pub struct DueSandboxReport {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub message_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub provider_id: Uuid,
}

/// SENT messages of SANDBOX providers whose `delivery_delay_ms` has passed, oldest first.
pub async fn due_sandbox_reports(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> QueryResult<Vec<DueSandboxReport>> {
    diesel::sql_query(
        "SELECT m.id AS message_id, m.provider_id \
         FROM messages m JOIN providers p ON p.id = m.provider_id \
         WHERE m.status = 'SENT' AND m.provider_kind = 'SANDBOX' \
           AND m.sent_at <= now() - make_interval(secs => \
                 CASE WHEN jsonb_typeof(p.config -> 'delivery_delay_ms') = 'number' \
                      THEN (p.config ->> 'delivery_delay_ms')::float8 / 1000 ELSE 0 END) \
         ORDER BY m.sent_at LIMIT $1",
    )
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .cached()
    .load(conn)
    .await
}
