//! Webhook subscription rows and their queries, scoped by tenant; deleted rows are hidden.
//! The signing secret is sealed with the credential cipher, bound to its tenant and row.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::webhooks;
use crate::crypto::{CredentialCipher, CryptoError};
use crate::domain::webhook::ALL_EVENTS;

/// A webhook row.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = webhooks)]
pub struct Webhook {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub url: String,
    pub events: Vec<Option<String>>,
    pub secret_encrypted: Vec<u8>,
    pub is_active: bool,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Webhook {
    /// The subscribed topics (or `*`).
    pub fn event_names(&self) -> Vec<String> {
        self.events.iter().flatten().cloned().collect()
    }
}

/// A webhook to insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = webhooks)]
pub struct NewWebhook {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub url: String,
    pub events: Vec<Option<String>>,
    pub secret_encrypted: Vec<u8>,
    pub is_active: bool,
    pub description: Option<String>,
}

/// Changes to a webhook; `None` leaves a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = webhooks)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub events: Option<Vec<Option<String>>>,
    pub secret_encrypted: Option<Vec<u8>>,
    pub is_active: Option<bool>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub updated_at: Option<DateTime<Utc>>,
}

use crate::crypto::row_aad as aad;

/// Seals a webhook's secret for storage.
pub fn seal_webhook_secret(
    cipher: &CredentialCipher,
    tenant_id: Uuid,
    id: Uuid,
    secret: &str,
) -> Result<Vec<u8>, CryptoError> {
    cipher.seal(secret.as_bytes(), &aad(tenant_id, id))
}

/// Opens a webhook's secret (`whsec_…`, the HMAC key of its signatures).
pub fn open_webhook_secret(
    cipher: &CredentialCipher,
    tenant_id: Uuid,
    id: Uuid,
    sealed: &[u8],
) -> anyhow::Result<String> {
    let plain = cipher.open(sealed, &aad(tenant_id, id))?;
    Ok(String::from_utf8(plain)?)
}

pub async fn insert_webhook(
    conn: &mut AsyncPgConnection,
    new: &NewWebhook,
) -> QueryResult<Webhook> {
    diesel::insert_into(webhooks::table)
        .values(new)
        .returning(Webhook::as_returning())
        .get_result(conn)
        .await
}

pub async fn get_webhook(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Webhook>> {
    webhooks::table
        .filter(webhooks::tenant_id.eq(tenant_id))
        .filter(webhooks::id.eq(id))
        .filter(webhooks::deleted_at.is_null())
        .select(Webhook::as_select())
        .first(conn)
        .await
        .optional()
}

/// Newest first, `limit + 1` rows after the cursor.
pub async fn list_webhooks(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<Webhook>> {
    let mut query = webhooks::table
        .filter(webhooks::tenant_id.eq(tenant_id))
        .filter(webhooks::deleted_at.is_null())
        .select(Webhook::as_select())
        .order(webhooks::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(webhooks::id.lt(before));
    }
    query.load(conn).await
}

/// The tenant's active webhooks that receive `topic` (subscribed to it or to `*`).
pub async fn find_subscribed_webhooks(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    topic: &str,
) -> QueryResult<Vec<Webhook>> {
    webhooks::table
        .filter(webhooks::tenant_id.eq(tenant_id))
        .filter(webhooks::deleted_at.is_null())
        .filter(webhooks::is_active.eq(true))
        .filter(
            webhooks::events
                .contains(vec![Some(topic.to_owned())])
                .or(webhooks::events.contains(vec![Some(ALL_EVENTS.to_owned())])),
        )
        .select(Webhook::as_select())
        .order(webhooks::id.asc())
        .load(conn)
        .await
}

pub async fn update_webhook(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    id: Uuid,
    changes: &WebhookChanges,
) -> QueryResult<Option<Webhook>> {
    diesel::update(
        webhooks::table
            .filter(webhooks::tenant_id.eq(tenant_id))
            .filter(webhooks::id.eq(id))
            .filter(webhooks::deleted_at.is_null()),
    )
    .set(changes)
    .returning(Webhook::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Soft-deletes; returns whether a row was deleted.
pub async fn delete_webhook(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> QueryResult<bool> {
    let n = diesel::update(
        webhooks::table
            .filter(webhooks::tenant_id.eq(tenant_id))
            .filter(webhooks::id.eq(id))
            .filter(webhooks::deleted_at.is_null()),
    )
    .set((
        webhooks::deleted_at.eq(Utc::now()),
        webhooks::is_active.eq(false),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}
