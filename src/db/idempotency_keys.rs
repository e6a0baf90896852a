//! The `idempotency_keys` table: one stored answer per (tenant, key), and the advisory lock
//! that tells a key still in its first transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::cached::CacheStatement;
use super::schema::idempotency_keys;

/// The request a key was first used for, and the answer stored for it.
#[derive(Queryable)]
pub struct StoredAnswer {
    pub method: String,
    pub path: String,
    pub fingerprint: Vec<u8>,
    pub status_code: i32,
    pub response_body: Vec<u8>,
}

/// An answer to store under a key.
pub struct NewAnswer<'a> {
    pub tenant_id: Uuid,
    pub key: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub fingerprint: &'a [u8],
    pub status_code: i32,
    pub response_body: &'a [u8],
    pub expires_at: DateTime<Utc>,
}

/// Takes the transaction-scoped lock of (tenant, key); `false` when another transaction holds it.
pub async fn try_lock(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    key: &str,
) -> QueryResult<bool> {
    diesel::select(
        diesel::dsl::sql::<Bool>("pg_try_advisory_xact_lock(hashtextextended(")
            .bind::<Text, _>(format!("{tenant_id}:{key}"))
            .sql(", 7))"),
    )
    .cached()
    .get_result(conn)
    .await
}

/// The unexpired answer stored under (tenant, key).
pub async fn find_live(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    key: &str,
) -> QueryResult<Option<StoredAnswer>> {
    idempotency_keys::table
        .filter(idempotency_keys::tenant_id.eq(tenant_id))
        .filter(idempotency_keys::key.eq(key))
        .filter(idempotency_keys::expires_at.gt(Utc::now()))
        .select((
            idempotency_keys::method,
            idempotency_keys::path,
            idempotency_keys::fingerprint,
            idempotency_keys::status_code,
            idempotency_keys::response_body,
        ))
        .first(conn)
        .await
        .optional()
}

/// The row an answer is stored as; the same values replace an expired row under the key.
#[derive(Insertable, AsChangeset)]
#[diesel(table_name = idempotency_keys)]
struct AnswerRow<'a> {
    tenant_id: Uuid,
    key: &'a str,
    method: &'a str,
    path: &'a str,
    fingerprint: &'a [u8],
    status_code: i32,
    response_body: &'a [u8],
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// Stores an answer, replacing an expired one under the same key.
pub async fn store(conn: &mut AsyncPgConnection, answer: &NewAnswer<'_>) -> QueryResult<()> {
    let row = AnswerRow {
        tenant_id: answer.tenant_id,
        key: answer.key,
        method: answer.method,
        path: answer.path,
        fingerprint: answer.fingerprint,
        status_code: answer.status_code,
        response_body: answer.response_body,
        created_at: Utc::now(),
        expires_at: answer.expires_at,
    };
    diesel::insert_into(idempotency_keys::table)
        .values(&row)
        .on_conflict((idempotency_keys::tenant_id, idempotency_keys::key))
        .do_update()
        .set(&row)
        .cached()
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes expired keys; returns how many.
pub async fn purge_expired(conn: &mut AsyncPgConnection) -> QueryResult<usize> {
    diesel::delete(idempotency_keys::table.filter(idempotency_keys::expires_at.lt(Utc::now())))
        .execute(conn)
        .await
}
