//! `/cpaas/v1/webhooks`: the tenant's webhook subscriptions. Every route needs the sender
//! role. The signing secret is shown once, when it is created or rotated.

mod handlers;

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use handlers::*;

use crate::db::webhook_deliveries::{DeliveryAttempt, WebhookDelivery};
use crate::db::webhooks::Webhook;
use crate::domain::WebhookId;
use crate::domain::ids::WebhookDeliveryId;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_webhooks)
        .service(create_webhook)
        .service(get_webhook)
        .service(update_webhook)
        .service(delete_webhook)
        .service(rotate_webhook_secret)
        .service(list_webhook_deliveries)
        .service(retry_webhook_delivery);
}

/// A webhook subscription as the API shows it (never with its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    #[schema(value_type = String, example = "whk_0192f0c1a2b37c4d8e9f00112233aabb")]
    pub id: WebhookId,
    #[schema(example = "https://hooks.example.com/cpaas")]
    pub url: String,
    /// Subscribed topics, or `["*"]` for all.
    #[schema(example = json!(["eventzr.cpaas.communication.delivered.v1"]))]
    pub events: Vec<String>,
    pub is_active: bool,
    pub description: Option<String>,
    /// `ACTIVE`; `BACKING_OFF` while its breaker holds deliveries back after failures in a
    /// row; `DISABLED` once it failed for `WEBHOOK_DISABLE_AFTER_SECS` (PATCH `is_active: true`
    /// to reactivate); `INACTIVE` when switched off by the tenant.
    #[schema(example = "ACTIVE")]
    pub state: &'static str,
    /// Failed deliveries in a row (a delivered one resets it).
    pub consecutive_failures: i32,
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub failing_since: Option<DateTime<Utc>>,
    /// Deliveries are held back until then.
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub paused_until: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

impl WebhookView {
    pub fn from_row(row: Webhook) -> Self {
        let state = if row.disabled_at.is_some() && !row.is_active {
            "DISABLED"
        } else if !row.is_active {
            "INACTIVE"
        } else if row.paused_until.is_some_and(|at| at > Utc::now()) {
            "BACKING_OFF"
        } else {
            "ACTIVE"
        };
        Self {
            id: WebhookId::from_uuid(row.id),
            events: row.event_names(),
            url: row.url,
            is_active: row.is_active,
            description: row.description,
            state,
            consecutive_failures: row.consecutive_failures,
            failing_since: row.failing_since,
            paused_until: row.paused_until,
            disabled_at: row.disabled_at,
            disabled_reason: row.disabled_reason,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A webhook with its signing secret: only in the answers of create and rotate-secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecretView {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_…`. Each delivery carries `x-cpaas-signature: t=<unix>,v1=<hex
    /// HMAC-SHA256(secret, "<t>.<body>")>`, keyed with this string as shown. It is not
    /// shown again.
    pub secret: String,
}

/// Body of `POST /cpaas/v1/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// An absolute `https://` URL with no credentials, at most 2048 characters.
    #[schema(example = "https://hooks.example.com/cpaas")]
    pub url: String,
    /// Topics to receive, or `["*"]`.
    #[schema(example = json!(["eventzr.cpaas.communication.delivered.v1", "eventzr.cpaas.communication.failed.v1"]))]
    pub events: Vec<String>,
    /// Default true.
    pub is_active: Option<bool>,
    pub description: Option<String>,
}

/// Body of `PATCH /cpaas/v1/webhooks/{id}`. An empty description clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub is_active: Option<bool>,
    pub description: Option<String>,
}

/// Paging of `GET /cpaas/v1/webhooks`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct WebhookListQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Paging and filter of `GET /cpaas/v1/webhooks/{id}/deliveries`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DeliveryListQuery {
    /// PENDING, DELIVERED or FAILED.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// One event's delivery to a webhook, with every attempt made.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDeliveryView {
    #[schema(value_type = String, example = "whd_0192f0c1a2b37c4d8e9f00112233aabb")]
    pub id: WebhookDeliveryId,
    #[schema(value_type = String, example = "whk_0192f0c1a2b37c4d8e9f00112233aabb")]
    pub webhook_id: WebhookId,
    /// The CloudEvent id, also sent as `x-cpaas-event-id`.
    pub event_id: String,
    /// The topic (the CloudEvent `type`).
    #[schema(example = "eventzr.cpaas.communication.delivered.v1")]
    pub event_type: String,
    /// PENDING (waiting for its next attempt), DELIVERED (a 2xx answer) or FAILED (the retry
    /// window passed, or the webhook was deleted or deactivated).
    pub status: String,
    pub attempts: i32,
    /// The HTTP status of the last answer, if there was one.
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    /// When the next attempt is due; null once the delivery is finished.
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub failed_at: Option<DateTime<Utc>>,
    /// Every POST made, oldest first.
    pub attempt_log: Vec<DeliveryAttemptView>,
}

/// One POST of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryAttemptView {
    pub attempt: i32,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: DateTime<Utc>,
    /// The HTTP status answered; null when no answer came (timeout, refused connection).
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i32,
}

impl WebhookDeliveryView {
    pub fn from_row(row: WebhookDelivery, attempts: Vec<DeliveryAttempt>) -> Self {
        Self {
            id: WebhookDeliveryId::from_uuid(row.id),
            webhook_id: WebhookId::from_uuid(row.webhook_id),
            event_id: row.event_id,
            event_type: row.topic,
            next_attempt_at: (row.status == "PENDING").then_some(row.next_attempt_at),
            status: row.status,
            attempts: row.attempts,
            last_status_code: row.last_status_code,
            last_error: row.last_error,
            created_at: row.created_at,
            updated_at: row.updated_at,
            delivered_at: row.delivered_at,
            failed_at: row.failed_at,
            attempt_log: attempts
                .into_iter()
                .map(|a| DeliveryAttemptView {
                    attempt: a.attempt,
                    started_at: a.started_at,
                    status_code: a.status_code,
                    error: a.error,
                    latency_ms: a.latency_ms,
                })
                .collect(),
        }
    }
}

crate::http::envelope::envelope_schema! {
    WebhookEnvelope => WebhookView,
    WebhookListEnvelope => Vec<WebhookView>,
    WebhookWithSecretEnvelope => WebhookWithSecretView,
    WebhookDeliveryListEnvelope => Vec<WebhookDeliveryView>,
    WebhookDeliveryEnvelope => WebhookDeliveryView,
}
