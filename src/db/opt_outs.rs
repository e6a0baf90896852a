//! The opt-out ledger and its queries. Recipients are stored and compared normalised (parse
//! them with `Recipient` first). Removing an opt-out stamps `removed_at`: the row stays as
//! history and every "active" query ignores it. At most one active row exists per
//! (tenant, recipient, channel or ALL).

use chrono::{DateTime, Utc};
use diesel::dsl::AsSelect;
use diesel::helper_types::SqlTypeOf;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::upsert::DecoratableTarget;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::opt_outs;
use crate::domain::opt_out::OptOutScope;
use crate::domain::{Channel, OptOutId};

/// An opt-out row.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = opt_outs)]
pub struct OptOut {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub recipient: String,
    /// A channel, or `ALL`.
    pub channel: String,
    pub source: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub removed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = opt_outs)]
struct NewOptOut<'a> {
    id: Uuid,
    tenant_id: Uuid,
    recipient: &'a str,
    channel: &'a str,
    source: &'a str,
    reason: Option<&'a str>,
}

/// Filters of the opt-out list.
#[derive(Debug, Default)]
pub struct OptOutFilter {
    /// Normalised.
    pub recipient: Option<String>,
    pub channel: Option<String>,
    pub source: Option<String>,
}

/// The recipient's active opt-out for `channel`, or for ALL channels (the channel's own row
/// wins when both exist).
pub async fn find_active_opt_out(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    recipient: &str,
    channel: Channel,
) -> QueryResult<Option<OptOut>> {
    let rows = active_rows(tenant_id, recipient)
        .filter(opt_outs::channel.eq_any([channel.as_str(), OptOutScope::ALL_STR]))
        .load::<OptOut>(conn)
        .await?;
    let specific = rows
        .iter()
        .position(|r| r.channel == channel.as_str())
        .unwrap_or(0);
    Ok(rows.into_iter().nth(specific))
}

/// Every active opt-out of the recipient, whatever its channel (ALL first, then oldest).
pub async fn find_active_opt_outs(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    recipient: &str,
) -> QueryResult<Vec<OptOut>> {
    let mut rows = active_rows(tenant_id, recipient)
        .load::<OptOut>(conn)
        .await?;
    rows.sort_by_key(|r| (r.channel != OptOutScope::ALL_STR, r.id));
    Ok(rows)
}

/// The active opt-out with exactly this channel (or `ALL`).
pub async fn find_exact(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    recipient: &str,
    channel_or_all: &str,
) -> QueryResult<Option<OptOut>> {
    active_rows(tenant_id, recipient)
        .filter(opt_outs::channel.eq(channel_or_all.to_owned()))
        .first(conn)
        .await
        .optional()
}

type ActiveRows<'a> = opt_outs::BoxedQuery<'a, Pg, SqlTypeOf<AsSelect<OptOut, Pg>>>;

fn active_rows(tenant_id: Uuid, recipient: &str) -> ActiveRows<'_> {
    opt_outs::table
        .filter(opt_outs::tenant_id.eq(tenant_id))
        .filter(opt_outs::recipient.eq(recipient))
        .filter(opt_outs::removed_at.is_null())
        .select(OptOut::as_select())
        .into_boxed()
}

/// Adds an opt-out unless an active one exists for (recipient, channel or ALL); returns the
/// active row and whether it was created now. Safe under concurrent calls.
pub async fn add_opt_out(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    recipient: &str,
    channel_or_all: &str,
    source: &str,
    reason: Option<&str>,
) -> QueryResult<(OptOut, bool)> {
    // A concurrent removal can make the existing row vanish between the insert that found it
    // and the read; trying again then inserts.
    for _ in 0..3 {
        let new = NewOptOut {
            id: OptOutId::generate().uuid(),
            tenant_id,
            recipient,
            channel: channel_or_all,
            source,
            reason,
        };
        let inserted = diesel::insert_into(opt_outs::table)
            .values(&new)
            .on_conflict((opt_outs::tenant_id, opt_outs::recipient, opt_outs::channel))
            .filter_target(opt_outs::removed_at.is_null())
            .do_nothing()
            .returning(OptOut::as_returning())
            .get_result(conn)
            .await
            .optional()?;
        if let Some(row) = inserted {
            return Ok((row, true));
        }
        if let Some(row) = find_exact(conn, tenant_id, recipient, channel_or_all).await? {
            return Ok((row, false));
        }
    }
    Err(diesel::result::Error::NotFound)
}

/// Removes the active opt-out of (recipient, exactly this channel or ALL); returns how many
/// rows were removed (0 or 1).
pub async fn remove_opt_out_for(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    recipient: &str,
    channel_or_all: &str,
) -> QueryResult<usize> {
    diesel::update(
        opt_outs::table
            .filter(opt_outs::tenant_id.eq(tenant_id))
            .filter(opt_outs::recipient.eq(recipient))
            .filter(opt_outs::channel.eq(channel_or_all))
            .filter(opt_outs::removed_at.is_null()),
    )
    .set(opt_outs::removed_at.eq(Utc::now()))
    .execute(conn)
    .await
}

/// Removes one active opt-out by id; returns whether it was active.
pub async fn remove_opt_out(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> QueryResult<bool> {
    let n = diesel::update(
        opt_outs::table
            .filter(opt_outs::tenant_id.eq(tenant_id))
            .filter(opt_outs::id.eq(id))
            .filter(opt_outs::removed_at.is_null()),
    )
    .set(opt_outs::removed_at.eq(Utc::now()))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Active opt-outs, newest first, `limit + 1` rows after the cursor.
pub async fn list_opt_outs(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    filter: &OptOutFilter,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<OptOut>> {
    let mut query = opt_outs::table
        .filter(opt_outs::tenant_id.eq(tenant_id))
        .filter(opt_outs::removed_at.is_null())
        .select(OptOut::as_select())
        .order(opt_outs::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(opt_outs::id.lt(before));
    }
    if let Some(recipient) = &filter.recipient {
        query = query.filter(opt_outs::recipient.eq(recipient.clone()));
    }
    if let Some(channel) = &filter.channel {
        query = query.filter(opt_outs::channel.eq(channel.clone()));
    }
    if let Some(source) = &filter.source {
        query = query.filter(opt_outs::source.eq(source.clone()));
    }
    query.load(conn).await
}
