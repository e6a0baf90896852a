//! Deliveries of events to tenant webhooks: one row per (webhook, event), claimed with a lease
//! and `FOR UPDATE SKIP LOCKED` so replicas share the work, and one attempt row per POST.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{
    Array, Bool, Bytea, Double, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use super::cached::CacheStatement;
use super::schema::{webhook_deliveries, webhook_delivery_attempts, webhooks};

/// A delivery as the API lists it.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries)]
pub struct WebhookDelivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: String,
    pub topic: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
}

/// One POST of a delivery.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = webhook_delivery_attempts)]
pub struct DeliveryAttempt {
    pub delivery_id: Uuid,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i32,
}

/// A claimed delivery with what sending it needs.
#[derive(Clone, Debug, QueryableByName)]
pub struct ClaimedDelivery {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub tenant_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub webhook_id: Uuid,
    #[diesel(sql_type = Text)]
    pub event_id: String,
    #[diesel(sql_type = Text)]
    pub topic: String,
    #[diesel(sql_type = Jsonb)]
    pub payload: Value,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub url: String,
    #[diesel(sql_type = Bytea)]
    pub secret_encrypted: Vec<u8>,
    /// The webhook still exists and is active.
    #[diesel(sql_type = Bool)]
    pub webhook_live: bool,
}

/// One event to fan out.
pub struct FanOutEvent<'a> {
    pub tenant_id: Uuid,
    pub event_id: &'a str,
    pub topic: &'a str,
    pub payload: &'a Value,
}

/// Creates one delivery of each event for each of its tenant's active webhooks subscribed to
/// its topic (or to `*`), in one statement. A repeated call for the same event adds nothing.
pub async fn fan_out_many(
    conn: &mut AsyncPgConnection,
    events: &[FanOutEvent<'_>],
) -> QueryResult<usize> {
    if events.is_empty() {
        return Ok(0);
    }
    // Most events belong to tenants without a live webhook: find the tenants that have one
    // first, so the payloads of the others are not shipped to the database for nothing.
    let mut tenants: Vec<Uuid> = events.iter().map(|e| e.tenant_id).collect();
    tenants.sort();
    tenants.dedup();
    let subscribed: Vec<Uuid> = webhooks::table
        .filter(webhooks::tenant_id.eq_any(&tenants))
        .filter(webhooks::deleted_at.is_null())
        .filter(webhooks::is_active.eq(true))
        .select(webhooks::tenant_id)
        .distinct()
        .load(conn)
        .await?;
    let events: Vec<&FanOutEvent<'_>> = events
        .iter()
        .filter(|e| subscribed.contains(&e.tenant_id))
        .collect();
    if events.is_empty() {
        return Ok(0);
    }
    let tenants: Vec<Uuid> = events.iter().map(|e| e.tenant_id).collect();
    let ids: Vec<&str> = events.iter().map(|e| e.event_id).collect();
    let topics: Vec<&str> = events.iter().map(|e| e.topic).collect();
    let payloads: Vec<&Value> = events.iter().map(|e| e.payload).collect();
    diesel::sql_query(
        "INSERT INTO webhook_deliveries (tenant_id, webhook_id, event_id, topic, payload) \
         SELECT w.tenant_id, w.id, v.event_id, v.topic, v.payload \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[]) \
           AS v(tenant_id, event_id, topic, payload) \
         JOIN webhooks w ON w.tenant_id = v.tenant_id AND w.deleted_at IS NULL AND w.is_active \
           AND (v.topic = ANY(w.events) OR '*' = ANY(w.events)) \
         ON CONFLICT ON CONSTRAINT webhook_deliveries_once DO NOTHING",
    )
    .bind::<Array<SqlUuid>, _>(&tenants)
    .bind::<Array<Text>, _>(&ids)
    .bind::<Array<Text>, _>(&topics)
    .bind::<Array<Jsonb>, _>(&payloads)
    .cached()
    .execute(conn)
    .await
}

/// Leases up to `limit` pending deliveries whose time has come, fairly: no webhook gets more
/// than `per_webhook` in flight (counting the leases other runs and replicas hold), and the
/// tenants take turns (each tenant's oldest due first, then each one's second, …), so one
/// tenant's backlog or slow receiver never holds the others' deliveries. A webhook whose
/// breaker holds it back (`paused_until`) gets none. Only deliveries due
/// by `due_by` are taken: a run passes its start, so it never retries what it just attempted.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    owner: &str,
    lease: Duration,
    limit: i64,
    per_webhook: i64,
    due_by: DateTime<Utc>,
) -> QueryResult<Vec<ClaimedDelivery>> {
    diesel::sql_query(
        "WITH busy AS ( \
           SELECT webhook_id, count(*) AS n FROM webhook_deliveries \
           WHERE status = 'PENDING' AND lease_until >= now() GROUP BY webhook_id), \
         due AS ( \
           SELECT d.id, d.tenant_id, d.next_attempt_at, \
             row_number() OVER (PARTITION BY d.webhook_id ORDER BY d.next_attempt_at, d.id) \
               + coalesce(b.n, 0) AS slot \
           FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             LEFT JOIN busy b ON b.webhook_id = d.webhook_id \
           WHERE d.status = 'PENDING' AND d.next_attempt_at <= least(now(), $5) \
             AND (d.lease_until IS NULL OR d.lease_until < now()) \
             AND (w.paused_until IS NULL OR w.paused_until <= now())), \
         turns AS ( \
           SELECT id, row_number() OVER (PARTITION BY tenant_id ORDER BY next_attempt_at, id) AS turn \
           FROM due WHERE slot <= $4), \
         picked AS ( \
           SELECT d.id FROM webhook_deliveries d \
           JOIN (SELECT id, turn FROM turns ORDER BY turn, id LIMIT $3) t ON t.id = d.id \
           WHERE d.status = 'PENDING' AND (d.lease_until IS NULL OR d.lease_until < now()) \
           FOR UPDATE OF d SKIP LOCKED) \
         UPDATE webhook_deliveries d \
           SET lease_owner = $1, lease_until = now() + make_interval(secs => $2) \
         FROM picked, webhooks w WHERE d.id = picked.id AND w.id = d.webhook_id \
         RETURNING d.id, d.tenant_id, d.webhook_id, d.event_id, d.topic, d.payload, d.attempts, \
           d.created_at, w.url, w.secret_encrypted, \
           (w.is_active AND w.deleted_at IS NULL) AS webhook_live",
    )
    .bind::<Text, _>(owner)
    .bind::<Double, _>(lease.as_secs_f64())
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .bind::<diesel::sql_types::BigInt, _>(per_webhook)
    .bind::<Timestamptz, _>(due_by)
    .cached()
    .load(conn)
    .await
}

/// What one POST (or the decision not to make one) came to.
#[derive(Clone, Debug)]
pub struct AttemptRecord {
    pub delivery_id: Uuid,
    pub webhook_id: Uuid,
    /// The attempt's number (1 for the first POST); `None` when no POST was made.
    pub attempt: Option<i32>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub fate: Fate,
}

/// Where a delivery goes after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Delivered,
    RetryAt(DateTime<Utc>),
    Failed,
}

/// Records attempts and moves their deliveries on, releasing the lease. Call it inside a
/// transaction.
pub async fn record(
    conn: &mut AsyncPgConnection,
    owner: &str,
    records: &[AttemptRecord],
) -> QueryResult<()> {
    for r in records {
        if let Some(attempt) = r.attempt {
            let latency = (r.finished_at - r.started_at)
                .num_milliseconds()
                .clamp(0, i64::from(i32::MAX)) as i32;
            diesel::insert_into(webhook_delivery_attempts::table)
                .values((
                    webhook_delivery_attempts::delivery_id.eq(r.delivery_id),
                    webhook_delivery_attempts::attempt.eq(attempt),
                    webhook_delivery_attempts::started_at.eq(r.started_at),
                    webhook_delivery_attempts::finished_at.eq(r.finished_at),
                    webhook_delivery_attempts::status_code.eq(r.status_code),
                    webhook_delivery_attempts::error.eq(&r.error),
                    webhook_delivery_attempts::latency_ms.eq(latency),
                ))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
        }
        let (status, next, delivered_at, failed_at) = match r.fate {
            Fate::Delivered => ("DELIVERED", r.finished_at, Some(r.finished_at), None),
            Fate::RetryAt(at) => ("PENDING", at, None, None),
            Fate::Failed => ("FAILED", r.finished_at, None, Some(r.finished_at)),
        };
        diesel::sql_query(
            "UPDATE webhook_deliveries SET status = $3, next_attempt_at = $4, \
               attempts = COALESCE($5, attempts), last_status_code = $6, last_error = $7, \
               delivered_at = $8, failed_at = $9, updated_at = now(), \
               lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_owner = $2 AND status = 'PENDING'",
        )
        .bind::<SqlUuid, _>(r.delivery_id)
        .bind::<Text, _>(owner)
        .bind::<Text, _>(status)
        .bind::<Timestamptz, _>(next)
        .bind::<Nullable<Integer>, _>(r.attempt)
        .bind::<Nullable<Integer>, _>(r.status_code)
        .bind::<Nullable<Text>, _>(&r.error)
        .bind::<Nullable<Timestamptz>, _>(delivered_at)
        .bind::<Nullable<Timestamptz>, _>(failed_at)
        .cached()
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Queues a finished delivery for one more attempt now; `None` when the tenant's webhook has
/// no such delivery, `Some(None)` when it is still pending.
pub async fn requeue(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    webhook_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Option<WebhookDelivery>>> {
    let current: Option<String> = webhook_deliveries::table
        .filter(webhook_deliveries::tenant_id.eq(tenant_id))
        .filter(webhook_deliveries::webhook_id.eq(webhook_id))
        .filter(webhook_deliveries::id.eq(id))
        .select(webhook_deliveries::status)
        .for_update()
        .first(conn)
        .await
        .optional()?;
    match current.as_deref() {
        None => Ok(None),
        Some("PENDING") => Ok(Some(None)),
        Some(_) => diesel::update(webhook_deliveries::table.find(id))
            .set((
                webhook_deliveries::status.eq("PENDING"),
                webhook_deliveries::next_attempt_at.eq(Utc::now()),
                webhook_deliveries::delivered_at.eq(None::<DateTime<Utc>>),
                webhook_deliveries::failed_at.eq(None::<DateTime<Utc>>),
                webhook_deliveries::updated_at.eq(Utc::now()),
            ))
            .returning(WebhookDelivery::as_returning())
            .get_result(conn)
            .await
            .map(|d| Some(Some(d))),
    }
}

/// A webhook's deliveries, newest first, `limit + 1` rows after the cursor.
pub async fn list_for_webhook(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    webhook_id: Uuid,
    status: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<WebhookDelivery>> {
    let mut query = webhook_deliveries::table
        .filter(webhook_deliveries::tenant_id.eq(tenant_id))
        .filter(webhook_deliveries::webhook_id.eq(webhook_id))
        .select(WebhookDelivery::as_select())
        .order(webhook_deliveries::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(webhook_deliveries::status.eq(status.to_owned()));
    }
    if let Some(before) = before {
        query = query.filter(webhook_deliveries::id.lt(before));
    }
    query.load(conn).await
}

/// The attempts of these deliveries, in order.
pub async fn attempts_of(
    conn: &mut AsyncPgConnection,
    delivery_ids: &[Uuid],
) -> QueryResult<Vec<DeliveryAttempt>> {
    webhook_delivery_attempts::table
        .filter(webhook_delivery_attempts::delivery_id.eq_any(delivery_ids))
        .select(DeliveryAttempt::as_select())
        .order((
            webhook_delivery_attempts::delivery_id,
            webhook_delivery_attempts::attempt,
        ))
        .load(conn)
        .await
}

/// Deletes finished deliveries last changed before `before`; returns how many.
pub async fn delete_finished_before(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::delete(
        webhook_deliveries::table
            .filter(webhook_deliveries::status.ne("PENDING"))
            .filter(webhook_deliveries::updated_at.lt(before)),
    )
    .execute(conn)
    .await
}

/// Pending deliveries and the age of the oldest one, in seconds.
pub async fn backlog(conn: &mut AsyncPgConnection) -> QueryResult<(i64, f64)> {
    super::pending_backlog(conn, "webhook_deliveries").await
}

/// Releases this owner's leases on deliveries still pending (graceful shutdown), so another
/// process takes them at once.
pub async fn release(conn: &mut AsyncPgConnection, owner: &str) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL \
         WHERE lease_owner = $1 AND status = 'PENDING'",
    )
    .bind::<Text, _>(owner)
    .cached()
    .execute(conn)
    .await
}
