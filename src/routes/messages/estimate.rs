//! `POST /cpaas/v1/messages/estimate`: what a send (or a bulk send) would do, writing nothing.

use actix_web::{post, web};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::send::{BULK_MAX, BulkRequest};
use crate::delivery::estimate::CandidateCache;
use crate::domain::ids::ProviderId;
use crate::domain::roles::Permission;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode, FieldError};
use crate::http::AuthUser;
use crate::http::envelope::ApiResponse;
use crate::messages::accept::{self, SendRequest, ValidSend};
use crate::state::AppState;

/// The estimate of one message.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageEstimate {
    pub index: usize,
    /// `ok`, or `rejected` when the send would be refused (see `error`).
    pub status: &'static str,
    pub channel: Option<String>,
    /// The recipient, normalised.
    pub recipient: Option<String>,
    /// The provider kind routing would pick now.
    pub provider: Option<String>,
    #[schema(value_type = Option<String>)]
    pub provider_id: Option<ProviderId>,
    /// SMS: `GSM-7` or `UCS-2` as that provider would get it (after its smart encoding).
    pub encoding: Option<String>,
    pub segments: Option<i32>,
    /// By the price table, for that provider and destination (a provider that reports its own
    /// price may charge otherwise).
    pub cost_usd: Option<f64>,
    /// The error the send would get.
    pub error: Option<ErrorBody>,
}

/// Answer of an estimate.
#[derive(Debug, Serialize, ToSchema)]
pub struct EstimateResponse {
    pub messages: Vec<MessageEstimate>,
    /// The sum of the messages' `cost_usd`.
    pub total_cost_usd: f64,
}

crate::http::envelope::envelope_schema! {
    EstimateEnvelope => EstimateResponse,
}

fn rejected(index: usize, error: &ApiError) -> MessageEstimate {
    MessageEstimate {
        index,
        status: "rejected",
        channel: None,
        recipient: None,
        provider: None,
        provider_id: None,
        encoding: None,
        segments: None,
        cost_usd: None,
        error: Some(error.body()),
    }
}

/// Estimate a send without making it: the body of `POST /cpaas/v1/messages` or of
/// `POST /cpaas/v1/messages/bulk`. Each message is checked as the send would check it
/// (validation, plan tier, templates, opt-outs, providers; the send limit is neither checked
/// nor counted) and answered with the provider routing would pick, an SMS's encoding and
/// segments, and its cost by the price table, or the error the send would get. Nothing is
/// written.
#[utoipa::path(
    tag = "messages",
    security(("bearer" = [])),
    request_body(content = Object, description = "A send (SendRequest) or a bulk send (BulkRequest)"),
    responses(
        (status = 200, description = "One estimate per message, in order", body = crate::routes::messages::EstimateEnvelope),
        (status = 400, description = "ERR_CPAAS_VALIDATION_FAILED (not a send), ERR_CPAAS_BULK_LIMIT_EXCEEDED", body = crate::http::envelope::ErrorEnvelope),
        (status = 403, description = "ERR_CPAAS_FORBIDDEN", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[post("/cpaas/v1/messages/estimate")]
pub async fn estimate_messages(
    user: AuthUser,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> ApiResult<ApiResponse<EstimateResponse>> {
    user.require(Permission::Send)?;
    let body = body.into_inner();
    let bulk = body.get("messages").is_some();
    let items: Vec<Value> = if bulk {
        let req: BulkRequest = serde_json::from_value(body)
            .map_err(|e| ApiError::validation(vec![FieldError::new("body", e.to_string())]))?;
        if req.messages.len() > BULK_MAX {
            return Err(ApiError::new(
                ErrorCode::BulkLimitExceeded,
                format!("a bulk request holds at most {BULK_MAX} messages"),
            ));
        }
        req.messages
    } else {
        vec![body]
    };
    let now = chrono::Utc::now();
    let sends: Vec<Result<ValidSend, ApiError>> = items
        .into_iter()
        .map(|item| {
            let send = serde_json::from_value::<SendRequest>(item)
                .map_err(|e| ApiError::validation(vec![FieldError::new("body", e.to_string())]))
                .and_then(|r| {
                    accept::validate_with(r, now, state.settings.media_allow_internal_hosts)
                })?;
            state.rate_limits.allows(user.plan_tier, send.channel())?;
            super::send::with_tier(&state, &user, send)
        })
        .collect();
    let mut conn = state.pool.get().await?;
    let previews = accept::preview(&mut conn, user.tenant_id, sends).await?;
    let delivery = &state.jobs.delivery;
    let mut cache = CandidateCache::new();
    let mut messages = Vec::with_capacity(previews.len());
    let mut total = 0i64;
    for (index, preview) in previews.into_iter().enumerate() {
        let message = match preview {
            Ok(m) => m,
            Err(e) => {
                messages.push(rejected(index, &e));
                continue;
            }
        };
        let estimate = delivery.estimate(&mut conn, &message, &mut cache).await?;
        let Some((provider_id, kind)) = estimate.provider else {
            let e = ApiError::new(
                ErrorCode::NoProviderConfigured,
                format!(
                    "no provider would take this {} message now",
                    message.channel
                ),
            );
            messages.push(rejected(index, &e));
            continue;
        };
        total += estimate.cost_usd_micros;
        messages.push(MessageEstimate {
            index,
            status: "ok",
            channel: Some(message.channel.to_string()),
            recipient: Some(message.recipient),
            provider: Some(kind),
            provider_id: Some(ProviderId::from_uuid(provider_id)),
            encoding: estimate.shape.map(|s| s.encoding.as_str().to_owned()),
            segments: estimate.shape.map(|s| s.segments),
            cost_usd: Some(estimate.cost_usd_micros as f64 / 1_000_000.0),
            error: None,
        });
    }
    Ok(ApiResponse::ok(EstimateResponse {
        messages,
        total_cost_usd: total as f64 / 1_000_000.0,
    }))
}
