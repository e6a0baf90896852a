//! Small helpers the fake provider endpoints share: realistic ids and request parsing.

use std::collections::HashMap;

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use base64::Engine;
use serde_json::Value;

/// 32 lower-case hex digits (the tail of a Twilio sid).
pub fn hex32() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A form-encoded body as a map.
pub fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// A JSON body, or `Null`.
pub fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

/// A string at a JSON pointer.
pub fn text_at(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// A header as text.
pub fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Whether the request carries `Authorization: Bearer <something>`.
pub fn has_bearer(req: &HttpRequest) -> bool {
    header(req, "authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .is_some_and(|t| !t.trim().is_empty())
}

/// Whether the request carries `Authorization: Basic <something>`.
pub fn has_basic(req: &HttpRequest) -> bool {
    header(req, "authorization")
        .and_then(|a| a.strip_prefix("Basic "))
        .is_some_and(|t| !t.trim().is_empty())
}

/// Whether the request is signed with SigV4 (the signature itself is not checked).
pub fn has_sigv4(req: &HttpRequest) -> bool {
    header(req, "authorization").is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential="))
        && header(req, "x-amz-date").is_some()
}

/// A query parameter of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    parsed
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A WhatsApp message id shaped like Meta's: `wamid.` and base64 of the recipient and a
/// random tail.
pub fn wamid(to: &str) -> String {
    let digits: Vec<u8> = to.bytes().filter(u8::is_ascii_digit).collect();
    let mut raw = vec![0x1c, 0x18, u8::try_from(digits.len()).unwrap_or(0)];
    raw.extend_from_slice(&digits);
    raw.extend_from_slice(&[0x15, 0x02, 0x00, 0x11, 0x18, 0x12]);
    raw.extend_from_slice(format!("{:018X}", rand::random::<u128>() >> 56).as_bytes());
    raw.push(0);
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// A SendGrid `X-Message-Id`: 22 characters of URL-safe base64.
pub fn sendgrid_id() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<u128>().to_be_bytes())
}

/// An SES message id: `0100` + 12 hex digits of time, a UUID and `-000000`.
pub fn ses_id() -> String {
    let millis = chrono::Utc::now().timestamp_millis();
    format!("0100{millis:012x}-{}-000000", uuid::Uuid::new_v4())
}

/// An FCM message name in the project.
pub fn fcm_name(project: &str) -> String {
    let micros = chrono::Utc::now().timestamp_micros();
    format!(
        "projects/{project}/messages/0:{micros}%{:016x}",
        rand::random::<u64>()
    )
}

/// A status code from its number (400 for a number that is not one).
pub fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
}
