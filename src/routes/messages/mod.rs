//! `/cpaas/v1/messages`: send (single and bulk), estimate, list, get, attempts, cancel.

mod estimate;
mod read;
mod send;

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

pub use estimate::*;
pub use read::*;
pub use send::*;

use crate::db::chains::{self, StepView};
use crate::db::messages::{Attempt, Message};
use crate::domain::ids::{AttemptId, MessageId, TemplateId};
use crate::domain::{Priority, ProviderId};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(send_message)
        .service(send_bulk)
        .service(estimate_messages)
        .service(list_messages)
        .service(get_message)
        .service(list_attempts)
        .service(cancel_message);
}

/// A message's error, when it failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageError {
    pub code: String,
    pub message: Option<String>,
}

fn micros_to_usd(micros: Option<i64>) -> Option<f64> {
    micros.map(|m| m as f64 / 1_000_000.0)
}

/// A message as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    #[schema(value_type = String, example = "msg_0192f0c1a2b37c4d8e9f00112233aabb")]
    pub id: MessageId,
    pub channel: String,
    pub recipient: String,
    #[schema(example = "QUEUED")]
    pub status: String,
    /// `high`, `normal` or `bulk`.
    pub priority: Priority,
    pub subject: Option<String>,
    /// The rendered body.
    pub body: String,
    #[schema(value_type = Option<String>)]
    pub template_id: Option<TemplateId>,
    /// Provider kind, once one is chosen.
    pub provider: Option<String>,
    #[schema(value_type = Option<String>)]
    pub provider_id: Option<ProviderId>,
    pub provider_message_id: Option<String>,
    pub attempts: i32,
    /// SMS: `GSM-7` or `UCS-2` (as sent, once sent: a provider's smart encoding may make a
    /// body GSM-7).
    #[schema(example = "GSM-7")]
    pub encoding: Option<String>,
    /// SMS: the segments carriers split it in (160/153 GSM-7 or 70/67 UCS-2 characters each).
    pub segments: Option<i32>,
    pub cost_usd: Option<f64>,
    /// The currency the price came in: the provider's when it reported one, else USD from the
    /// price table.
    pub cost_currency: Option<String>,
    /// The price in `cost_currency`.
    pub cost_amount: Option<f64>,
    pub error: Option<MessageError>,
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_at: Option<DateTime<Utc>>,
    /// The end of its validity window (`ttl_secs`), when it has one.
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sent_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub read_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub failed_at: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Pictures and files it carries by URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<crate::domain::media::MediaItem>>)]
    pub media: Option<Value>,
    /// The fallback chain it belongs to: the id of the chain's first message.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub chain_id: Option<MessageId>,
    /// Every step of its fallback chain, in order, when it is in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<Vec<ChainStepView>>,
}

/// One step of a fallback chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChainStepView {
    /// 0 for the chain's first message.
    pub step: i16,
    pub channel: String,
    /// The step's message status once it has one; before: PENDING, or REFUSED (its checks
    /// refused it when it was due), CANCELLED, SKIPPED (an earlier step was delivered).
    #[schema(example = "PENDING")]
    pub status: String,
    #[schema(value_type = Option<String>)]
    pub message_id: Option<MessageId>,
    /// Why it was started (FAILED, UNDELIVERED or TIMEOUT), or why it ended unstarted.
    pub reason: Option<String>,
    /// The step's error: its message's, or what refused it.
    pub error: Option<MessageError>,
    /// How long the step before may go undelivered before this one starts.
    pub after_secs: Option<i32>,
    /// When it starts if the step before is still not delivered.
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub due_at: Option<DateTime<Utc>>,
}

impl From<StepView> for ChainStepView {
    fn from(s: StepView) -> Self {
        Self {
            step: s.step,
            channel: s.channel,
            status: s.message_status.unwrap_or(s.state),
            message_id: s.message_id.map(MessageId::from_uuid),
            reason: s.reason,
            error: s.error_code.map(|code| MessageError {
                code,
                message: s.error_message,
            }),
            after_secs: s.after_secs,
            due_at: s.due_at,
        }
    }
}

/// Fills in the `chain` of the views that are in one, with one query for them all.
pub async fn with_chains(
    conn: &mut diesel_async::AsyncPgConnection,
    tenant_id: uuid::Uuid,
    views: &mut [MessageView],
) -> Result<(), diesel::result::Error> {
    let ids: Vec<uuid::Uuid> = views
        .iter()
        .filter_map(|v| v.chain_id.map(|c| c.uuid()))
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let steps = chains::step_views(conn, tenant_id, &ids).await?;
    for view in views.iter_mut() {
        if let Some(chain) = view.chain_id.map(|c| c.uuid()) {
            view.chain = Some(
                steps
                    .iter()
                    .filter(|s| s.chain_id == chain)
                    .cloned()
                    .map(ChainStepView::from)
                    .collect(),
            );
        }
    }
    Ok(())
}

impl From<Message> for MessageView {
    fn from(m: Message) -> Self {
        Self {
            id: MessageId::from_uuid(m.id),
            channel: m.channel.to_string(),
            recipient: m.recipient,
            status: m.status.to_string(),
            priority: m.priority,
            subject: m.subject,
            body: m.body,
            template_id: m.template_id.map(TemplateId::from_uuid),
            provider: m.provider_kind,
            provider_id: m.provider_id.map(ProviderId::from_uuid),
            provider_message_id: m.provider_message_id,
            attempts: m.attempts,
            encoding: m.encoding,
            segments: m.segments,
            cost_usd: micros_to_usd(m.cost_usd_micros),
            cost_currency: m.cost_currency,
            cost_amount: micros_to_usd(m.cost_amount_micros),
            error: m.error_code.map(|code| MessageError {
                code,
                message: m.error_message,
            }),
            scheduled_at: m.scheduled_at,
            expires_at: m.expires_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
            sent_at: m.sent_at,
            delivered_at: m.delivered_at,
            read_at: m.read_at,
            failed_at: m.failed_at,
            metadata: m.metadata,
            media: m.media,
            chain_id: m.chain_id.map(MessageId::from_uuid),
            chain: None,
        }
    }
}

/// One delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    #[schema(value_type = String)]
    pub id: AttemptId,
    pub attempt_number: i32,
    #[schema(value_type = String)]
    pub provider_id: ProviderId,
    pub provider: String,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<DateTime<Utc>>,
    /// ACCEPTED, PERMANENT_FAILURE, TRANSIENT_FAILURE, RATE_LIMITED or AMBIGUOUS; null while in flight.
    pub outcome: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub latency_ms: Option<i32>,
    pub provider_message_id: Option<String>,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        Self {
            id: AttemptId::from_uuid(a.id),
            attempt_number: a.attempt_number,
            provider_id: ProviderId::from_uuid(a.provider_id),
            provider: a.provider_kind,
            started_at: a.started_at,
            finished_at: a.finished_at,
            outcome: a.outcome,
            error_code: a.error_code,
            error_message: a.error_message,
            latency_ms: a.latency_ms,
            provider_message_id: a.provider_message_id,
        }
    }
}

crate::http::envelope::envelope_schema! {
    MessageEnvelope => MessageView,
    MessageListEnvelope => Vec<MessageView>,
    AttemptListEnvelope => Vec<AttemptView>,
    BulkEnvelope => BulkResponse,
}
