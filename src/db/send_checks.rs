//! The statements of the send path that check before they write: one that checks a single
//! send against the recipient's opt-outs and the tenant's providers (their countries too) and
//! inserts it with its event only if they allow it, and one that reads what a batch of sends is
//! checked against.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use super::cached::CacheStatement;
use super::messages::NewMessage;

/// An outbox row written by [`insert_checked_message`] (the outbox module builds it).
pub struct EventRow<'a> {
    pub id: Uuid,
    pub aggregate_type: &'a str,
    pub topic: &'a str,
    pub payload: Value,
    pub lane: i16,
}

/// What [`insert_checked_message`] found, and whether it inserted.
#[derive(Debug, QueryableByName)]
pub struct Checked {
    /// The recipient opted out of the channel or of all.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub opted_out: bool,
    /// An active provider of the tenant carries the channel (and is the pinned one, if any).
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub usable: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub inserted: bool,
}

/// Checks and inserts one message and its event: `blocked` and `usable` are the checks the
/// send must pass, and the two inserts happen only if it does. A CTE named twice is computed
/// once, so the answer reports exactly what the insert saw.
const CHECKED_MESSAGE_SQL: &str = "\
    WITH blocked AS ( \
      SELECT 1 FROM opt_outs o \
      WHERE o.tenant_id = $2 AND o.removed_at IS NULL AND o.recipient = $4 \
        AND o.channel IN ($3, 'ALL') \
      LIMIT 1), \
    usable AS ( \
      SELECT 1 FROM providers p \
      WHERE p.tenant_id = $2 AND p.deleted_at IS NULL AND p.is_active \
        AND p.channels @> ARRAY[$3] AND ($10::uuid IS NULL OR p.id = $10) \
        AND (NOT $30::bool OR NOT (p.config ? 'countries') OR p.config -> 'countries' ? $29::text) \
      LIMIT 1), \
    m AS ( \
      INSERT INTO messages (id, tenant_id, channel, recipient, status, subject, body, \
        template_id, template_version, pinned_provider_id, metadata, source_event_id, \
        scheduled_at, created_at, updated_at, notification_id, html_body, reply_to, priority, \
        expires_at, chain_id, encoding, segments, media) \
      SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
        $19, $25, $26, $27, $28, $31 \
      WHERE NOT EXISTS (SELECT 1 FROM blocked) AND EXISTS (SELECT 1 FROM usable) \
      RETURNING id, tenant_id), \
    o AS ( \
      INSERT INTO outbox_events (id, tenant_id, aggregate_type, aggregate_id, topic, payload, \
        lane) \
      SELECT $20, m.tenant_id, $21, m.id, $22, $23, $24 FROM m) \
    SELECT EXISTS (SELECT 1 FROM blocked) AS opted_out, EXISTS (SELECT 1 FROM usable) AS usable, \
      EXISTS (SELECT 1 FROM m) AS inserted";

/// Checks one send against the recipient's opt-outs and the tenant's providers and, if both
/// allow it, inserts the message and its event, all in one statement: atomic on its own, so a
/// send that needs nothing else written does it without a transaction (no `BEGIN`, no
/// `COMMIT` round trip).
pub async fn insert_checked_message(
    conn: &mut AsyncPgConnection,
    row: &NewMessage,
    event: EventRow<'_>,
) -> QueryResult<Checked> {
    use diesel::sql_types::{Int2, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
    diesel::sql_query(CHECKED_MESSAGE_SQL)
        .bind::<SqlUuid, _>(row.id)
        .bind::<SqlUuid, _>(row.tenant_id)
        .bind::<Text, _>(row.channel.as_str())
        .bind::<Text, _>(&row.recipient)
        .bind::<Text, _>(row.status.as_str())
        .bind::<Nullable<Text>, _>(row.subject.as_deref())
        .bind::<Text, _>(&row.body)
        .bind::<Nullable<SqlUuid>, _>(row.template_id)
        .bind::<Nullable<Int4>, _>(row.template_version)
        .bind::<Nullable<SqlUuid>, _>(row.pinned_provider_id)
        .bind::<Jsonb, _>(&row.metadata)
        .bind::<Nullable<Text>, _>(row.source_event_id.as_deref())
        .bind::<Nullable<Timestamptz>, _>(row.scheduled_at)
        .bind::<Timestamptz, _>(row.created_at)
        .bind::<Timestamptz, _>(row.updated_at)
        .bind::<Nullable<Text>, _>(row.notification_id.as_deref())
        .bind::<Nullable<Text>, _>(row.html_body.as_deref())
        .bind::<Nullable<Text>, _>(row.reply_to.as_deref())
        .bind::<Text, _>(row.priority.as_str())
        .bind::<SqlUuid, _>(event.id)
        .bind::<Text, _>(event.aggregate_type)
        .bind::<Text, _>(event.topic)
        .bind::<Jsonb, _>(event.payload)
        .bind::<Int2, _>(event.lane)
        .bind::<Nullable<Timestamptz>, _>(row.expires_at)
        .bind::<Nullable<SqlUuid>, _>(row.chain_id)
        .bind::<Nullable<Text>, _>(row.encoding.as_deref())
        .bind::<Nullable<Int4>, _>(row.segments)
        .bind::<Nullable<Text>, _>(row.country.as_deref())
        .bind::<diesel::sql_types::Bool, _>(row.channel.takes_phone_numbers())
        .bind::<Nullable<Jsonb>, _>(row.media.as_ref())
        .cached()
        .get_result(conn)
        .await
}

/// What a send is checked against, read in one statement: which of `recipients` have opted
/// out of which channel (or `ALL`), and each of `channels`' active providers, best first.
#[derive(Debug, Default)]
pub struct SendLookups {
    pub opted_out: std::collections::HashSet<(String, String)>,
    pub providers: std::collections::HashMap<String, Vec<ActiveProvider>>,
}

/// An active provider of a channel, and its `config` (which may limit its countries).
#[derive(Clone, Debug)]
pub struct ActiveProvider {
    pub id: Uuid,
    pub config: Value,
}

pub async fn send_lookups(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    recipients: Vec<String>,
    channels: Vec<String>,
) -> QueryResult<SendLookups> {
    use diesel::sql_types::{Array, Nullable, Text, Uuid as SqlUuid};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        kind: String,
        #[diesel(sql_type = Text)]
        a: String,
        #[diesel(sql_type = Nullable<Text>)]
        b: Option<String>,
        #[diesel(sql_type = Nullable<SqlUuid>)]
        id: Option<Uuid>,
        #[diesel(sql_type = Nullable<diesel::sql_types::Jsonb>)]
        config: Option<Value>,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT 'o' AS kind, o.recipient AS a, o.channel AS b, NULL::uuid AS id, 0 AS prio, \
           NULL::jsonb AS config \
         FROM opt_outs o \
         WHERE o.tenant_id = $1 AND o.removed_at IS NULL AND o.recipient = ANY($2) \
         UNION ALL \
         SELECT 'p', c.channel, NULL, p.id, p.priority, p.config \
         FROM unnest($3::text[]) AS c(channel) \
         JOIN providers p ON p.tenant_id = $1 AND p.deleted_at IS NULL AND p.is_active \
           AND p.channels @> ARRAY[c.channel] \
         ORDER BY 1, 5, 4",
    )
    .bind::<SqlUuid, _>(tenant_id)
    .bind::<Array<Text>, _>(recipients)
    .bind::<Array<Text>, _>(channels)
    .cached()
    .load(conn)
    .await?;
    let mut out = SendLookups::default();
    for row in rows {
        match (row.kind.as_str(), row.b, row.id) {
            ("o", Some(channel), _) => {
                out.opted_out.insert((row.a, channel));
            }
            (_, _, Some(id)) => out
                .providers
                .entry(row.a)
                .or_default()
                .push(ActiveProvider {
                    id,
                    config: row.config.unwrap_or(Value::Null),
                }),
            _ => {}
        }
    }
    Ok(out)
}
