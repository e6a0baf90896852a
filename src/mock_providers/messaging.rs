//! Fake Twilio (Messages and Calls) and Meta WhatsApp Cloud API endpoints.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::state::{Answer, MockKind, MockState, Seen};
use super::wire;

fn twilio_error(status: u16, code: u32, message: &str) -> HttpResponse {
    let mut response = HttpResponse::build(wire::status(status));
    if status == 429 {
        response.insert_header(("Retry-After", "1"));
    }
    response.json(json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    }))
}

/// Checks what every Twilio create call needs; the refusal when something is missing.
fn twilio_refusal(req: &HttpRequest, form: &HashMap<String, String>) -> Option<HttpResponse> {
    if !wire::has_basic(req) {
        return Some(twilio_error(401, 20003, "Authenticate"));
    }
    if !form.contains_key("To") {
        return Some(twilio_error(400, 21604, "A 'To' phone number is required."));
    }
    if !form.contains_key("From") && !form.contains_key("MessagingServiceSid") {
        return Some(twilio_error(
            400,
            21603,
            "A 'From' phone number or a 'MessagingServiceSid' is required.",
        ));
    }
    None
}

async fn twilio_create(
    state: web::Data<MockState>,
    req: HttpRequest,
    account_sid: String,
    body: web::Bytes,
    call: bool,
) -> HttpResponse {
    let form = wire::form(&body);
    // `MediaUrl` repeats, once per item of an MMS.
    let media: Vec<String> = url::form_urlencoded::parse(&body)
        .filter(|(k, _)| k == "MediaUrl")
        .map(|(_, v)| v.into_owned())
        .collect();
    let sid = format!("{}{}", if call { "CA" } else { "SM" }, wire::hex32());
    let seen = Seen {
        message_id: form
            .get("StatusCallback")
            .and_then(|u| wire::query_param(u, "message_id")),
        recipient: form.get("To").cloned(),
        provider_message_id: Some(sid.clone()),
        media: media.clone(),
    };
    if let Some(refusal) = twilio_refusal(&req, &form) {
        state.reject(MockKind::Twilio, req.path(), seen);
        return refusal;
    }
    let to = form.get("To").cloned().unwrap_or_default();
    match state.begin(MockKind::Twilio, req.path(), seen).await {
        Answer::Ok => {
            let now = chrono::Utc::now().to_rfc2822();
            let service = form.get("MessagingServiceSid");
            let resource = if call { "Calls" } else { "Messages" };
            let mut body = json!({
                "sid": sid,
                "account_sid": account_sid,
                "api_version": "2010-04-01",
                "date_created": now,
                "date_updated": now,
                "direction": "outbound-api",
                "from": form.get("From"),
                "to": to,
                "price": null,
                "price_unit": "USD",
                "status": if service.is_some() { "accepted" } else { "queued" },
                "uri": format!("/2010-04-01/Accounts/{account_sid}/{resource}/{sid}.json"),
            });
            if !call {
                body["body"] = json!(form.get("Body"));
                body["messaging_service_sid"] = json!(service);
                body["date_sent"] = Value::Null;
                body["error_code"] = Value::Null;
                body["error_message"] = Value::Null;
                body["num_media"] = json!(media.len().to_string());
                body["num_segments"] = json!("1");
            }
            HttpResponse::Created().json(body)
        }
        Answer::ClientError => twilio_error(
            400,
            21211,
            &format!("The 'To' number {to} is not a valid phone number."),
        ),
        Answer::ServerError => twilio_error(500, 20500, "An internal server error has occurred"),
        Answer::RateLimited => twilio_error(429, 20429, "Too Many Requests"),
    }
}

/// `POST /2010-04-01/Accounts/{sid}/Messages.json`.
pub async fn twilio_message(
    state: web::Data<MockState>,
    req: HttpRequest,
    account_sid: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    twilio_create(state, req, account_sid.into_inner(), body, false).await
}

/// `POST /2010-04-01/Accounts/{sid}/Calls.json`.
pub async fn twilio_call(
    state: web::Data<MockState>,
    req: HttpRequest,
    account_sid: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    twilio_create(state, req, account_sid.into_inner(), body, true).await
}

pub(super) fn graph_error(status: u16, code: u32, title: &str, details: &str) -> HttpResponse {
    HttpResponse::build(wire::status(status)).json(json!({"error": {
        "message": format!("(#{code}) {title}"),
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details},
        "fbtrace_id": format!("A{}", &wire::hex32()[..22]),
    }}))
}

/// `POST /{version}/{phone_number_id}/messages`.
pub async fn meta_messages(
    state: web::Data<MockState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let body = wire::json(&body);
    let to = wire::text_at(&body, "/to");
    let id = wire::wamid(to.as_deref().unwrap_or_default());
    let kind = body.get("type").and_then(Value::as_str).unwrap_or("text");
    let media_link = ["image", "video", "audio", "sticker", "document"]
        .contains(&kind)
        .then(|| wire::text_at(&body, &format!("/{kind}/link")));
    let seen = Seen {
        message_id: wire::text_at(&body, "/biz_opaque_callback_data"),
        recipient: to.clone(),
        provider_message_id: Some(id.clone()),
        media: media_link.clone().flatten().into_iter().collect(),
    };
    let refusal = if !wire::has_bearer(&req) {
        Some(graph_error(
            401,
            190,
            "Access token has expired",
            "Invalid OAuth access token - Cannot parse access token",
        ))
    } else if body.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        Some(graph_error(
            400,
            100,
            "Invalid parameter",
            "The parameter messaging_product is required.",
        ))
    } else if to.is_none() {
        Some(graph_error(
            400,
            100,
            "Invalid parameter",
            "The parameter to is required.",
        ))
    } else if media_link == Some(None) {
        Some(graph_error(
            400,
            100,
            "Invalid parameter",
            &format!("The parameter {kind}['link'] or {kind}['id'] is required."),
        ))
    } else {
        None
    };
    if let Some(refusal) = refusal {
        state.reject(MockKind::MetaWhatsapp, req.path(), seen);
        return refusal;
    }
    let to = to.unwrap_or_default();
    match state.begin(MockKind::MetaWhatsapp, req.path(), seen).await {
        Answer::Ok => {
            let mut message = json!({"id": id});
            if body.get("type").and_then(Value::as_str) == Some("template") {
                message["message_status"] = json!("accepted");
            }
            HttpResponse::Ok().json(json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [message],
            }))
        }
        Answer::ClientError => graph_error(
            400,
            131026,
            "Message undeliverable",
            "Unable to deliver message to this recipient.",
        ),
        Answer::ServerError => graph_error(
            503,
            2,
            "Service temporarily unavailable",
            "Temporary due to downtime or due to being overloaded.",
        ),
        // Graph reports throughput limits as 400s; the code says what happened.
        Answer::RateLimited => graph_error(
            400,
            130429,
            "Rate limit hit",
            "Cloud API message throughput has been reached.",
        ),
    }
}
