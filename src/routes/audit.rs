//! `GET /cpaas/v1/audit-log` (admin): the changes made to the tenant's providers, webhooks,
//! templates, opt-outs, API keys and users, newest first.

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::db::audit::{self as db, AuditEntry, AuditFilter};
use crate::domain::ids::AuditId;
use crate::domain::roles::Permission;
use crate::error::{ApiError, ApiResult};
use crate::http::AuthUser;
use crate::http::envelope::ApiResponse;
use crate::http::pagination::PageParams;
use crate::state::AppState;

/// The resource types the log records.
const RESOURCE_TYPES: &[&str] = &[
    "provider", "webhook", "template", "opt_out", "api_key", "user",
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_audit_log);
}

/// Filters and paging of `GET /cpaas/v1/audit-log`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditLogQuery {
    /// `provider`, `webhook`, `template`, `opt_out`, `api_key` or `user`.
    pub resource_type: Option<String>,
    /// The resource's id (`prv_…`, `whk_…`, …; a user's id).
    pub resource_id: Option<String>,
    /// The actor's id: a user id, or an API key's `apk_…`.
    pub actor: Option<String>,
    /// Entries at or after this time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<DateTime<Utc>>,
    /// Entries before this time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Who made a change.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditActorView {
    /// `user` or `api_key`.
    #[serde(rename = "type")]
    pub actor_type: String,
    pub id: String,
}

/// One change.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    #[schema(value_type = String, example = "aud_0192f0c1a2b37c4d8e9f00112233aabb")]
    pub id: AuditId,
    pub actor: AuditActorView,
    /// `created`, `updated`, `deleted`, `revoked`, `secret_rotated` or `password_changed`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub request_id: Option<uuid::Uuid>,
    /// `{ field: { from, to } }` of what the API shows of the resource, never a secret; a
    /// provider's changed credential keys by name in `credentials_changed`.
    #[schema(value_type = Object)]
    pub changes: Value,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

impl AuditEntryView {
    fn from_row(row: AuditEntry) -> Self {
        Self {
            id: AuditId::from_uuid(row.id),
            actor: AuditActorView {
                actor_type: row.actor_type,
                id: row.actor_id,
            },
            action: row.action,
            resource_type: row.resource_type,
            resource_id: row.resource_id,
            request_id: row.request_id,
            changes: row.changes,
            created_at: row.created_at,
        }
    }
}

crate::http::envelope::envelope_schema! {
    AuditLogEnvelope => Vec<AuditEntryView>,
}

/// The tenant's audit log, newest first.
#[utoipa::path(
    tag = "audit-log",
    security(("bearer" = [])),
    params(AuditLogQuery),
    responses(
        (status = 200, description = "A page of entries", body = crate::routes::audit::AuditLogEnvelope),
        (status = 400, description = "ERR_CPAAS_INVALID_CURSOR or ERR_CPAAS_VALIDATION_FAILED naming the filter", body = crate::http::envelope::ErrorEnvelope),
        (status = 403, description = "The caller is not an admin", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/audit-log")]
pub async fn list_audit_log(
    user: AuthUser,
    state: web::Data<AppState>,
    query: web::Query<AuditLogQuery>,
) -> ApiResult<ApiResponse<Vec<AuditEntryView>>> {
    user.require(Permission::Admin)?;
    let query = query.into_inner();
    if let Some(t) = &query.resource_type
        && !RESOURCE_TYPES.contains(&t.as_str())
    {
        return Err(ApiError::invalid_field(
            "resource_type",
            format!("expected one of {}", RESOURCE_TYPES.join(", ")),
        ));
    }
    if let (Some(from), Some(to)) = (query.from, query.to)
        && from >= to
    {
        return Err(ApiError::invalid_field("to", "must be after from"));
    }
    for (field, value) in [("resource_id", &query.resource_id), ("actor", &query.actor)] {
        if value.as_ref().is_some_and(|v| v.len() > 255) {
            return Err(ApiError::invalid_field(field, "must be at most 255 bytes"));
        }
    }
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse()?;
    let filter = AuditFilter {
        resource_type: query.resource_type,
        resource_id: query.resource_id,
        actor: query.actor,
        from: query.from,
        to: query.to,
    };
    let mut conn = state.pool.get().await?;
    let rows = db::list(&mut conn, user.tenant_id, &filter, page.before, page.limit).await?;
    let (rows, page) = page.finish(rows, |r| r.id);
    Ok(ApiResponse::list(
        rows.into_iter().map(AuditEntryView::from_row).collect(),
        page,
    ))
}
