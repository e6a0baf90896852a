//! `/cpaas/v1/provider-callbacks`: where providers report deliveries, inbound messages and
//! template statuses. No token: each request must carry its provider's signature, checked
//! against the provider's stored credentials (see `crate::callbacks`).

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, Responder, guard, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::callbacks::{CallbackKind, RawCallback, Reply};
use crate::error::{ApiError, ApiResult};
use crate::http::envelope::ApiResponse;
use crate::state::AppState;

/// Largest accepted callback body (SendGrid batches events).
pub const CALLBACK_LIMIT_BYTES: usize = 2 * 1024 * 1024;

/// The empty TwiML document: Twilio sends no reply to the inbound message.
const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/cpaas/v1/provider-callbacks/meta-whatsapp/{provider_id}")
            .guard(guard::Get())
            .to(verify_meta_subscription),
    )
    .service(
        web::resource("/cpaas/v1/provider-callbacks/{kind}/{provider_id}")
            .guard(guard::Post())
            .app_data(web::PayloadConfig::new(CALLBACK_LIMIT_BYTES))
            .to(receive_callback),
    );
}

/// The answer to an accepted callback.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackAck {
    pub accepted: bool,
    /// The callback had been applied before; nothing changed now.
    pub duplicate: bool,
}

/// A provider's callback: a delivery receipt, an inbound message or a template status.
///
/// `{kind}` is `twilio`, `meta-whatsapp`, `sendgrid`, `vonage` or `aws-sns` (which also serves
/// AWS_SES providers, whose events SNS delivers); the provider must be of that kind. The raw
/// request is verified with the provider's own scheme: `X-Twilio-Signature` over
/// `PUBLIC_BASE_URL` + path + query and the sorted form parameters; `X-Hub-Signature-256`;
/// SendGrid's ECDSA signature over timestamp + body (at most five minutes old); Vonage's `sig`
/// (HMAC-SHA256 over the sorted parameters); the SNS message signature with the certificate
/// from an `sns.<region>.amazonaws.com` URL. The callback is stored raw, de-duplicated on the
/// provider's event identity, and applied through the forward-only status machine: a replay
/// answers 200 with `duplicate: true` and changes nothing. Inbound messages that are stop or
/// start words change the sender's opt-out; every inbound message emits `sms.inbound`.
/// Twilio inbound messages are answered with an empty TwiML `<Response/>` (`text/xml`) so that
/// Twilio sends no automatic reply.
#[utoipa::path(
    post,
    path = "/cpaas/v1/provider-callbacks/{kind}/{provider_id}",
    tag = "provider-callbacks",
    params(
        ("kind" = String, Path, description = "twilio, meta-whatsapp, sendgrid, vonage or aws-sns"),
        ("provider_id" = String, Path, description = "Provider id (prv_…)"),
    ),
    request_body(content = String, description = "The provider's payload, as it sends it (form, JSON or the SNS envelope)"),
    responses(
        (status = 200, description = "Accepted (also for a replay, with duplicate: true); Twilio inbound messages get `<Response/>` as text/xml", body = crate::routes::callbacks::CallbackAckEnvelope),
        (status = 400, description = "ERR_CPAAS_VALIDATION_FAILED: a signed body that cannot be read", body = crate::http::envelope::ErrorEnvelope),
        (status = 401, description = "ERR_CPAAS_INVALID_SIGNATURE: the signature is missing, wrong or too old", body = crate::http::envelope::ErrorEnvelope),
        (status = 404, description = "No provider of this kind has this id", body = crate::http::envelope::ErrorEnvelope),
        (status = 503, description = "An SNS certificate or subscription URL could not be reached; SNS retries", body = crate::http::envelope::ErrorEnvelope),
    )
)]
pub async fn receive_callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (kind, provider_id) = path.into_inner();
    let kind =
        CallbackKind::from_segment(&kind).ok_or_else(|| ApiError::not_found("callback kind"))?;
    let path_and_query = match req.uri().query() {
        Some(query) => format!("{}?{query}", req.uri().path()),
        None => req.uri().path().to_owned(),
    };
    let raw = RawCallback {
        path_and_query: &path_and_query,
        headers: req.headers(),
        body: &body,
    };
    let receipt = state
        .callbacks
        .receive(&state.pool, kind, &provider_id, &raw)
        .await?;
    Ok(match receipt.reply {
        Reply::Twiml => HttpResponse::Ok()
            .content_type("text/xml; charset=utf-8")
            .body(EMPTY_TWIML),
        Reply::Envelope => ApiResponse::ok(CallbackAck {
            accepted: true,
            duplicate: receipt.duplicate,
        })
        .respond_to(&req),
    })
}

/// Meta's webhook verification: answers `hub.challenge` as text/plain when `hub.mode` is
/// `subscribe` and `hub.verify_token` is the provider's `verify_token`; 403 otherwise.
#[utoipa::path(
    get,
    path = "/cpaas/v1/provider-callbacks/meta-whatsapp/{provider_id}",
    tag = "provider-callbacks",
    params(
        ("provider_id" = String, Path, description = "A META_WHATSAPP provider id (prv_…)"),
        ("hub.mode" = String, Query, description = "subscribe"),
        ("hub.verify_token" = String, Query, description = "The provider's verify_token"),
        ("hub.challenge" = String, Query, description = "Echoed back"),
    ),
    responses(
        (status = 200, description = "The challenge, as text/plain", body = String, content_type = "text/plain"),
        (status = 403, description = "ERR_CPAAS_FORBIDDEN: wrong mode or token", body = crate::http::envelope::ErrorEnvelope),
        (status = 404, description = "No META_WHATSAPP provider has this id", body = crate::http::envelope::ErrorEnvelope),
    )
)]
pub async fn verify_meta_subscription(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    match state
        .callbacks
        .meta_hub_challenge(&state.pool, &path, &query)
        .await?
    {
        Some(challenge) => Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(challenge)),
        None => Err(ApiError::forbidden(
            "hub.mode must be subscribe and hub.verify_token the provider's verify_token",
        )),
    }
}

crate::http::envelope::envelope_schema! {
    CallbackAckEnvelope => CallbackAck,
}
