//! `GET /cpaas/v1/messages[/{id}[/attempts]]` and `POST /cpaas/v1/messages/{id}/cancel`.

use actix_web::{HttpRequest, get, post, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{AttemptView, MessageView};
use crate::db::messages::{self as db, MessageFilter};
use crate::domain::MessageStatus;
use crate::domain::ids::MessagePrefix;
use crate::domain::recipient::Recipient;
use crate::domain::roles::Permission;
use crate::domain::{Channel, ProviderId, ProviderKind};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::AuthUser;
use crate::http::envelope::{ApiResponse, Meta};
use crate::http::extract::PathId;
use crate::http::idempotency::{Answer, Idempotency, Reply};
use crate::http::pagination::PageParams;
use crate::state::AppState;

/// Filters of `GET /cpaas/v1/messages`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct MessageListQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// A status, e.g. QUEUED.
    pub status: Option<String>,
    pub channel: Option<String>,
    /// Compared after normalisation (E.164, lower-cased e-mail).
    pub recipient: Option<String>,
    /// A provider kind (TWILIO) or id (prv_…).
    pub provider: Option<String>,
    /// RFC 3339; inclusive.
    pub created_after: Option<String>,
    /// RFC 3339; exclusive.
    pub created_before: Option<String>,
}

fn timestamp(field: &str, value: Option<&str>) -> ApiResult<Option<DateTime<Utc>>> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| ApiError::invalid_field(field, "must be an RFC 3339 timestamp"))
        })
        .transpose()
}

fn filter_from(q: &MessageListQuery) -> ApiResult<MessageFilter> {
    let channel = q
        .channel
        .as_deref()
        .map(|c| {
            c.parse::<Channel>()
                .map_err(|e| ApiError::new(ErrorCode::InvalidChannel, e))
        })
        .transpose()?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            s.parse::<MessageStatus>()
                .map_err(|e| ApiError::invalid_field("status", e))
        })
        .transpose()?;
    let recipient = q.recipient.as_deref().map(|r| {
        let channels = channel
            .map(|c| vec![c])
            .unwrap_or_else(|| Channel::ALL.to_vec());
        channels
            .into_iter()
            .find_map(|c| Recipient::parse(c, r).ok())
            .map(|p| p.normalized().to_owned())
            .unwrap_or_else(|| r.trim().to_owned())
    });
    let (provider_id, provider_kind) = match q.provider.as_deref() {
        None => (None, None),
        Some(p) if p.starts_with("prv_") => (
            Some(
                ProviderId::parse(p)
                    .ok_or_else(|| ApiError::invalid_field("provider", "not a provider id"))?
                    .uuid(),
            ),
            None,
        ),
        Some(p) => (
            None,
            Some(
                p.to_ascii_uppercase()
                    .parse::<ProviderKind>()
                    .map_err(|e| ApiError::invalid_field("provider", e))?
                    .as_str()
                    .to_owned(),
            ),
        ),
    };
    Ok(MessageFilter {
        status: status.map(|s| s.as_str().to_owned()),
        channel: channel.map(|c| c.as_str().to_owned()),
        recipient,
        provider_id,
        provider_kind,
        created_after: timestamp("created_after", q.created_after.as_deref())?,
        created_before: timestamp("created_before", q.created_before.as_deref())?,
    })
}

/// List the tenant's messages, newest first.
#[utoipa::path(
    tag = "messages",
    security(("bearer" = [])),
    params(MessageListQuery),
    responses(
        (status = 200, description = "A page of messages", body = crate::routes::messages::MessageListEnvelope),
        (status = 400, description = "A bad filter or cursor", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/messages")]
pub async fn list_messages(
    user: AuthUser,
    state: web::Data<AppState>,
    query: web::Query<MessageListQuery>,
) -> ApiResult<ApiResponse<Vec<MessageView>>> {
    user.require(Permission::Read)?;
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .parse()?;
    let filter = filter_from(&query)?;
    let mut conn = state.pool.get().await?;
    let rows =
        db::list_messages(&mut conn, user.tenant_id, &filter, page.before, page.limit).await?;
    let (rows, page) = page.finish(rows, |m| m.id);
    let mut views: Vec<MessageView> = rows.into_iter().map(MessageView::from).collect();
    super::with_chains(&mut conn, user.tenant_id, &mut views).await?;
    Ok(ApiResponse::list(views, page))
}

/// One message.
#[utoipa::path(
    tag = "messages",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Message id (msg_…)")),
    responses(
        (status = 200, description = "The message", body = crate::routes::messages::MessageEnvelope),
        (status = 404, description = "No such message for this tenant", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/messages/{id}")]
pub async fn get_message(
    user: AuthUser,
    state: web::Data<AppState>,
    id: PathId<MessagePrefix>,
) -> ApiResult<ApiResponse<MessageView>> {
    user.require(Permission::Read)?;
    let mut conn = state.pool.get().await?;
    let message = db::get_message(&mut conn, user.tenant_id, id.uuid())
        .await?
        .ok_or_else(|| ApiError::not_found("message"))?;
    let mut view = MessageView::from(message);
    super::with_chains(&mut conn, user.tenant_id, std::slice::from_mut(&mut view)).await?;
    Ok(ApiResponse::ok(view))
}

/// The delivery attempts of a message, in order.
#[utoipa::path(
    tag = "messages",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Message id (msg_…)")),
    responses(
        (status = 200, description = "Attempts", body = crate::routes::messages::AttemptListEnvelope),
        (status = 404, description = "No such message for this tenant", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/messages/{id}/attempts")]
pub async fn list_attempts(
    user: AuthUser,
    state: web::Data<AppState>,
    id: PathId<MessagePrefix>,
) -> ApiResult<ApiResponse<Vec<AttemptView>>> {
    user.require(Permission::Read)?;
    let mut conn = state.pool.get().await?;
    if db::get_message(&mut conn, user.tenant_id, id.uuid())
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("message"));
    }
    let attempts = db::list_attempts(&mut conn, user.tenant_id, id.uuid()).await?;
    Ok(ApiResponse::ok(
        attempts.into_iter().map(AttemptView::from).collect(),
    ))
}

/// Cancel a message that has not been dispatched (SCHEDULED or QUEUED). On a message of a
/// fallback chain it also cancels what is left of the chain: its steps not started yet, and
/// its other messages not yet dispatched; a chain step already sent answers 200 as long as
/// something of its chain was left to cancel.
#[utoipa::path(
    tag = "messages",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Message id (msg_…)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 hours"),
    ),
    responses(
        (status = 200, description = "Cancelled", body = crate::routes::messages::MessageEnvelope),
        (status = 404, description = "No such message for this tenant", body = crate::http::envelope::ErrorEnvelope),
        (status = 409, description = "ERR_CPAAS_INVALID_STATE: already dispatched or finished (and nothing of its chain left)", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[post("/cpaas/v1/messages/{id}/cancel")]
pub async fn cancel_message(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    id: PathId<MessagePrefix>,
) -> ApiResult<Reply> {
    user.require(Permission::Send)?;
    let meta = Meta::of(&req);
    let tenant = user.tenant_id;
    idempotency
        .run(&state.pool, tenant, &meta, async |conn| {
            let message = db::lock_message(conn, tenant, id.uuid())
                .await?
                .ok_or_else(|| ApiError::not_found("message"))?;
            let status = message.status;
            let rest = match message.chain_id {
                Some(chain) => {
                    crate::messages::chain::cancel_rest(conn, tenant, chain, message.id).await?
                }
                None => 0,
            };
            let message = if status.can_move_to(MessageStatus::Cancelled) {
                let cancelled = db::mark_cancelled(conn, id.uuid()).await?;
                crate::outbox::enqueue(conn, &[crate::messages::events::cancelled(&cancelled)])
                    .await?;
                cancelled
            } else if rest > 0 {
                message
            } else {
                return Err(ApiError::new(
                    ErrorCode::InvalidState,
                    format!("a {status} message cannot be cancelled"),
                ));
            };
            let mut view = MessageView::from(message);
            super::with_chains(conn, tenant, std::slice::from_mut(&mut view)).await?;
            Ok(Answer::ok(view))
        })
        .await
}
