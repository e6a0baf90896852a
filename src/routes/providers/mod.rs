//! `/cpaas/v1/providers`: the providers a tenant sends through. Reads for every role, writes
//! for admins. Credentials are write-only and sealed at rest.

mod handlers;

use std::collections::BTreeMap;

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub use handlers::*;

use crate::db::providers::Provider;
use crate::domain::{Channel, ProviderId, ProviderKind};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_providers)
        .service(create_provider)
        .service(get_provider)
        .service(update_provider)
        .service(delete_provider)
        .service(get_provider_health);
}

/// Health of a provider, as delivery sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthView {
    /// HEALTHY, DEGRADED or UNHEALTHY.
    pub state: String,
    pub consecutive_failures: i32,
    pub last_error: Option<String>,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub last_change: DateTime<Utc>,
}

/// A provider as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    #[schema(value_type = String, example = "prv_0192f0c1a2b37c4d8e9f00112233aabb")]
    pub id: ProviderId,
    pub name: String,
    pub kind: ProviderKind,
    pub channels: Vec<Channel>,
    pub priority: i32,
    pub is_active: bool,
    /// Non-secret settings.
    #[schema(value_type = Object)]
    pub config: Value,
    /// Which credential keys are set (values are never returned).
    pub credentials: BTreeMap<String, bool>,
    pub health: HealthView,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

impl ProviderView {
    pub fn from_row(row: Provider) -> Self {
        let kind: ProviderKind = row.kind.parse().unwrap_or(ProviderKind::Sandbox);
        let set: Vec<String> = row.credential_keys.iter().flatten().cloned().collect();
        let credentials = kind
            .credential_settings()
            .iter()
            .map(|s| (s.name.to_owned(), set.iter().any(|k| k == s.name)))
            .collect();
        Self {
            id: ProviderId::from_uuid(row.id),
            name: row.name,
            kind,
            channels: row
                .channels
                .iter()
                .flatten()
                .filter_map(|c| c.parse().ok())
                .collect(),
            priority: row.priority,
            is_active: row.is_active,
            config: row.config,
            credentials,
            health: HealthView {
                state: row.health_state,
                consecutive_failures: row.consecutive_failures,
                last_error: row.last_error,
                last_change: row.health_changed_at,
            },
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Body of `POST /cpaas/v1/providers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProviderRequest {
    #[schema(example = "twilio-primary")]
    pub name: String,
    #[schema(value_type = ProviderKind)]
    pub kind: String,
    /// Defaults to every channel the kind supports.
    #[schema(value_type = Option<Vec<Channel>>)]
    pub channels: Option<Vec<String>>,
    /// Lower is tried first; default 100.
    pub priority: Option<i32>,
    pub is_active: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub config: Option<Map<String, Value>>,
    /// Write-only secrets, per kind.
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<Map<String, Value>>,
}

/// Body of `PATCH /cpaas/v1/providers/{id}`. `config` replaces the whole config;
/// `credentials` is merged key by key (a null removes a key). The kind cannot change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProviderRequest {
    pub name: Option<String>,
    #[schema(value_type = Option<Vec<Channel>>)]
    pub channels: Option<Vec<String>>,
    pub priority: Option<i32>,
    pub is_active: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub config: Option<Map<String, Value>>,
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<Map<String, Value>>,
}

/// Filters of `GET /cpaas/v1/providers`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ProviderListQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub kind: Option<String>,
    pub channel: Option<String>,
    pub is_active: Option<bool>,
}

/// Answer of a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedView {
    pub id: String,
    pub deleted: bool,
}

crate::http::envelope::envelope_schema! {
    ProviderEnvelope => ProviderView,
    ProviderListEnvelope => Vec<ProviderView>,
    DeletedEnvelope => DeletedView,
    HealthEnvelope => HealthView,
}
