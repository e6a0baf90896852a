//! The audit log: one row per change to a tenant's configuration, written in the change's own
//! transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use super::schema::audit_log;

/// An audit row.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// `user` or `api_key`.
    pub actor_type: String,
    pub actor_id: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub request_id: Option<Uuid>,
    pub changes: Value,
    pub created_at: DateTime<Utc>,
}

pub async fn insert(conn: &mut AsyncPgConnection, entry: &AuditEntry) -> QueryResult<()> {
    diesel::insert_into(audit_log::table)
        .values(entry)
        .execute(conn)
        .await
        .map(|_| ())
}

/// What a page of the log is narrowed to.
#[derive(Debug, Default)]
pub struct AuditFilter {
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub actor: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// The tenant's entries, newest first, `limit + 1` of them before `before`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    filter: &AuditFilter,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<AuditEntry>> {
    let mut query = audit_log::table
        .filter(audit_log::tenant_id.eq(tenant_id))
        .select(AuditEntry::as_select())
        .order(audit_log::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(audit_log::id.lt(before));
    }
    if let Some(t) = &filter.resource_type {
        query = query.filter(audit_log::resource_type.eq(t.clone()));
    }
    if let Some(r) = &filter.resource_id {
        query = query.filter(audit_log::resource_id.eq(r.clone()));
    }
    if let Some(a) = &filter.actor {
        query = query.filter(audit_log::actor_id.eq(a.clone()));
    }
    if let Some(from) = filter.from {
        query = query.filter(audit_log::created_at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(audit_log::created_at.lt(to));
    }
    query.load(conn).await
}
