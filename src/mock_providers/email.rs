//! Fake SendGrid `v3/mail/send` and SES v2 `outbound-emails` endpoints.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::state::{Answer, MockKind, MockState, Seen};
use super::wire;

/// The file names of a request's attachments.
fn names(attachments: Option<&Vec<Value>>, key: &str) -> Vec<String> {
    attachments
        .into_iter()
        .flatten()
        .filter_map(|a| a.get(key).and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// Whether an attachment carries base64 content and a file name, as the real APIs require.
fn attachment_ok(attachment: &Value, content: &str, filename: &str) -> bool {
    use base64::Engine;
    let decodes = attachment
        .get(content)
        .and_then(Value::as_str)
        .is_some_and(|c| base64::engine::general_purpose::STANDARD.decode(c).is_ok());
    decodes
        && attachment
            .get(filename)
            .and_then(Value::as_str)
            .is_some_and(|f| !f.is_empty())
}

fn sendgrid_error(status: u16, message: &str, field: Option<&str>) -> HttpResponse {
    HttpResponse::build(wire::status(status))
        .json(json!({"errors": [{"message": message, "field": field, "help": null}]}))
}

/// `POST /v3/mail/send`.
pub async fn sendgrid(
    state: web::Data<MockState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let body = wire::json(&body);
    let id = wire::sendgrid_id();
    let to = wire::text_at(&body, "/personalizations/0/to/0/email");
    let attachments = body.get("attachments").and_then(Value::as_array);
    let seen = Seen {
        message_id: wire::text_at(&body, "/personalizations/0/custom_args/message_id"),
        recipient: to.clone(),
        provider_message_id: Some(id.clone()),
        media: names(attachments, "filename"),
    };
    let bad_attachment = attachments
        .is_some_and(|list| !list.iter().all(|a| attachment_ok(a, "content", "filename")));
    let refusal = if !wire::has_bearer(&req) {
        Some(sendgrid_error(
            401,
            "The provided authorization grant is invalid, expired, or revoked",
            None,
        ))
    } else if to.is_none() {
        Some(sendgrid_error(
            400,
            "The to array is required for all personalization objects, and must have at least one email object with a valid email address.",
            Some("personalizations.0.to"),
        ))
    } else if wire::text_at(&body, "/from/email").is_none() {
        Some(sendgrid_error(
            400,
            "The from object must be provided for every email send.",
            Some("from"),
        ))
    } else if bad_attachment {
        Some(sendgrid_error(
            400,
            "The attachment content must be base64 encoded, with a filename.",
            Some("attachments"),
        ))
    } else {
        None
    };
    if let Some(refusal) = refusal {
        state.reject(MockKind::Sendgrid, req.path(), seen);
        return refusal;
    }
    match state.begin(MockKind::Sendgrid, req.path(), seen).await {
        Answer::Ok => HttpResponse::Accepted()
            .insert_header(("X-Message-Id", id))
            .finish(),
        Answer::ClientError => sendgrid_error(
            400,
            "Does not contain a valid address.",
            Some("personalizations.0.to.0.email"),
        ),
        Answer::ServerError => sendgrid_error(503, "Service Unavailable", None),
        Answer::RateLimited => {
            let reset = chrono::Utc::now().timestamp() + 1;
            HttpResponse::TooManyRequests()
                .insert_header(("X-RateLimit-Limit", "600"))
                .insert_header(("X-RateLimit-Remaining", "0"))
                .insert_header(("X-RateLimit-Reset", reset.to_string()))
                .json(json!({"errors": [{"message": "too many requests", "field": null, "help": null}]}))
        }
    }
}

fn ses_error(status: u16, kind: &str, message: &str) -> HttpResponse {
    HttpResponse::build(wire::status(status))
        .insert_header(("x-amzn-ErrorType", kind))
        .insert_header(("x-amzn-RequestId", uuid::Uuid::new_v4().to_string()))
        .json(json!({"message": message}))
}

/// The value of an `EmailTags` entry.
fn tag(body: &Value, name: &str) -> Option<String> {
    body.get("EmailTags")?
        .as_array()?
        .iter()
        .find(|t| t.get("Name").and_then(Value::as_str) == Some(name))
        .and_then(|t| t.get("Value").and_then(Value::as_str))
        .map(str::to_owned)
}

/// `POST /v2/email/outbound-emails`.
pub async fn ses(state: web::Data<MockState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let body = wire::json(&body);
    let id = wire::ses_id();
    let to = wire::text_at(&body, "/Destination/ToAddresses/0");
    let attachments = body
        .pointer("/Content/Simple/Attachments")
        .and_then(Value::as_array);
    let seen = Seen {
        message_id: tag(&body, "message_id"),
        recipient: to.clone(),
        provider_message_id: Some(id.clone()),
        media: names(attachments, "FileName"),
    };
    let bad_attachment = attachments.is_some_and(|list| {
        !list
            .iter()
            .all(|a| attachment_ok(a, "RawContent", "FileName"))
    });
    let refusal = if !wire::has_sigv4(&req) {
        Some(ses_error(
            403,
            "IncompleteSignatureException",
            "Request is missing a valid AWS Signature Version 4 Authorization header",
        ))
    } else if to.is_none() || wire::text_at(&body, "/FromEmailAddress").is_none() {
        Some(ses_error(
            400,
            "BadRequestException",
            "FromEmailAddress and Destination.ToAddresses are required",
        ))
    } else if bad_attachment {
        Some(ses_error(
            400,
            "BadRequestException",
            "Attachments need a base64 RawContent and a FileName",
        ))
    } else {
        None
    };
    if let Some(refusal) = refusal {
        state.reject(MockKind::AwsSes, req.path(), seen);
        return refusal;
    }
    match state.begin(MockKind::AwsSes, req.path(), seen).await {
        Answer::Ok => HttpResponse::Ok().json(json!({"MessageId": id})),
        Answer::ClientError => ses_error(
            400,
            "MessageRejected",
            "Email address is not verified. The following identities failed the check.",
        ),
        Answer::ServerError => ses_error(500, "InternalFailure", "Internal service error"),
        Answer::RateLimited => ses_error(429, "TooManyRequestsException", "Too Many Requests"),
    }
}
