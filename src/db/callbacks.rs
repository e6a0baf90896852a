//! Stored provider callbacks and the event identities they claimed. A callback row is the raw
//! request, written before anything is applied; an event row is written in the transaction
//! that applies the event, so the unique (provider, event key) makes a redelivered event a
//! no-op even when it arrives concurrently or inside a differently shaped batch.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use super::providers::Provider;
use super::schema::{provider_callback_events, provider_callbacks, providers};

/// A raw callback to store.
#[derive(Debug, Insertable)]
#[diesel(table_name = provider_callbacks)]
pub struct NewCallback<'a> {
    pub id: Uuid,
    pub provider_id: Uuid,
    pub tenant_id: Uuid,
    pub kind: &'a str,
    pub dedupe_key: &'a str,
    pub headers: Value,
    pub body: &'a [u8],
}

/// A live provider by id, whatever its tenant: callbacks carry no token, the provider names
/// the tenant.
pub async fn get_provider_by_id(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<Provider>> {
    providers::table
        .filter(providers::id.eq(id))
        .filter(providers::deleted_at.is_null())
        .select(Provider::as_select())
        .first(conn)
        .await
        .optional()
}

/// Stores a callback unless one with the same identity exists; returns the stored row's id
/// and when it was processed (`None` for a new row or one whose processing never finished).
pub async fn store_callback(
    conn: &mut AsyncPgConnection,
    new: &NewCallback<'_>,
) -> QueryResult<(Uuid, Option<DateTime<Utc>>, bool)> {
    let inserted: Option<Uuid> = diesel::insert_into(provider_callbacks::table)
        .values(new)
        .on_conflict((
            provider_callbacks::provider_id,
            provider_callbacks::dedupe_key,
        ))
        .do_nothing()
        .returning(provider_callbacks::id)
        .get_result(conn)
        .await
        .optional()?;
    if let Some(id) = inserted {
        return Ok((id, None, true));
    }
    let (id, processed_at) = provider_callbacks::table
        .filter(provider_callbacks::provider_id.eq(new.provider_id))
        .filter(provider_callbacks::dedupe_key.eq(new.dedupe_key))
        .select((provider_callbacks::id, provider_callbacks::processed_at))
        .first(conn)
        .await?;
    Ok((id, processed_at, false))
}

/// Records how processing a callback ended.
pub async fn finish_callback(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    outcome: &str,
    error: Option<&str>,
) -> QueryResult<()> {
    diesel::update(provider_callbacks::table.find(id))
        .set((
            provider_callbacks::processed_at.eq(Utc::now()),
            provider_callbacks::outcome.eq(outcome),
            provider_callbacks::error.eq(error),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Claims an event identity for this callback; `false` when it was claimed before (the event
/// was already applied). A concurrent claim of the same identity waits for the first
/// transaction and then reports `false`.
pub async fn claim_event(
    conn: &mut AsyncPgConnection,
    provider_id: Uuid,
    event_key: &str,
    callback_id: Uuid,
    tenant_id: Uuid,
) -> QueryResult<bool> {
    let n = diesel::insert_into(provider_callback_events::table)
        .values((
            provider_callback_events::provider_id.eq(provider_id),
            provider_callback_events::event_key.eq(event_key),
            provider_callback_events::callback_id.eq(callback_id),
            provider_callback_events::tenant_id.eq(tenant_id),
            provider_callback_events::outcome.eq("PENDING"),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// Records what a claimed event did.
pub async fn set_event_outcome(
    conn: &mut AsyncPgConnection,
    provider_id: Uuid,
    event_key: &str,
    outcome: &str,
    message_id: Option<Uuid>,
) -> QueryResult<()> {
    diesel::update(provider_callback_events::table.find((provider_id, event_key)))
        .set((
            provider_callback_events::outcome.eq(outcome),
            provider_callback_events::message_id.eq(message_id),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Deletes callbacks (and their event identities) received before `before`.
pub async fn purge_callbacks(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::delete(provider_callbacks::table.filter(provider_callbacks::received_at.lt(before)))
        .execute(conn)
        .await
}

/// Notes why processing a callback failed; it stays unprocessed, so a redelivery retries it.
pub async fn note_callback_error(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    error: &str,
) -> QueryResult<()> {
    diesel::update(provider_callbacks::table.find(id))
        .set(provider_callbacks::error.eq(error))
        .execute(conn)
        .await
        .map(|_| ())
}
