//! Tenant API key rows, scoped by tenant. Only the key's SHA-256 is stored.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{api_keys, tenants};

/// An API key row (never the key itself).
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub roles: Vec<Option<String>>,
    pub prefix: String,
    pub plan_tier: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    pub fn role_names(&self) -> Vec<String> {
        self.roles.iter().flatten().cloned().collect()
    }
}

/// A key to insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewApiKey {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub roles: Vec<Option<String>>,
    pub prefix: String,
    pub key_hash: Vec<u8>,
    pub plan_tier: String,
    pub created_by: String,
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewApiKey) -> QueryResult<ApiKey> {
    diesel::insert_into(api_keys::table)
        .values(new)
        .returning(ApiKey::as_returning())
        .get_result(conn)
        .await
}

/// The tenant's keys that are not revoked, newest first, `limit + 1` of them before `before`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<ApiKey>> {
    let mut query = api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .filter(api_keys::revoked_at.is_null())
        .select(ApiKey::as_select())
        .order(api_keys::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(api_keys::id.lt(before));
    }
    query.load(conn).await
}

/// Revokes a key of the tenant; false when it has none such (or it was revoked already).
pub async fn revoke(conn: &mut AsyncPgConnection, tenant_id: Uuid, id: Uuid) -> QueryResult<bool> {
    let n = diesel::update(
        api_keys::table
            .filter(api_keys::tenant_id.eq(tenant_id))
            .filter(api_keys::id.eq(id))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// The usable key with this hash (not revoked, not expired) and its tenant's own plan tier,
/// if the tenant has a row.
pub async fn find_usable(
    conn: &mut AsyncPgConnection,
    key_hash: &[u8],
) -> QueryResult<Option<(ApiKey, Option<String>)>> {
    api_keys::table
        .left_join(tenants::table.on(tenants::id.eq(api_keys::tenant_id)))
        .filter(api_keys::key_hash.eq(key_hash))
        .filter(api_keys::revoked_at.is_null())
        .filter(
            api_keys::expires_at
                .is_null()
                .or(api_keys::expires_at.gt(diesel::dsl::now)),
        )
        .select((ApiKey::as_select(), tenants::plan_tier.nullable()))
        .first(conn)
        .await
        .optional()
}

/// Records a use, at most once a minute per key (a list shows when a key was last used
/// without a write on every request).
pub async fn touch(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    let stale = Utc::now() - chrono::Duration::minutes(1);
    diesel::update(
        api_keys::table.filter(api_keys::id.eq(id)).filter(
            api_keys::last_used_at
                .is_null()
                .or(api_keys::last_used_at.lt(stale)),
        ),
    )
    .set(api_keys::last_used_at.eq(diesel::dsl::now))
    .execute(conn)
    .await
    .map(|_| ())
}
