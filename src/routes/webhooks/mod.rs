//! `/cpaas/v1/webhooks`: the tenant's webhook subscriptions. Every route needs the sender
//! role. The signing secret is shown once, when it is created or rotated.

mod handlers;

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use handlers::*;

use crate::db::webhooks::Webhook;
use crate::domain::WebhookId;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_webhooks)
        .service(create_webhook)
        .service(get_webhook)
        .service(update_webhook)
        .service(delete_webhook)
        .service(rotate_webhook_secret);
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
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

impl WebhookView {
    pub fn from_row(row: Webhook) -> Self {
        Self {
            id: WebhookId::from_uuid(row.id),
            events: row.event_names(),
            url: row.url,
            is_active: row.is_active,
            description: row.description,
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
