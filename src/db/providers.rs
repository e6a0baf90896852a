//! Provider rows and their queries. Every query is scoped by tenant; deleted rows are hidden.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use super::schema::providers;

/// A provider row.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = providers)]
pub struct Provider {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub kind: String,
    pub channels: Vec<Option<String>>,
    pub priority: i32,
    pub is_active: bool,
    pub config: Value,
    pub credentials_encrypted: Vec<u8>,
    pub credential_keys: Vec<Option<String>>,
    pub health_state: String,
    pub consecutive_failures: i32,
    pub last_error: Option<String>,
    pub health_changed_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A provider to insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = providers)]
pub struct NewProvider {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub kind: String,
    pub channels: Vec<Option<String>>,
    pub priority: i32,
    pub is_active: bool,
    pub config: Value,
    pub credentials_encrypted: Vec<u8>,
    pub credential_keys: Vec<Option<String>>,
}

/// Changes to a provider; `None` leaves a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = providers)]
pub struct ProviderChanges {
    pub name: Option<String>,
    pub channels: Option<Vec<Option<String>>>,
    pub priority: Option<i32>,
    pub is_active: Option<bool>,
    pub config: Option<Value>,
    pub credentials_encrypted: Option<Vec<u8>>,
    pub credential_keys: Option<Vec<Option<String>>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Filters of the provider list.
#[derive(Debug, Default)]
pub struct ProviderFilter {
    pub kind: Option<String>,
    pub channel: Option<String>,
    pub is_active: Option<bool>,
}

pub async fn insert_provider(
    conn: &mut AsyncPgConnection,
    new: &NewProvider,
) -> QueryResult<Provider> {
    diesel::insert_into(providers::table)
        .values(new)
        .returning(Provider::as_returning())
        .get_result(conn)
        .await
}

pub async fn get_provider(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Provider>> {
    providers::table
        .filter(providers::tenant_id.eq(tenant_id))
        .filter(providers::id.eq(id))
        .filter(providers::deleted_at.is_null())
        .select(Provider::as_select())
        .first(conn)
        .await
        .optional()
}

/// The same, locked for update.
pub async fn lock_provider(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Provider>> {
    providers::table
        .filter(providers::tenant_id.eq(tenant_id))
        .filter(providers::id.eq(id))
        .filter(providers::deleted_at.is_null())
        .select(Provider::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Newest first, `limit + 1` rows after the cursor (so the caller knows if there are more).
pub async fn list_providers(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    filter: &ProviderFilter,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<Provider>> {
    let mut query = providers::table
        .filter(providers::tenant_id.eq(tenant_id))
        .filter(providers::deleted_at.is_null())
        .select(Provider::as_select())
        .order(providers::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(providers::id.lt(before));
    }
    if let Some(kind) = &filter.kind {
        query = query.filter(providers::kind.eq(kind.clone()));
    }
    if let Some(channel) = &filter.channel {
        query = query.filter(providers::channels.contains(vec![Some(channel.clone())]));
    }
    if let Some(active) = filter.is_active {
        query = query.filter(providers::is_active.eq(active));
    }
    query.load(conn).await
}

pub async fn update_provider(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    id: Uuid,
    changes: &ProviderChanges,
) -> QueryResult<Provider> {
    diesel::update(
        providers::table
            .filter(providers::tenant_id.eq(tenant_id))
            .filter(providers::id.eq(id))
            .filter(providers::deleted_at.is_null()),
    )
    .set(changes)
    .returning(Provider::as_returning())
    .get_result(conn)
    .await
}

/// Soft-deletes; returns whether a row was deleted.
pub async fn delete_provider(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> QueryResult<bool> {
    let n = diesel::update(
        providers::table
            .filter(providers::tenant_id.eq(tenant_id))
            .filter(providers::id.eq(id))
            .filter(providers::deleted_at.is_null()),
    )
    .set((
        providers::deleted_at.eq(Utc::now()),
        providers::is_active.eq(false),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Whether a live provider of the tenant already has this name.
pub async fn name_taken(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    name: &str,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        providers::table
            .filter(providers::tenant_id.eq(tenant_id))
            .filter(providers::name.eq(name))
            .filter(providers::deleted_at.is_null()),
    ))
    .get_result(conn)
    .await
}

#[derive(diesel::QueryableByName)]
pub struct CircuitRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub provider_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub kind: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub circuit_state: String,
}

/// The circuit state of every active provider, with its public id.
pub async fn circuit_states(conn: &mut AsyncPgConnection) -> QueryResult<Vec<CircuitRow>> {
    diesel::sql_query(
        "SELECT 'prv_' || replace(id::text, '-', '') AS provider_id, kind, circuit_state \
         FROM providers WHERE is_active AND deleted_at IS NULL ORDER BY id",
    )
    .load(conn)
    .await
}
