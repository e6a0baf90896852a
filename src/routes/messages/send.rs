//! `POST /cpaas/v1/messages` and `POST /cpaas/v1/messages/bulk`.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, post, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::MessageView;
use crate::domain::roles::Permission;
use crate::domain::{Channel, Priority};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode, FieldError};
use crate::http::AuthUser;
use crate::http::envelope::Meta;
use crate::http::idempotency::{Answer, Idempotency, Reply};
use crate::messages::accept::{self, SendRequest, ValidSend};
use crate::rate_limit::RateStatus;
use crate::state::AppState;

/// Most items in one bulk request.
pub const BULK_MAX: usize = 1000;

/// Body of `POST /cpaas/v1/messages/bulk`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// 1 to 1000 sends, each shaped like the body of `POST /cpaas/v1/messages`.
    #[schema(value_type = Vec<SendRequest>)]
    pub messages: Vec<Value>,
}

/// The outcome of one bulk item.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkItemResult {
    pub index: usize,
    /// `accepted` or `rejected`.
    pub status: &'static str,
    pub message_id: Option<String>,
    pub error: Option<ErrorBody>,
}

/// Answer of a bulk send.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResponse {
    pub accepted: usize,
    pub rejected: usize,
    pub results: Vec<BulkItemResult>,
}

/// How many valid sends there are of each channel.
fn per_channel(sends: &[Result<ValidSend, ApiError>]) -> BTreeMap<Channel, u32> {
    let mut counts: BTreeMap<Channel, u32> = BTreeMap::new();
    for send in sends.iter().flatten() {
        *counts.entry(send.channel()).or_default() += 1;
    }
    counts
}

/// Admits the valid sends against the tenant's per-channel limits, all or nothing. Runs on
/// its own, before the send's transaction.
async fn admit(
    state: &AppState,
    user: &AuthUser,
    conn: &mut diesel_async::AsyncPgConnection,
    per_channel: BTreeMap<Channel, u32>,
) -> ApiResult<Vec<RateStatus>> {
    for channel in per_channel.keys() {
        state.rate_limits.allows(user.plan_tier, *channel)?;
    }
    let mut statuses = Vec::with_capacity(per_channel.len());
    for (channel, n) in per_channel {
        statuses.push(
            state
                .rate_limits
                .check(conn, user.tenant_id, user.plan_tier, channel, n)
                .await?,
        );
    }
    Ok(statuses)
}

fn with_rate_headers<T>(answer: Answer<T>, statuses: &[RateStatus]) -> Answer<T> {
    match statuses.iter().min_by_key(|s| s.remaining) {
        Some(status) => answer.with_headers(&status.headers()),
        None => answer,
    }
}

/// Send one message. Accepted messages are delivered asynchronously.
#[utoipa::path(
    tag = "messages",
    security(("bearer" = [])),
    request_body = SendRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 hours")),
    responses(
        (status = 202, description = "Accepted (QUEUED, or SCHEDULED with scheduled_at)", body = crate::routes::messages::MessageEnvelope),
        (status = 400, description = "ERR_CPAAS_VALIDATION_FAILED, ERR_CPAAS_INVALID_PHONE_NUMBER, ERR_CPAAS_INVALID_EMAIL, ERR_CPAAS_INVALID_CHANNEL, ERR_CPAAS_EMPTY_MESSAGE_BODY, ERR_CPAAS_TEMPLATE_NOT_FOUND, ERR_CPAAS_TEMPLATE_VARIABLES_MISSING", body = crate::http::envelope::ErrorEnvelope),
        (status = 403, description = "ERR_CPAAS_FORBIDDEN or ERR_CPAAS_TIER_INSUFFICIENT", body = crate::http::envelope::ErrorEnvelope),
        (status = 409, description = "ERR_CPAAS_DUPLICATE_REQUEST: the same Idempotency-Key is in flight", body = crate::http::envelope::ErrorEnvelope),
        (status = 422, description = "ERR_CPAAS_RECIPIENT_OPTED_OUT, ERR_CPAAS_NO_PROVIDER_CONFIGURED, ERR_CPAAS_TEMPLATE_NOT_APPROVED, ERR_CPAAS_IDEMPOTENCY_KEY_REUSED", body = crate::http::envelope::ErrorEnvelope),
        (status = 429, description = "ERR_CPAAS_RATE_LIMIT_EXCEEDED, with Retry-After", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[post("/cpaas/v1/messages")]
pub async fn send_message(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    body: web::Json<SendRequest>,
) -> ApiResult<Reply> {
    user.require(Permission::Send)?;
    let send = accept::validate_with(
        body.into_inner(),
        chrono::Utc::now(),
        state.settings.media_allow_internal_hosts,
    )?;
    let send = with_tier(&state, &user, send)?;
    let meta = Meta::of(&req);
    let tenant = user.tenant_id;
    let urgent = send.is_urgent();
    let counts = BTreeMap::from([(send.channel(), 1)]);
    let chained = send.fallback_channels().next().is_some();
    let admit =
        async |conn: &mut diesel_async::AsyncPgConnection| admit(&state, &user, conn, counts).await;
    let work = async |conn: &mut diesel_async::AsyncPgConnection, limits: Vec<RateStatus>| {
        let message = accept::accept_one(conn, tenant, send).await??;
        let mut view = MessageView::from(message);
        if chained {
            super::with_chains(conn, tenant, std::slice::from_mut(&mut view)).await?;
        }
        Ok(with_rate_headers(
            Answer::accepted(view).urgent(urgent),
            &limits,
        ))
    };
    if chained {
        // The chain's steps are written beside the message: one transaction.
        idempotency
            .run_admitted(&state.pool, tenant, &meta, admit, work)
            .await
    } else {
        idempotency
            .run_admitted_atomic(&state.pool, tenant, &meta, admit, work)
            .await
    }
}

/// Checks the plan tier against the channels of the send's fallback steps (the send's own
/// channel is checked with its limit) and records it, for the steps' checks when they start.
pub(super) fn with_tier(
    state: &AppState,
    user: &AuthUser,
    send: ValidSend,
) -> ApiResult<ValidSend> {
    for (i, channel) in send.fallback_channels().enumerate() {
        state
            .rate_limits
            .allows(user.plan_tier, channel)
            .map_err(|e| crate::messages::fallback::in_step(i, e))?;
    }
    Ok(send.with_plan_tier(user.plan_tier))
}

/// Send up to 1000 messages. Every item is validated; the valid ones are accepted together
/// and the answer gives each item's result. The rate limit counts every valid item.
#[utoipa::path(
    tag = "messages",
    security(("bearer" = [])),
    request_body = BulkRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 hours")),
    responses(
        (status = 202, description = "Per-item results", body = crate::routes::messages::BulkEnvelope),
        (status = 400, description = "ERR_CPAAS_BULK_LIMIT_EXCEEDED (more than 1000) or ERR_CPAAS_VALIDATION_FAILED (none)", body = crate::http::envelope::ErrorEnvelope),
        (status = 429, description = "ERR_CPAAS_RATE_LIMIT_EXCEEDED, with Retry-After", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[post("/cpaas/v1/messages/bulk")]
pub async fn send_bulk(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    idempotency: Idempotency,
    body: web::Json<BulkRequest>,
) -> ApiResult<Reply> {
    user.require(Permission::Send)?;
    let items = body.into_inner().messages;
    if items.len() > BULK_MAX {
        return Err(ApiError::new(
            ErrorCode::BulkLimitExceeded,
            format!(
                "a bulk request holds at most {BULK_MAX} messages, this one has {}",
                items.len()
            ),
        ));
    }
    if items.is_empty() {
        return Err(ApiError::invalid_field(
            "messages",
            "must hold at least one message",
        ));
    }
    let now = chrono::Utc::now();
    let sends: Vec<Result<ValidSend, ApiError>> = items
        .into_iter()
        .map(|item| {
            serde_json::from_value::<SendRequest>(item)
                .map_err(|e| ApiError::validation(vec![FieldError::new("body", e.to_string())]))
                .and_then(|r| {
                    accept::validate_with(r, now, state.settings.media_allow_internal_hosts)
                })
                .and_then(|send| with_tier(&state, &user, send))
                .map(|send| send.with_default_priority(Priority::Bulk))
        })
        .collect();
    let meta = Meta::of(&req);
    let tenant = user.tenant_id;
    let counts = per_channel(&sends);
    let urgent = sends.iter().flatten().any(ValidSend::is_urgent);
    idempotency
        .run_admitted(
            &state.pool,
            tenant,
            &meta,
            async |conn| admit(&state, &user, conn, counts).await,
            async |conn, limits| {
                let results = accept::accept(conn, tenant, sends).await?;
                let results: Vec<BulkItemResult> = results
                    .into_iter()
                    .enumerate()
                    .map(|(index, r)| match r {
                        Ok(m) => BulkItemResult {
                            index,
                            status: "accepted",
                            message_id: Some(
                                crate::domain::ids::MessageId::from_uuid(m.id).to_string(),
                            ),
                            error: None,
                        },
                        Err(e) => BulkItemResult {
                            index,
                            status: "rejected",
                            message_id: None,
                            error: Some(e.body()),
                        },
                    })
                    .collect();
                let accepted = results.iter().filter(|r| r.error.is_none()).count();
                let answer = BulkResponse {
                    accepted,
                    rejected: results.len() - accepted,
                    results,
                };
                Ok(with_rate_headers(
                    Answer::accepted(answer).urgent(urgent),
                    &limits,
                ))
            },
        )
        .await
}
