//! Vonage SMS API: signed delivery receipts and inbound messages.
//!
//! Accepted as a form body (`POST`) or a JSON object (`POST-JSON`); JSON numbers count as
//! their text. Signature, as Vonage's "Signing messages" guide and its server SDKs compute it,
//! with the dashboard's "SHA-256 HMAC" method:
//! 1. take every parameter except `sig` (this includes `timestamp` and `nonce`);
//! 2. in each value replace `&` and `=` with `_`;
//! 3. sort by name and join as `&name=value&name=value…` (note the leading `&`);
//! 4. `sig` = hex HMAC-SHA256(signature_secret, that string), compared without regard to
//!    case (Vonage sends it upper-case).
//!
//! The MD5-hash and other HMAC methods Vonage offers are not accepted. `timestamp` is required
//! but not bounded: Vonage retries unacknowledged receipts, and replays are caught by the
//! event identity anyway.
//!
//! - Receipt (`status` present): delivered → DELIVERED; accepted and buffered → SENT;
//!   rejected → FAILED; failed, expired and unknown → UNDELIVERED, with `err-code` (0 is no
//!   error); `price` is the cost. Identity (`messageId`, `status`); our id is `client-ref`.
//!   Each part of a long message has its own receipt: any part's receipt names the message
//!   through `client-ref`.
//! - Inbound (`msisdn` and `text`, no `status`): identity (`inbound`, `messageId`).

use serde_json::Value;

use super::signing::{hmac_sha256, hmac_sha256_matches};
use super::{
    Action, CallbackError, Event, InboundMessage, MessageRef, Parsed, RawCallback, Source,
    StatusChange, bad_signature,
};
use crate::domain::Channel;
use crate::domain::MessageStatus;
use crate::domain::ids::MessageId;
use crate::providers::http::price_micros;

/// The string Vonage signs.
pub fn signed_string(params: &[(String, String)]) -> String {
    let mut sorted: Vec<(&str, String)> = params
        .iter()
        .filter(|(k, _)| k != "sig")
        .map(|(k, v)| (k.as_str(), v.replace(['&', '='], "_")))
        .collect();
    sorted.sort();
    sorted
        .iter()
        .map(|(k, v)| format!("&{k}={v}"))
        .collect::<String>()
}

/// The `sig` Vonage sends for `params`, upper-case hex.
pub fn signature(secret: &str, params: &[(String, String)]) -> String {
    hex::encode_upper(hmac_sha256(
        secret.as_bytes(),
        signed_string(params).as_bytes(),
    ))
}

/// The parameters of a form or JSON body.
fn params(raw: &RawCallback<'_>) -> Result<Vec<(String, String)>, CallbackError> {
    let json = raw
        .header("content-type")
        .is_some_and(|c| c.contains("json"))
        || raw.body.trim_ascii_start().starts_with(b"{");
    if !json {
        return Ok(url::form_urlencoded::parse(raw.body).into_owned().collect());
    }
    let value: Value = serde_json::from_slice(raw.body)
        .map_err(|e| CallbackError::Invalid(format!("the body is not JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| CallbackError::Invalid("the body is not a JSON object".into()))?;
    Ok(object
        .iter()
        .filter_map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((k.clone(), text))
        })
        .collect())
}

/// Checks the signature and reads the receipt or inbound message.
pub fn parse(source: &Source, raw: &RawCallback<'_>) -> Result<Parsed, CallbackError> {
    let secret = source
        .settings
        .credential_str("signature_secret")
        .ok_or_else(|| bad_signature("the provider has no signature_secret"))?;
    let params = params(raw)?;
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let given = get("sig")
        .and_then(|s| hex::decode(s.to_ascii_lowercase()).ok())
        .ok_or_else(|| bad_signature("the sig parameter is missing or not hex"))?;
    if get("timestamp").is_none() {
        return Err(bad_signature("the timestamp parameter is missing"));
    }
    if !hmac_sha256_matches(secret.as_bytes(), signed_string(&params).as_bytes(), &given) {
        return Err(bad_signature("sig does not match"));
    }
    let id = get("messageId")
        .or_else(|| get("message-id"))
        .ok_or_else(|| CallbackError::Invalid("messageId is missing".into()))?;
    let Some(status) = get("status").map(|s| s.to_ascii_lowercase()) else {
        let key = format!("inbound:{id}");
        return Ok(Parsed {
            dedupe_key: key.clone(),
            events: vec![Event {
                key,
                action: Action::Inbound(InboundMessage {
                    channel: Channel::Sms,
                    from: get("msisdn").map(|m| plus(&m)).unwrap_or_default(),
                    to: get("to").map(|m| plus(&m)).unwrap_or_default(),
                    body: params
                        .iter()
                        .find(|(k, _)| k == "text")
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default(),
                    provider_message_id: id,
                    received_at: chrono::Utc::now(),
                }),
            }],
            ..Default::default()
        });
    };
    let target = status_for(&status);
    let error_code = get("err-code").filter(|c| c != "0");
    let failure = matches!(
        target,
        Some(MessageStatus::Failed | MessageStatus::Undelivered)
    );
    let key = format!("{id}:{status}");
    Ok(Parsed {
        dedupe_key: key.clone(),
        events: vec![Event {
            key,
            action: Action::Message {
                message: MessageRef {
                    message_id: get("client-ref")
                        .and_then(|r| MessageId::parse(&r))
                        .map(|m| m.uuid()),
                    provider_message_id: Some(id),
                },
                change: StatusChange {
                    status: target,
                    error_message: failure.then(|| {
                        format!(
                            "Vonage reported the message {status} (err-code {})",
                            error_code.as_deref().unwrap_or("0")
                        )
                    }),
                    error_code: error_code.filter(|_| failure),
                    price: get("price")
                        .as_deref()
                        .and_then(price_micros)
                        .map(|micros| crate::pricing::Price {
                            micros,
                            currency: source
                                .provider
                                .config
                                .get("currency")
                                .and_then(serde_json::Value::as_str)
                                .unwrap_or("EUR")
                                .to_owned(),
                        }),
                    ..Default::default()
                },
                opt_outs: Vec::new(),
            },
        }],
        ..Default::default()
    })
}

/// Vonage numbers are digits without the `+`.
fn plus(number: &str) -> String {
    if number.starts_with('+') || !number.chars().all(|c| c.is_ascii_digit()) {
        number.to_owned()
    } else {
        format!("+{number}")
    }
}

/// Our status for one of Vonage's receipt statuses.
pub fn status_for(status: &str) -> Option<MessageStatus> {
    Some(match status {
        "delivered" => MessageStatus::Delivered,
        "accepted" | "buffered" => MessageStatus::Sent,
        "rejected" => MessageStatus::Failed,
        "failed" | "expired" | "unknown" => MessageStatus::Undelivered,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_signed_string_is_sorted_with_a_leading_ampersand_and_without_sig() {
        let params = pairs(&[
            ("timestamp", "1461605396"),
            ("b", "x=y&z"),
            ("a", "1"),
            ("sig", "ignored"),
        ]);
        assert_eq!(signed_string(&params), "&a=1&b=x_y_z&timestamp=1461605396");
    }

    #[test]
    fn the_signature_is_upper_case_hex_hmac_sha256() {
        let params = pairs(&[("a", "1"), ("b", "2"), ("timestamp", "1461605396")]);
        assert_eq!(
            signature("secret", &params),
            "A321E824B9B816BE7C3F28859A31749A098713D39F613C80D455BBAFFAE1CD24"
        );
    }
}
