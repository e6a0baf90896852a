//! SendGrid's signed Event Webhook.
//!
//! Signature: `X-Twilio-Email-Event-Webhook-Signature` is a base64 DER ECDSA signature
//! (P-256, SHA-256) over `X-Twilio-Email-Event-Webhook-Timestamp` ‖ the raw body, checked with
//! the provider's `webhook_public_key` (base64 DER SubjectPublicKeyInfo, as SendGrid's
//! settings show it; PEM armour is tolerated). A timestamp more than five minutes away from now
//! is refused, so a captured request cannot be replayed later.
//!
//! The body is a JSON array of events, each identified by `sg_event_id`. Our message id is the
//! top-level `message_id` custom arg; else `sg_message_id` up to `.filter…` is the
//! `X-Message-Id` stored at send time.
//! - `delivered` → DELIVERED; `open` and `click` → READ;
//! - `bounce` with `type` `bounce` (or none) → UNDELIVERED and an EMAIL opt-out of source
//!   BOUNCE; `type` `blocked` → UNDELIVERED only (a block is the receiving server's policy,
//!   not a dead address); error code = the SMTP `status`, message = `reason`;
//! - `dropped` → FAILED;
//! - `spamreport` → an EMAIL opt-out of source COMPLAINT; `unsubscribe` → one of source
//!   PROVIDER;
//! - `processed`, `deferred` and the group events change nothing.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::signing::{base64_decode, json_body, sha256_hex, unix_time};
use super::{
    Action, CallbackError, Event, MessageRef, OptOutReport, Parsed, RawCallback, Source,
    StatusChange, bad_signature,
};
use crate::domain::Channel;
use crate::domain::MessageStatus;
use crate::domain::ids::MessageId;
use crate::domain::opt_out::OptOutSource;

pub const SIGNATURE_HEADER: &str = "x-twilio-email-event-webhook-signature";
pub const TIMESTAMP_HEADER: &str = "x-twilio-email-event-webhook-timestamp";
/// How far the signed timestamp may be from now.
pub const TOLERANCE_SECS: i64 = 300;

/// Reads the stored public key: base64 DER, with or without PEM armour.
fn public_key(stored: &str) -> Option<Vec<u8>> {
    let body: String = stored
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64_decode(&body)
}

/// Checks a signature of `timestamp ‖ body`.
pub fn verify(public_key_b64: &str, timestamp: &str, body: &[u8], signature_b64: &str) -> bool {
    let (Some(key), Some(signature)) = (public_key(public_key_b64), base64_decode(signature_b64))
    else {
        return false;
    };
    let mut signed = timestamp.as_bytes().to_vec();
    signed.extend_from_slice(body);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key)
        .verify(&signed, &signature)
        .is_ok()
}

/// Checks the signature and its age, and reads the events.
pub fn parse(
    source: &Source,
    raw: &RawCallback<'_>,
    now: DateTime<Utc>,
) -> Result<Parsed, CallbackError> {
    let key = source
        .settings
        .credential_str("webhook_public_key")
        .ok_or_else(|| {
            bad_signature("the provider has no webhook_public_key to check signed events")
        })?;
    let (Some(signature), Some(timestamp)) =
        (raw.header(SIGNATURE_HEADER), raw.header(TIMESTAMP_HEADER))
    else {
        return Err(bad_signature(
            "the Event Webhook signature or timestamp header is missing",
        ));
    };
    let sent_at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| bad_signature("the Event Webhook timestamp is not a unix time"))?;
    if (now.timestamp() - sent_at).abs() > TOLERANCE_SECS {
        return Err(bad_signature(
            "the Event Webhook timestamp is more than five minutes from now",
        ));
    }
    if !verify(key, timestamp, raw.body, signature) {
        return Err(bad_signature("the Event Webhook signature does not match"));
    }
    let body = json_body(raw.body)?;
    let items = body
        .as_array()
        .ok_or_else(|| CallbackError::Invalid("the body is not a JSON array of events".into()))?;
    Ok(Parsed {
        dedupe_key: format!("body:{}", sha256_hex(raw.body)),
        events: items.iter().filter_map(event).collect(),
        ..Default::default()
    })
}

fn text(value: &Value, key: &str) -> Option<String> {
    match value.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn event(item: &Value) -> Option<Event> {
    let kind = text(item, "event")?.to_ascii_lowercase();
    let sg_message_id = text(item, "sg_message_id");
    let key = text(item, "sg_event_id").unwrap_or_else(|| {
        format!(
            "{}:{kind}:{}",
            sg_message_id.clone().unwrap_or_default(),
            text(item, "timestamp").unwrap_or_default()
        )
    });
    let email = text(item, "email");
    let reason = text(item, "reason").or_else(|| text(item, "response"));
    let opt_out = |source: OptOutSource, why: &str| OptOutReport {
        recipient: email.clone(),
        channel: Channel::Email,
        source,
        reason: reason.clone().unwrap_or_else(|| why.to_owned()),
    };
    let mut change = StatusChange {
        at: item.get("timestamp").and_then(unix_time),
        ..Default::default()
    };
    let mut opt_outs = Vec::new();
    match kind.as_str() {
        "delivered" => change.status = Some(MessageStatus::Delivered),
        "open" | "click" => change.status = Some(MessageStatus::Read),
        "bounce" => {
            change.status = Some(MessageStatus::Undelivered);
            let blocked = text(item, "type").as_deref() == Some("blocked");
            change.error_code = Some(
                text(item, "status")
                    .unwrap_or_else(|| if blocked { "blocked" } else { "bounce" }.to_owned()),
            );
            change.error_message = reason.clone();
            if !blocked {
                opt_outs.push(opt_out(OptOutSource::Bounce, "the address bounced"));
            }
        }
        "dropped" => {
            change.status = Some(MessageStatus::Failed);
            change.error_code = Some("dropped".into());
            change.error_message = reason.clone();
        }
        "spamreport" => opt_outs.push(opt_out(
            OptOutSource::Complaint,
            "the recipient reported the e-mail as spam",
        )),
        "unsubscribe" => opt_outs.push(opt_out(
            OptOutSource::Provider,
            "the recipient unsubscribed at SendGrid",
        )),
        _ => return None,
    }
    let message_id = item
        .get("message_id")
        .and_then(Value::as_str)
        .and_then(MessageId::parse)
        .map(|m| m.uuid());
    let provider_message_id = sg_message_id.map(|id| match id.find(".filter") {
        Some(i) => id[..i].to_owned(),
        None => id,
    });
    Some(Event {
        key,
        action: Action::Message {
            message: MessageRef {
                message_id,
                provider_message_id,
            },
            change,
            opt_outs,
        },
    })
}
