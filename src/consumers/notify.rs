//! `eventzr.notify.transactional.requested.v1`: notify-svc asks for a send. The event's `data`
//! is in the platform's camelCase (`tenantId`, `notificationId`, `channel`, `recipient`,
//! `templateId` or `templateName` or `body`, `variables`, `locale`, `subject`, `priority`,
//! `metadata`, `fallback`) or in the API's snake_case, and it is accepted exactly as the API accepts a
//! send: validation, the tenant's plan-tier gate, templates, opt-outs and providers, the
//! message and its `communication.requested` event in one transaction. The event id becomes
//! the message's `source_event_id`, so the same event never makes two messages, and
//! `notificationId` is stored on the message and carried by every event of it. Requests from
//! the platform's own services are not subject to the per-tenant send limits, only to the
//! tier gate. A request that cannot be sent is recorded as rejected and acknowledged, with its
//! reason in the log and in `cpaas_consumed_events_total`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Consumed, ConsumerDeps, record, tenant_of};
use crate::db::schema::{consumed_events, tenants};
use crate::db::{DbError, tx};
use crate::domain::PlanTier;
use crate::error::ApiError;
use crate::messages::accept::{self, SendRequest, ValidSend};
use crate::messages::request::FallbackStep;
use crate::outbox::CloudEvent;

/// Longest accepted `notificationId`.
const NOTIFICATION_ID_MAX: usize = 255;

/// notify-svc's request, in its camelCase or in the API's snake_case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyRequest {
    #[serde(rename = "tenantId", alias = "tenant_id")]
    _tenant_id: Option<Value>,
    #[serde(rename = "notificationId", alias = "notification_id")]
    notification_id: Option<String>,
    channel: String,
    recipient: String,
    #[serde(alias = "message_body")]
    body: Option<String>,
    #[serde(rename = "htmlBody", alias = "html_body")]
    html_body: Option<String>,
    #[serde(rename = "replyTo", alias = "reply_to")]
    reply_to: Option<String>,
    #[serde(rename = "templateId", alias = "template_id")]
    template_id: Option<String>,
    #[serde(rename = "templateName", alias = "template_name")]
    template_name: Option<String>,
    #[serde(alias = "template_variables")]
    variables: Option<Map<String, Value>>,
    locale: Option<String>,
    subject: Option<String>,
    priority: Option<String>,
    metadata: Option<Map<String, Value>>,
    #[serde(rename = "providerId", alias = "provider_id")]
    provider_id: Option<String>,
    #[serde(rename = "scheduledAt", alias = "scheduled_at")]
    scheduled_at: Option<DateTime<Utc>>,
    #[serde(rename = "ttlSecs", alias = "ttl_secs")]
    ttl_secs: Option<i64>,
    fallback: Option<Vec<FallbackStep>>,
    media: Option<Vec<crate::domain::media::MediaRequest>>,
}

/// The request as a validated send with its notification id.
fn parse(data: &Value, now: DateTime<Utc>) -> Result<(ValidSend, Option<String>), ApiError> {
    let req: NotifyRequest = serde_json::from_value(data.clone())
        .map_err(|e| ApiError::invalid_field("data", e.to_string()))?;
    let notification_id = match req.notification_id.map(|n| n.trim().to_owned()) {
        Some(n)
            if n.is_empty() || n.len() > NOTIFICATION_ID_MAX || n.chars().any(char::is_control) =>
        {
            return Err(ApiError::invalid_field(
                "notificationId",
                format!("must be 1 to {NOTIFICATION_ID_MAX} printable characters"),
            ));
        }
        other => other,
    };
    let send = accept::validate(
        SendRequest {
            channel: req.channel,
            recipient: req.recipient,
            message_body: req.body,
            html_body: req.html_body,
            reply_to: req.reply_to,
            template_id: req.template_id,
            template_name: req.template_name,
            locale: req.locale,
            template_variables: req.variables,
            subject: req.subject,
            provider_id: req.provider_id,
            scheduled_at: req.scheduled_at,
            metadata: req.metadata,
            priority: req.priority,
            ttl_secs: req.ttl_secs,
            fallback: req.fallback,
            media: req.media,
        },
        now,
    )?;
    Ok((send, notification_id))
}

/// The tenant's plan tier as this service knows it; a tenant it has no row for is `free`.
async fn plan_tier(conn: &mut AsyncPgConnection, tenant: Uuid) -> QueryResult<PlanTier> {
    let tier: Option<String> = tenants::table
        .find(tenant)
        .select(tenants::plan_tier)
        .first(conn)
        .await
        .optional()?;
    Ok(tier.map_or(PlanTier::Free, |t| PlanTier::from_claim(&t)))
}

/// Records a refused request; `Duplicate` when the event was seen before.
async fn reject(
    conn: &mut AsyncPgConnection,
    event: &CloudEvent,
    tenant: Option<Uuid>,
    detail: String,
) -> Result<Consumed, ApiError> {
    if !record(conn, event, tenant, "rejected", Some(&detail)).await? {
        return Ok(Consumed::Duplicate);
    }
    tracing::warn!(event_id = %event.id, %detail, "consumed send request refused");
    Ok(Consumed::Done {
        outcome: "rejected",
        detail: Some(detail),
    })
}

fn refused(e: &ApiError) -> String {
    format!("{}: {}", e.code.as_str(), e.message)
}

/// Handles one event; safe to call again with the same event. A `high` send accepted wakes
/// the drainers' express claim once committed.
pub async fn handle(deps: &ConsumerDeps, event: &CloudEvent) -> anyhow::Result<Consumed> {
    let mut conn = deps.pool.get().await.map_err(DbError::from)?;
    let tenant = tenant_of(event);
    let urgent = std::sync::atomic::AtomicBool::new(false);
    let consumed = tx::run(&mut conn, async |conn| {
        let Some(tenant) = tenant else {
            return reject(conn, event, None, "no tenantId".into()).await;
        };
        let (send, notification_id) = match parse(&event.data, Utc::now()) {
            Ok(parsed) => parsed,
            Err(e) => return reject(conn, event, Some(tenant), refused(&e)).await,
        };
        let tier = plan_tier(conn, tenant).await?;
        let channels = std::iter::once(send.channel()).chain(send.fallback_channels());
        if let Some(e) = channels
            .enumerate()
            .find_map(|(i, channel)| deps.rate_limits.allows(tier, channel).err().map(|e| (i, e)))
            .map(|(i, e)| match i {
                0 => e,
                i => crate::messages::fallback::in_step(i - 1, e),
            })
        {
            return reject(conn, event, Some(tenant), refused(&e)).await;
        }
        let send = send.with_plan_tier(tier);
        if !record(conn, event, Some(tenant), "accepted", None).await? {
            return Ok(Consumed::Duplicate);
        }
        let send = send.from_event(&event.id).for_notification(notification_id);
        let is_urgent = send.is_urgent();
        match accept::accept_one(conn, tenant, send).await? {
            Ok(message) => {
                urgent.store(is_urgent, std::sync::atomic::Ordering::Relaxed);
                Ok(Consumed::Done {
                    outcome: "accepted",
                    detail: Some(crate::domain::ids::MessageId::from_uuid(message.id).to_string()),
                })
            }
            Err(e) => {
                let detail = refused(&e);
                diesel::update(consumed_events::table.find(&event.id))
                    .set((
                        consumed_events::outcome.eq("rejected"),
                        consumed_events::detail.eq(&detail),
                    ))
                    .execute(conn)
                    .await?;
                tracing::warn!(event_id = %event.id, %detail, "consumed send request refused");
                Ok(Consumed::Done {
                    outcome: "rejected",
                    detail: Some(detail),
                })
            }
        }
    })
    .await
    .map_err(|e: ApiError| anyhow::anyhow!("{e}"))?;
    if urgent.into_inner() {
        deps.wakeup.committed_urgent();
    }
    Ok(consumed)
}
