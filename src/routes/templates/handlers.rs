//! Template CRUD handlers.

use actix_web::{HttpRequest, delete, get, patch, post, web};
use diesel_async::AsyncPgConnection;

use super::checks::{Content, check_content, check_provider_name, ensure_free, parse_channel};
use super::{CreateTemplateRequest, TemplateListQuery, TemplateView, UpdateTemplateRequest};
use crate::db::templates::{
    self as db, NewTemplate, Template, TemplateChanges, TemplateFilter, TemplateVersion,
};
use crate::domain::TemplateId;
use crate::domain::ids::TemplatePrefix;
use crate::domain::roles::Permission;
use crate::error::{ApiError, ApiResult};
use crate::http::AuthUser;
use crate::http::audit::{AuditActor, Change};
use crate::http::envelope::{ApiResponse, Meta};
use crate::http::extract::PathId;
use crate::http::idempotency::{Answer, Idempotency, Reply};
use crate::http::pagination::PageParams;
use crate::routes::providers::DeletedView;
use crate::state::AppState;
use crate::templates::TemplateStatus;

/// List the tenant's templates, newest first.
#[utoipa::path(
    tag = "templates",
    security(("bearer" = [])),
    params(TemplateListQuery),
    responses(
        (status = 200, description = "A page of templates", body = crate::routes::templates::TemplateListEnvelope),
        (status = 400, description = "ERR_CPAAS_INVALID_CURSOR, ERR_CPAAS_INVALID_CHANNEL or ERR_CPAAS_VALIDATION_FAILED", body = crate::http::envelope::ErrorEnvelope),
        (status = 401, description = "Missing or invalid token", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/templates")]
pub async fn list_templates(
    user: AuthUser,
    state: web::Data<AppState>,
    query: web::Query<TemplateListQuery>,
) -> ApiResult<ApiResponse<Vec<TemplateView>>> {
    user.require(Permission::Read)?;
    let query = query.into_inner();
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse()?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            s.parse::<TemplateStatus>()
                .map_err(|e| ApiError::invalid_field("status", e))
        })
        .transpose()?;
    let filter = TemplateFilter {
        channel: query
            .channel
            .as_deref()
            .map(parse_channel)
            .transpose()?
            .map(|c| c.as_str().to_owned()),
        locale: query.locale,
        name: query.name,
        status: status.map(|s| s.as_str().to_owned()),
    };
    let mut conn = state.pool.get().await?;
    let rows =
        db::list_templates(&mut conn, user.tenant_id, &filter, page.before, page.limit).await?;
    let (rows, page) = page.finish(rows, |r| r.id);
    Ok(ApiResponse::list(
        rows.into_iter().map(TemplateView::from_row).collect(),
        page,
    ))
}

/// Create a template. Its variables are derived from the body and subject.
#[utoipa::path(
    tag = "templates",
    security(("bearer" = [])),
    request_body = CreateTemplateRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 hours")),
    responses(
        (status = 201, description = "The template, version 1", body = crate::routes::templates::TemplateEnvelope),
        (status = 400, description = "ERR_CPAAS_VALIDATION_FAILED naming the field (a body or subject that does not compile names it), or ERR_CPAAS_INVALID_CHANNEL", body = crate::http::envelope::ErrorEnvelope),
        (status = 403, description = "The caller may not manage templates", body = crate::http::envelope::ErrorEnvelope),
        (status = 409, description = "ERR_CPAAS_CONFLICT: (name, channel, locale) is taken", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[post("/cpaas/v1/templates")]
pub async fn create_template(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    body: web::Json<CreateTemplateRequest>,
) -> ApiResult<Reply> {
    user.require(Permission::Send)?;
    let body = body.into_inner();
    let channel = parse_channel(&body.channel)?;
    let (content, variables) = check_content(
        channel,
        Content {
            name: body.name,
            locale: body.locale.unwrap_or_else(|| "en".to_owned()),
            subject: body.subject,
            body: body.body,
            html_body: body.html_body,
            status: body.status.unwrap_or_else(|| "APPROVED".to_owned()),
        },
    )?;
    let new = NewTemplate {
        id: TemplateId::generate().uuid(),
        tenant_id: user.tenant_id,
        name: content.name,
        channel: channel.as_str().to_owned(),
        locale: content.locale,
        subject: content.subject,
        body: content.body,
        variables,
        status: content.status,
        provider_template_name: check_provider_name(body.provider_template_name)?,
        html_body: content.html_body,
    };
    let meta = Meta::of(&req);
    let audit = AuditActor::of(&user, &meta);
    let tenant = user.tenant_id;
    idempotency
        .run(&state.pool, tenant, &meta, async |conn| {
            ensure_free(conn, tenant, &new.name, &new.channel, &new.locale, None).await?;
            let row = db::insert_template(conn, &new).await?;
            let resource = TemplateId::from_uuid(row.id);
            let view = TemplateView::from_row(row);
            let change = Change::new("created", "template", resource).after(&view);
            audit.record(conn, change).await?;
            Ok(Answer::created(view))
        })
        .await
}

/// One template.
#[utoipa::path(
    tag = "templates",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Template id (tpl_…)")),
    responses(
        (status = 200, description = "The template", body = crate::routes::templates::TemplateEnvelope),
        (status = 404, description = "No such template for this tenant", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/templates/{id}")]
pub async fn get_template(
    user: AuthUser,
    state: web::Data<AppState>,
    id: PathId<TemplatePrefix>,
) -> ApiResult<ApiResponse<TemplateView>> {
    user.require(Permission::Read)?;
    let mut conn = state.pool.get().await?;
    let row = db::get_template(&mut conn, user.tenant_id, id.uuid())
        .await?
        .ok_or_else(|| ApiError::not_found("template"))?;
    Ok(ApiResponse::ok(TemplateView::from_row(row)))
}

/// Change a template. A change of name, locale, subject, body or status bumps `version` and
/// records the new content in the history, in the same transaction.
#[utoipa::path(
    tag = "templates",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Template id (tpl_…)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 hours"),
    ),
    request_body = UpdateTemplateRequest,
    responses(
        (status = 200, description = "The template", body = crate::routes::templates::TemplateEnvelope),
        (status = 400, description = "ERR_CPAAS_VALIDATION_FAILED naming the field", body = crate::http::envelope::ErrorEnvelope),
        (status = 403, description = "The caller may not manage templates", body = crate::http::envelope::ErrorEnvelope),
        (status = 404, description = "No such template for this tenant", body = crate::http::envelope::ErrorEnvelope),
        (status = 409, description = "ERR_CPAAS_CONFLICT: (name, channel, locale) is taken", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[patch("/cpaas/v1/templates/{id}")]
pub async fn update_template(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    id: PathId<TemplatePrefix>,
    body: web::Json<UpdateTemplateRequest>,
) -> ApiResult<Reply> {
    user.require(Permission::Send)?;
    let body = body.into_inner();
    let meta = Meta::of(&req);
    let audit = AuditActor::of(&user, &meta);
    let tenant_id = user.tenant_id;
    idempotency
        .run(&state.pool, tenant_id, &meta, async |conn| {
            let current = db::lock_template(conn, tenant_id, id.uuid())
                .await?
                .ok_or_else(|| ApiError::not_found("template"))?;
            let before = TemplateView::from_row(current.clone());
            let row = apply_update(conn, current, body).await?;
            let view = TemplateView::from_row(row);
            let change = Change::new("updated", "template", *id)
                .before(&before)
                .after(&view);
            audit.record(conn, change).await?;
            Ok(Answer::ok(view))
        })
        .await
}

async fn apply_update(
    conn: &mut AsyncPgConnection,
    current: Template,
    body: UpdateTemplateRequest,
) -> ApiResult<Template> {
    let channel = parse_channel(&current.channel)?;
    let (content, variables) = check_content(
        channel,
        Content {
            name: body.name.unwrap_or_else(|| current.name.clone()),
            locale: body.locale.unwrap_or_else(|| current.locale.clone()),
            subject: body.subject.or_else(|| current.subject.clone()),
            body: body.body.unwrap_or_else(|| current.body.clone()),
            html_body: body.html_body.or_else(|| current.html_body.clone()),
            status: body.status.unwrap_or_else(|| current.status.clone()),
        },
    )?;
    let provider_template_name = match body.provider_template_name {
        Some(name) => check_provider_name(Some(name))?,
        None => current.provider_template_name.clone(),
    };
    let versioned_change = content.name != current.name
        || content.locale != current.locale
        || content.subject != current.subject
        || content.body != current.body
        || content.html_body != current.html_body
        || content.status != current.status;
    if !versioned_change && provider_template_name == current.provider_template_name {
        return Ok(current);
    }
    if content.name != current.name || content.locale != current.locale {
        ensure_free(
            conn,
            current.tenant_id,
            &content.name,
            &current.channel,
            &content.locale,
            Some(current.id),
        )
        .await?;
    }
    let changes = TemplateChanges {
        name: content.name,
        locale: content.locale,
        subject: content.subject,
        body: content.body,
        variables,
        status: content.status,
        provider_template_name,
        version: current.version + i32::from(versioned_change),
        updated_at: chrono::Utc::now(),
        html_body: content.html_body,
    };
    let row = db::update_template(conn, current.tenant_id, current.id, &changes).await?;
    if versioned_change {
        db::insert_version(conn, &TemplateVersion::of(&row)).await?;
    }
    Ok(row)
}

/// Delete a template. Messages already rendered from it keep their content.
#[utoipa::path(
    tag = "templates",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Template id (tpl_…)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 hours"),
    ),
    responses(
        (status = 200, description = "Deleted", body = crate::routes::providers::DeletedEnvelope),
        (status = 403, description = "The caller may not manage templates", body = crate::http::envelope::ErrorEnvelope),
        (status = 404, description = "No such template for this tenant", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[delete("/cpaas/v1/templates/{id}")]
pub async fn delete_template(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    id: PathId<TemplatePrefix>,
) -> ApiResult<Reply> {
    user.require(Permission::Send)?;
    let meta = Meta::of(&req);
    let audit = AuditActor::of(&user, &meta);
    let tenant = user.tenant_id;
    idempotency
        .run(&state.pool, tenant, &meta, async |conn| {
            if !db::delete_template(conn, tenant, id.uuid()).await? {
                return Err(ApiError::not_found("template"));
            }
            audit
                .record(conn, Change::new("deleted", "template", *id))
                .await?;
            let view = DeletedView {
                id: id.to_string(),
                deleted: true,
            };
            Ok(Answer::ok(view))
        })
        .await
}
