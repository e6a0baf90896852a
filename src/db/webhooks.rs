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
    /// Failed POSTs in a row (reset by a delivered one).
    pub consecutive_failures: i32,
    /// When the current run of failures began.
    pub failing_since: Option<DateTime<Utc>>,
    /// The breaker holds the webhook's deliveries back until then.
    pub paused_until: Option<DateTime<Utc>>,
    /// When it was disabled for failing too long, and why.
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
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
    /// Reactivating a webhook closes its breaker: these are set to 0 and `None`.
    pub consecutive_failures: Option<i32>,
    pub failing_since: Option<Option<DateTime<Utc>>>,
    pub paused_until: Option<Option<DateTime<Utc>>>,
    pub disabled_at: Option<Option<DateTime<Utc>>>,
    pub disabled_reason: Option<Option<String>>,
}

impl WebhookChanges {
    /// Reactivation: the breaker closes and the disabled state is cleared.
    pub fn reactivate(&mut self) {
        self.is_active = Some(true);
        self.consecutive_failures = Some(0);
        self.failing_since = Some(None);
        self.paused_until = Some(None);
        self.disabled_at = Some(None);
        self.disabled_reason = Some(None);
    }
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

/// A webhook its breaker disabled.
#[derive(Debug, QueryableByName)]
pub struct DisabledWebhook {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub tenant_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub url: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub consecutive_failures: i32,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub failing_since: DateTime<Utc>,
}

/// When the breaker opens and how long it holds: after `threshold` failures in a row, for
/// `base` doubling with each further failure up to `cap`; a webhook failing for
/// `disable_after` is disabled.
#[derive(Clone, Copy, Debug)]
pub struct Breaker {
    pub threshold: i32,
    pub base: std::time::Duration,
    pub cap: std::time::Duration,
    pub disable_after: std::time::Duration,
}

/// Moves a webhook's breaker after a POST: a delivered one closes it; a failed one counts, opens
/// it from `threshold` failures on, and disables the webhook once it has been failing for
/// `disable_after`. Returns the webhook when this call disabled it.
pub async fn record_outcome(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    delivered: bool,
    error: Option<&str>,
    breaker: &Breaker,
) -> QueryResult<Option<DisabledWebhook>> {
    use diesel::sql_types::{Double, Integer, Nullable, Text, Uuid as SqlUuid};
    if delivered {
        diesel::sql_query(
            "UPDATE webhooks SET consecutive_failures = 0, failing_since = NULL, \
               paused_until = NULL WHERE id = $1 AND consecutive_failures <> 0",
        )
        .bind::<SqlUuid, _>(id)
        .execute(conn)
        .await?;
        return Ok(None);
    }
    diesel::sql_query(
        "UPDATE webhooks SET consecutive_failures = consecutive_failures + 1, \
           failing_since = coalesce(failing_since, now()), \
           paused_until = CASE WHEN consecutive_failures + 1 < $2 THEN NULL \
             ELSE now() + make_interval(secs => least($4, $3 * power(2, \
               least(consecutive_failures + 1 - $2, 30)))) END \
         WHERE id = $1",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Integer, _>(breaker.threshold)
    .bind::<Double, _>(breaker.base.as_secs_f64())
    .bind::<Double, _>(breaker.cap.as_secs_f64())
    .execute(conn)
    .await?;
    diesel::sql_query(
        "UPDATE webhooks SET is_active = false, disabled_at = now(), updated_at = now(), \
           disabled_reason = 'failing since ' || to_char(failing_since AT TIME ZONE 'UTC', \
             'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') || ' (' || consecutive_failures || \
             ' failed deliveries in a row)' || coalesce(': ' || $3, '') \
         WHERE id = $1 AND is_active AND deleted_at IS NULL \
           AND failing_since <= now() - make_interval(secs => $2) \
         RETURNING id, tenant_id, url, consecutive_failures, failing_since",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Double, _>(breaker.disable_after.as_secs_f64())
    .bind::<Nullable<Text>, _>(error)
    .get_result(conn)
    .await
    .optional()
}
