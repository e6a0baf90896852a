//! Meta WhatsApp Cloud API webhooks.
//!
//! - Handshake: `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…` answers the
//!   challenge when the token is the provider's `verify_token` (compared in constant time).
//! - Signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app_secret, raw body)>`.
//! - Body `{object: "whatsapp_business_account", entry: [{id, changes: [{field, value}]}]}`.
//!   Changes for another phone number (`value.metadata.phone_number_id`) or another business
//!   account (`entry.id` on template updates) than the provider's are skipped: one Meta app
//!   may post every number's events to the same URL.
//!   - `value.statuses[]`: `id` (wamid), `status` sent → SENT, delivered → DELIVERED, read and
//!     played → READ, failed → FAILED with `errors[0].code` (131026, undeliverable, →
//!     UNDELIVERED); `biz_opaque_callback_data` carries our message id; identity (`id`,
//!     `status`).
//!   - `value.messages[]`: inbound messages; text, button and interactive replies give the
//!     body checked for stop words; identity (`inbound`, `id`).
//!   - `field: "message_template_status_update"`: `event`, `message_template_name`,
//!     `message_template_language`; identity (template, language, event, `entry.time`).
//! - The request's own identity is the SHA-256 of its body (Meta redelivers the same bytes).

use std::collections::HashMap;

use serde_json::Value;
use subtle::ConstantTimeEq;

use super::signing::{hmac_sha256_matches, json_body, sha256_hex, unix_time};
use super::{
    Action, CallbackError, Event, InboundMessage, MessageRef, Parsed, RawCallback, Source,
    StatusChange, TemplateStatusUpdate, bad_signature, templates,
};
use crate::domain::Channel;
use crate::domain::MessageStatus;
use crate::domain::ids::MessageId;

pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// The challenge to echo, when the handshake's token is right.
pub fn hub_challenge(source: &Source, params: &HashMap<String, String>) -> Option<String> {
    let expected = source.settings.credential_str("verify_token")?;
    let given = params.get("hub.verify_token")?;
    let mode_ok = params.get("hub.mode").map(String::as_str) == Some("subscribe");
    let token_ok: bool = given.as_bytes().ct_eq(expected.as_bytes()).into();
    (mode_ok && token_ok)
        .then(|| params.get("hub.challenge").cloned())
        .flatten()
}

/// Checks the signature and reads the notification.
pub fn parse(source: &Source, raw: &RawCallback<'_>) -> Result<Parsed, CallbackError> {
    let secret = source
        .settings
        .credential_str("app_secret")
        .ok_or_else(|| bad_signature("the provider has no app_secret to check signatures"))?;
    let given = raw
        .header(SIGNATURE_HEADER)
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| bad_signature("X-Hub-Signature-256 is missing or malformed"))?;
    if !hmac_sha256_matches(secret.as_bytes(), raw.body, &given) {
        return Err(bad_signature("X-Hub-Signature-256 does not match"));
    }
    let body = json_body(raw.body)?;
    let phone_number_id = source.settings.config_str("phone_number_id");
    let waba_id = source.settings.config_str("waba_id");
    let mut events = Vec::new();
    for entry in array(&body, "entry") {
        let entry_id = text(entry, "id");
        for change in array(entry, "changes") {
            let value = change.get("value").unwrap_or(&Value::Null);
            match change.get("field").and_then(Value::as_str) {
                Some("message_template_status_update") => {
                    if entry_id.is_some() && waba_id.is_some() && entry_id.as_deref() != waba_id {
                        continue;
                    }
                    events.extend(template_event(entry, value));
                }
                _ => {
                    let number = value
                        .pointer("/metadata/phone_number_id")
                        .and_then(Value::as_str);
                    if number.is_some() && phone_number_id.is_some() && number != phone_number_id {
                        continue;
                    }
                    events.extend(array(value, "statuses").filter_map(status_event));
                    let to = value
                        .pointer("/metadata/display_phone_number")
                        .and_then(Value::as_str)
                        .map(plus)
                        .unwrap_or_default();
                    events.extend(
                        array(value, "messages").filter_map(|m| inbound_event(m, to.clone())),
                    );
                }
            }
        }
    }
    Ok(Parsed {
        dedupe_key: format!("body:{}", sha256_hex(raw.body)),
        events,
        ..Default::default()
    })
}

fn array<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
}

fn text(value: &Value, key: &str) -> Option<String> {
    match value.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// WhatsApp ids are digits without the `+`.
fn plus(number: &str) -> String {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    format!("+{digits}")
}

fn status_event(status: &Value) -> Option<Event> {
    let id = text(status, "id")?;
    let reported = text(status, "status")?.to_ascii_lowercase();
    let error = status.pointer("/errors/0");
    let error_code = error.and_then(|e| text(e, "code"));
    let target = match reported.as_str() {
        "sent" => Some(MessageStatus::Sent),
        "delivered" => Some(MessageStatus::Delivered),
        "read" | "played" => Some(MessageStatus::Read),
        "failed" if error_code.as_deref() == Some("131026") => Some(MessageStatus::Undelivered),
        "failed" => Some(MessageStatus::Failed),
        _ => None,
    };
    let error_message = error.and_then(|e| {
        let title = text(e, "title").or_else(|| text(e, "message"));
        let details = e
            .pointer("/error_data/details")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match (title, details) {
            (Some(t), Some(d)) if !t.contains(&d) => Some(format!("{t}: {d}")),
            (Some(t), _) => Some(t),
            (None, d) => d,
        }
    });
    Some(Event {
        key: format!("{id}:{reported}"),
        action: Action::Message {
            message: MessageRef {
                message_id: status
                    .get("biz_opaque_callback_data")
                    .and_then(Value::as_str)
                    .and_then(MessageId::parse)
                    .map(|m| m.uuid()),
                provider_message_id: Some(id),
            },
            change: StatusChange {
                status: target,
                error_code,
                error_message,
                at: status.get("timestamp").and_then(unix_time),
                ..Default::default()
            },
            opt_outs: Vec::new(),
        },
    })
}

fn inbound_event(message: &Value, to: String) -> Option<Event> {
    let id = text(message, "id")?;
    let from = text(message, "from")?;
    let body = message
        .pointer("/text/body")
        .or_else(|| message.pointer("/button/text"))
        .or_else(|| message.pointer("/interactive/button_reply/title"))
        .or_else(|| message.pointer("/interactive/list_reply/title"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Some(Event {
        key: format!("inbound:{id}"),
        action: Action::Inbound(InboundMessage {
            channel: Channel::Whatsapp,
            from: plus(&from),
            to,
            body,
            provider_message_id: id,
            received_at: message
                .get("timestamp")
                .and_then(unix_time)
                .unwrap_or_else(chrono::Utc::now),
        }),
    })
}

fn template_event(entry: &Value, value: &Value) -> Option<Event> {
    let event = text(value, "event")?;
    let status = templates::status_for_event(&event)?;
    let name = text(value, "message_template_name")?;
    let language = text(value, "message_template_language")?;
    let time = text(entry, "time").unwrap_or_else(|| "-".into());
    Some(Event {
        key: format!("template:{name}:{language}:{event}:{time}"),
        action: Action::TemplateStatus(TemplateStatusUpdate {
            name,
            language,
            status,
            reason: text(value, "reason"),
        }),
    })
}
