//! Rendering a template with sample variables, and its version history.

use actix_web::{get, post, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{PreviewRequest, PreviewView, TemplateVersionView};
use crate::db::templates as db;
use crate::domain::ids::TemplatePrefix;
use crate::domain::roles::Permission;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::AuthUser;
use crate::http::envelope::{ApiResponse, Page};
use crate::http::extract::PathId;
use crate::state::AppState;
use crate::templates::{RenderError, render};

/// Render a template with the given variables, as a message would be.
#[utoipa::path(
    tag = "templates",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Template id (tpl_…)")),
    request_body = PreviewRequest,
    responses(
        (status = 200, description = "The rendered subject and body", body = crate::routes::templates::PreviewEnvelope),
        (status = 400, description = "ERR_CPAAS_TEMPLATE_VARIABLES_MISSING with `details: [{\"variable\": …}]`, or ERR_CPAAS_VALIDATION_FAILED when the variables do not fit the template", body = crate::http::envelope::ErrorEnvelope),
        (status = 404, description = "No such template for this tenant", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[post("/cpaas/v1/templates/{id}/preview")]
pub async fn preview_template(
    user: AuthUser,
    state: web::Data<AppState>,
    id: PathId<TemplatePrefix>,
    body: web::Json<PreviewRequest>,
) -> ApiResult<ApiResponse<PreviewView>> {
    user.require(Permission::Read)?;
    let mut conn = state.pool.get().await?;
    let template = db::get_template(&mut conn, user.tenant_id, id.uuid())
        .await?
        .ok_or_else(|| ApiError::not_found("template"))?;
    drop(conn);
    let rendered = render(&template, &body.variables).map_err(|e| match e {
        RenderError::Invalid(reason) => ApiError::invalid_field("variables", reason),
        missing => missing.into(),
    })?;
    Ok(ApiResponse::ok(PreviewView {
        subject: rendered.subject,
        body: rendered.body,
        html_body: rendered.html_body,
        variables_used: template.variable_names(),
    }))
}

/// Query of the version history.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct VersionListQuery {
    /// 1–100, default 20.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

const CURSOR_PREFIX: &str = "v";

fn encode_version_cursor(version: i32) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{version}"))
}

fn decode_version_cursor(cursor: &str) -> Option<i32> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix(CURSOR_PREFIX)?
        .parse()
        .ok()
}

/// Every version of a template's content, newest first.
#[utoipa::path(
    tag = "templates",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Template id (tpl_…)"), VersionListQuery),
    responses(
        (status = 200, description = "A page of versions", body = crate::routes::templates::TemplateVersionListEnvelope),
        (status = 400, description = "ERR_CPAAS_INVALID_CURSOR or ERR_CPAAS_VALIDATION_FAILED", body = crate::http::envelope::ErrorEnvelope),
        (status = 404, description = "No such template for this tenant", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/templates/{id}/versions")]
pub async fn list_template_versions(
    user: AuthUser,
    state: web::Data<AppState>,
    id: PathId<TemplatePrefix>,
    query: web::Query<VersionListQuery>,
) -> ApiResult<ApiResponse<Vec<TemplateVersionView>>> {
    user.require(Permission::Read)?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "must be between 1 and 100",
        ));
    }
    let before = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(decode_version_cursor(c).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidCursor,
                "the cursor is not one this API issued",
            )
        })?),
    };
    let mut conn = state.pool.get().await?;
    db::get_template(&mut conn, user.tenant_id, id.uuid())
        .await?
        .ok_or_else(|| ApiError::not_found("template"))?;
    let mut rows = db::list_versions(&mut conn, id.uuid(), before, limit).await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = has_more
        .then(|| rows.last().map(|r| encode_version_cursor(r.version)))
        .flatten();
    Ok(ApiResponse::list(
        rows.into_iter()
            .map(TemplateVersionView::from_row)
            .collect(),
        Page {
            next_cursor,
            has_more,
            limit,
        },
    ))
}
