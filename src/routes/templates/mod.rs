//! `/cpaas/v1/templates`: message templates. Reads for every role, writes for senders. Every
//! change of name, locale, subject, body or status bumps `version` and is kept in the history.

mod checks;
mod handlers;
mod preview;

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub use handlers::*;
pub use preview::*;

use crate::db::templates::{Template, TemplateVersion};
use crate::domain::{Channel, TemplateId};
use crate::templates::TemplateStatus;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_templates)
        .service(create_template)
        .service(get_template)
        .service(update_template)
        .service(delete_template)
        .service(preview_template)
        .service(list_template_versions);
}

fn texts(values: &[Option<String>]) -> Vec<String> {
    values.iter().flatten().cloned().collect()
}

/// A template as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    #[schema(value_type = String, example = "tpl_0192f0c1a2b37c4d8e9f00112233aabb")]
    pub id: TemplateId,
    pub name: String,
    #[schema(value_type = Channel)]
    pub channel: String,
    pub locale: String,
    /// E-mail only.
    pub subject: Option<String>,
    pub body: String,
    /// The HTML part of an e-mail template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html_body: Option<String>,
    /// Names the body and subject read, sorted; all are required to render.
    pub variables: Vec<String>,
    #[schema(value_type = TemplateStatus)]
    pub status: String,
    pub provider_template_name: Option<String>,
    pub version: i32,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

impl TemplateView {
    pub fn from_row(row: Template) -> Self {
        Self {
            id: TemplateId::from_uuid(row.id),
            variables: texts(&row.variables),
            name: row.name,
            channel: row.channel,
            locale: row.locale,
            subject: row.subject,
            body: row.body,
            html_body: row.html_body,
            status: row.status,
            provider_template_name: row.provider_template_name,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// One version of a template's content.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateVersionView {
    pub version: i32,
    pub name: String,
    pub locale: String,
    #[schema(value_type = TemplateStatus)]
    pub status: String,
    pub subject: Option<String>,
    pub body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html_body: Option<String>,
    pub variables: Vec<String>,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

impl TemplateVersionView {
    pub fn from_row(row: TemplateVersion) -> Self {
        Self {
            version: row.version,
            variables: texts(&row.variables),
            name: row.name,
            locale: row.locale,
            status: row.status,
            subject: row.subject,
            body: row.body,
            html_body: row.html_body,
            created_at: row.created_at,
        }
    }
}

/// Body of `POST /cpaas/v1/templates`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplateRequest {
    #[schema(example = "order-confirmation")]
    pub name: String,
    #[schema(value_type = Channel)]
    pub channel: String,
    /// `en`, `en-GB`, `pt_BR`…; default `en`.
    pub locale: Option<String>,
    /// Required for EMAIL, refused for the other channels.
    pub subject: Option<String>,
    /// The plain-text body (for EMAIL, the plain-text part: not escaped, and derived from
    /// `html_body` when left out).
    #[schema(example = "Hi {{ first_name }}, your order {{ order_id }} is confirmed.")]
    #[serde(default)]
    pub body: String,
    /// EMAIL only: the HTML part; its variables are HTML-escaped.
    pub html_body: Option<String>,
    /// Default APPROVED.
    #[schema(value_type = Option<TemplateStatus>)]
    pub status: Option<String>,
    /// The provider's name for it (WhatsApp templates approved by Meta).
    pub provider_template_name: Option<String>,
}

/// Body of `PATCH /cpaas/v1/templates/{id}`. The channel cannot change; an empty
/// `provider_template_name` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTemplateRequest {
    pub name: Option<String>,
    pub locale: Option<String>,
    pub subject: Option<String>,
    pub body: Option<String>,
    /// EMAIL only; an empty string removes the HTML part.
    pub html_body: Option<String>,
    #[schema(value_type = Option<TemplateStatus>)]
    pub status: Option<String>,
    pub provider_template_name: Option<String>,
}

/// Filters of `GET /cpaas/v1/templates`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct TemplateListQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub channel: Option<String>,
    pub locale: Option<String>,
    /// Exact name.
    pub name: Option<String>,
    pub status: Option<String>,
}

/// Body of `POST /cpaas/v1/templates/{id}/preview`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    #[serde(default)]
    #[schema(value_type = Object, example = json!({"first_name": "Ada", "order_id": "A-1001"}))]
    pub variables: Map<String, Value>,
}

/// A rendered template.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewView {
    pub subject: Option<String>,
    pub body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html_body: Option<String>,
    /// The variables the template read.
    pub variables_used: Vec<String>,
}

crate::http::envelope::envelope_schema! {
    TemplateEnvelope => TemplateView,
    TemplateListEnvelope => Vec<TemplateView>,
    TemplateVersionListEnvelope => Vec<TemplateVersionView>,
    PreviewEnvelope => PreviewView,
}
