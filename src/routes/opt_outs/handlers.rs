//! Opt-out handlers.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, delete, get, post, web};

use super::{CheckQuery, CreateOptOutRequest, OptOutCheckView, OptOutListQuery, OptOutView};
use crate::db::opt_outs::{self as db, OptOutFilter};
use crate::domain::OptOutId;
use crate::domain::ids::OptOutPrefix;
use crate::domain::opt_out::{OptOutScope, OptOutSource};
use crate::domain::roles::Permission;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::AuthUser;
use crate::http::audit::{AuditActor, Change};
use crate::http::envelope::{ApiResponse, Meta};
use crate::http::extract::PathId;
use crate::http::idempotency::{Answer, Idempotency, Reply};
use crate::http::pagination::PageParams;
use crate::routes::providers::DeletedView;
use crate::state::AppState;

const MAX_REASON_CHARS: usize = 500;

fn parse_scope(channel: &str) -> ApiResult<OptOutScope> {
    channel
        .parse()
        .map_err(|e: String| ApiError::new(ErrorCode::InvalidChannel, e))
}

/// A recipient read from a query string. An unencoded `+` arrives as a space; a leading space
/// before digits can only have been one.
fn query_recipient(raw: &str) -> String {
    match raw.strip_prefix(' ') {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => format!("+{rest}"),
        _ => raw.to_owned(),
    }
}

/// List the tenant's active opt-outs, newest first.
#[utoipa::path(
    tag = "opt-outs",
    security(("bearer" = [])),
    params(OptOutListQuery),
    responses(
        (status = 200, description = "A page of opt-outs", body = crate::routes::opt_outs::OptOutListEnvelope),
        (status = 400, description = "ERR_CPAAS_INVALID_CURSOR, ERR_CPAAS_INVALID_CHANNEL, ERR_CPAAS_INVALID_PHONE_NUMBER, ERR_CPAAS_INVALID_EMAIL or ERR_CPAAS_VALIDATION_FAILED", body = crate::http::envelope::ErrorEnvelope),
        (status = 401, description = "Missing or invalid token", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/opt-outs")]
pub async fn list_opt_outs(
    user: AuthUser,
    state: web::Data<AppState>,
    query: web::Query<OptOutListQuery>,
) -> ApiResult<ApiResponse<Vec<OptOutView>>> {
    user.require(Permission::Read)?;
    let query = query.into_inner();
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse()?;
    let scope = query.channel.as_deref().map(parse_scope).transpose()?;
    let recipient = match &query.recipient {
        Some(raw) => Some(
            scope
                .unwrap_or(OptOutScope::All)
                .parse_recipient(&query_recipient(raw))?
                .normalized()
                .to_owned(),
        ),
        None => None,
    };
    let source = query
        .source
        .as_deref()
        .map(|s| {
            s.parse::<OptOutSource>()
                .map_err(|e| ApiError::invalid_field("source", e))
        })
        .transpose()?;
    let filter = OptOutFilter {
        recipient,
        channel: scope.map(|s| s.as_str().to_owned()),
        source: source.map(|s| s.as_str().to_owned()),
    };
    let mut conn = state.pool.get().await?;
    let rows =
        db::list_opt_outs(&mut conn, user.tenant_id, &filter, page.before, page.limit).await?;
    let (rows, page) = page.finish(rows, |r| r.id);
    Ok(ApiResponse::list(
        rows.into_iter().map(OptOutView::from_row).collect(),
        page,
    ))
}

/// Opt a recipient out of a channel (or ALL). Adding one that is already active answers 200
/// with the existing opt-out. With an `Idempotency-Key`, a replay answers the status first
/// answered (201 or 200), whatever the ledger holds since.
#[utoipa::path(
    tag = "opt-outs",
    security(("bearer" = [])),
    request_body = CreateOptOutRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 hours")),
    responses(
        (status = 201, description = "The new opt-out", body = crate::routes::opt_outs::OptOutEnvelope),
        (status = 200, description = "The recipient was already opted out: the existing opt-out", body = crate::routes::opt_outs::OptOutEnvelope),
        (status = 400, description = "ERR_CPAAS_INVALID_PHONE_NUMBER, ERR_CPAAS_INVALID_EMAIL, ERR_CPAAS_INVALID_CHANNEL or ERR_CPAAS_VALIDATION_FAILED", body = crate::http::envelope::ErrorEnvelope),
        (status = 403, description = "The caller may not manage opt-outs", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[post("/cpaas/v1/opt-outs")]
pub async fn create_opt_out(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    body: web::Json<CreateOptOutRequest>,
) -> ApiResult<Reply> {
    user.require(Permission::Send)?;
    let body = body.into_inner();
    let scope = parse_scope(&body.channel)?;
    let recipient = scope.parse_recipient(&body.recipient)?;
    let reason = body
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
    {
        return Err(ApiError::invalid_field(
            "reason",
            format!("must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    let meta = Meta::of(&req);
    let audit = AuditActor::of(&user, &meta);
    let tenant = user.tenant_id;
    idempotency
        .run(&state.pool, tenant, &meta, async |conn| {
            let (row, created) = db::add_opt_out(
                conn,
                tenant,
                recipient.normalized(),
                scope.as_str(),
                OptOutSource::Api.as_str(),
                reason.as_deref(),
            )
            .await?;
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let resource = OptOutId::from_uuid(row.id);
            let view = OptOutView::from_row(row);
            if created {
                let change = Change::new("created", "opt_out", resource).after(&view);
                audit.record(conn, change).await?;
            }
            Ok(Answer::new(status, view))
        })
        .await
}

/// Whether a recipient is opted out.
#[utoipa::path(
    tag = "opt-outs",
    security(("bearer" = [])),
    params(CheckQuery),
    responses(
        (status = 200, description = "`opted_out` and the opt-out that applies", body = crate::routes::opt_outs::OptOutCheckEnvelope),
        (status = 400, description = "ERR_CPAAS_INVALID_PHONE_NUMBER, ERR_CPAAS_INVALID_EMAIL, ERR_CPAAS_INVALID_CHANNEL or ERR_CPAAS_VALIDATION_FAILED", body = crate::http::envelope::ErrorEnvelope),
        (status = 401, description = "Missing or invalid token", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/opt-outs/check")]
pub async fn check_opt_out(
    user: AuthUser,
    state: web::Data<AppState>,
    query: web::Query<CheckQuery>,
) -> ApiResult<ApiResponse<OptOutCheckView>> {
    user.require(Permission::Read)?;
    let scope = query.channel.as_deref().map(parse_scope).transpose()?;
    let recipient = scope
        .unwrap_or(OptOutScope::All)
        .parse_recipient(&query_recipient(&query.recipient))?;
    let recipient = recipient.normalized();
    let mut conn = state.pool.get().await?;
    let found = match scope {
        Some(OptOutScope::Channel(channel)) => {
            db::find_active_opt_out(&mut conn, user.tenant_id, recipient, channel).await?
        }
        Some(OptOutScope::All) => {
            db::find_exact(&mut conn, user.tenant_id, recipient, OptOutScope::ALL_STR).await?
        }
        None => db::find_active_opt_outs(&mut conn, user.tenant_id, recipient)
            .await?
            .into_iter()
            .next(),
    };
    Ok(ApiResponse::ok(OptOutCheckView {
        opted_out: found.is_some(),
        opt_out: found.map(OptOutView::from_row),
    }))
}

/// Remove an opt-out: the recipient can be reached again. The ledger keeps the row as history.
#[utoipa::path(
    tag = "opt-outs",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Opt-out id (opt_…)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 hours"),
    ),
    responses(
        (status = 200, description = "Removed", body = crate::routes::providers::DeletedEnvelope),
        (status = 403, description = "The caller may not manage opt-outs", body = crate::http::envelope::ErrorEnvelope),
        (status = 404, description = "No such active opt-out for this tenant", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[delete("/cpaas/v1/opt-outs/{id}")]
pub async fn delete_opt_out(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    id: PathId<OptOutPrefix>,
) -> ApiResult<Reply> {
    user.require(Permission::Send)?;
    let meta = Meta::of(&req);
    let audit = AuditActor::of(&user, &meta);
    let tenant = user.tenant_id;
    idempotency
        .run(&state.pool, tenant, &meta, async |conn| {
            if !db::remove_opt_out(conn, tenant, id.uuid()).await? {
                return Err(ApiError::not_found("opt-out"));
            }
            audit
                .record(conn, Change::new("deleted", "opt_out", *id))
                .await?;
            let view = DeletedView {
                id: id.to_string(),
                deleted: true,
            };
            Ok(Answer::ok(view))
        })
        .await
}
