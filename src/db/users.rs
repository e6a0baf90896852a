//! Tenants and users.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{tenants, users};

/// A tenant row.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenants)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub plan_tier: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user row.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub roles: Vec<Option<String>>,
    pub is_active: bool,
    pub password_changed_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl User {
    /// The roles, without the nulls a PostgreSQL array may hold.
    pub fn role_names(&self) -> Vec<String> {
        self.roles.iter().flatten().cloned().collect()
    }
}

/// A user to insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub roles: Vec<Option<String>>,
}

/// Creates the tenant unless it exists; returns whether it was created.
pub async fn ensure_tenant(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    name: &str,
    plan_tier: &str,
) -> QueryResult<bool> {
    let now = Utc::now();
    let inserted = diesel::insert_into(tenants::table)
        .values(&Tenant {
            id,
            name: name.to_owned(),
            plan_tier: plan_tier.to_owned(),
            created_at: now,
            updated_at: now,
        })
        .on_conflict(tenants::id)
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

/// The tenant with this id.
pub async fn find_tenant(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Tenant>> {
    tenants::table
        .find(id)
        .select(Tenant::as_select())
        .first(conn)
        .await
        .optional()
}

/// The user with this (lower-cased) e-mail.
pub async fn find_user_by_email(
    conn: &mut AsyncPgConnection,
    email: &str,
) -> QueryResult<Option<User>> {
    users::table
        .filter(users::email.eq(email))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

/// The user with this id.
pub async fn find_user(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

/// Inserts a user unless the e-mail is taken; returns whether it was inserted.
pub async fn insert_user(conn: &mut AsyncPgConnection, user: &NewUser<'_>) -> QueryResult<bool> {
    let inserted = diesel::insert_into(users::table)
        .values(user)
        .on_conflict(users::email)
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

/// Normalises an e-mail for look-ups: trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Sets a user's password hash; `password_changed_at` moves to now.
pub async fn set_password(conn: &mut AsyncPgConnection, id: Uuid, hash: &str) -> QueryResult<()> {
    let now = chrono::Utc::now();
    diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(hash),
            users::password_changed_at.eq(now),
            users::updated_at.eq(now),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Disables the user with this (normalised) e-mail; returns its id when one was active.
pub async fn disable_user(conn: &mut AsyncPgConnection, email: &str) -> QueryResult<Option<Uuid>> {
    diesel::update(
        users::table
            .filter(users::email.eq(normalize_email(email)))
            .filter(users::is_active.eq(true)),
    )
    .set((
        users::is_active.eq(false),
        users::updated_at.eq(chrono::Utc::now()),
    ))
    .returning(users::id)
    .get_result(conn)
    .await
    .optional()
}

/// Whether a user is active, and when its password last changed; `None` for no such user.
pub async fn account_state(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<(bool, DateTime<Utc>)>> {
    users::table
        .find(id)
        .select((users::is_active, users::password_changed_at))
        .first(conn)
        .await
        .optional()
}
