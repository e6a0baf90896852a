//! Twilio: message status callbacks and inbound messages (form-encoded POSTs).
//!
//! Signature (Twilio "Secure webhooks"): `X-Twilio-Signature` = Base64(HMAC-SHA1(auth_token,
//! URL ‖ for each form parameter sorted by name: name ‖ value)). The URL is the one Twilio
//! called: `PUBLIC_BASE_URL` + the request path + `?` + the query string exactly as received
//! (the delivery adapter's `StatusCallback` carries `?message_id=msg_…`). Parameters sharing a
//! name are ordered by value. Webhook Rules (HMAC-SHA256 with a shared key,
//! `X-Twilio-Webhooks-Signature-Settings`) and JSON bodies signed through `bodySHA256` are not
//! used by this service's callbacks and are refused.
//!
//! - Status callback (`MessageStatus` present and not `received`): `sending`/`sent` → SENT,
//!   `delivered` → DELIVERED, `read` → READ, `undelivered` → UNDELIVERED, `failed` → FAILED
//!   with `ErrorCode`; `queued`, `accepted`, `scheduled`, `canceled` and the rest change
//!   nothing. Identity (`MessageSid`, `MessageStatus`); the message is found by the
//!   `message_id` in the URL, else by `MessageSid`.
//! - Inbound message (`SmsStatus=received`, or no `MessageStatus`): `From`, `To`, `Body`;
//!   `whatsapp:` addresses are WhatsApp. Identity (`inbound`, `MessageSid`). Answered with an
//!   empty TwiML `<Response/>` so Twilio sends nothing back.

use super::signing::{base64_decode, base64_encode, hmac_sha1, hmac_sha1_matches};
use super::{
    Action, CallbackError, Event, InboundMessage, MessageRef, Parsed, RawCallback, Source,
    StatusChange, bad_signature,
};
use crate::domain::Channel;
use crate::domain::MessageStatus;
use crate::domain::ids::MessageId;

pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// The string Twilio signs: the URL, then every parameter's name and value, sorted.
pub fn signed_string(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut out = url.to_owned();
    for (name, value) in sorted {
        out.push_str(name);
        out.push_str(value);
    }
    out
}

/// The signature Twilio sends for `url` and `params`.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    base64_encode(&hmac_sha1(
        auth_token.as_bytes(),
        signed_string(url, params).as_bytes(),
    ))
}

/// Checks the signature and reads the callback.
pub fn parse(
    source: &Source,
    raw: &RawCallback<'_>,
    public_base_url: Option<&str>,
) -> Result<Parsed, CallbackError> {
    let token = source
        .settings
        .credential_str("auth_token")
        .ok_or_else(|| bad_signature("the provider has no auth_token to check signatures"))?;
    let base = public_base_url.ok_or_else(|| {
        tracing::error!("a Twilio callback arrived but PUBLIC_BASE_URL is not set");
        bad_signature("signatures cannot be checked: PUBLIC_BASE_URL is not configured")
    })?;
    let given = raw
        .header(SIGNATURE_HEADER)
        .and_then(base64_decode)
        .ok_or_else(|| bad_signature("X-Twilio-Signature is missing or not base64"))?;
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(raw.body).into_owned().collect();
    let url = format!("{}{}", base.trim_end_matches('/'), raw.path_and_query);
    if !hmac_sha1_matches(
        token.as_bytes(),
        signed_string(&url, &params).as_bytes(),
        &given,
    ) {
        return Err(bad_signature("X-Twilio-Signature does not match"));
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let sid = get("MessageSid")
        .or_else(|| get("SmsSid"))
        .ok_or_else(|| CallbackError::Invalid("MessageSid is missing".into()))?;
    let status = get("MessageStatus").map(|s| s.to_ascii_lowercase());
    let inbound = matches!(status.as_deref(), None | Some("received" | "receiving"))
        || get("SmsStatus").as_deref() == Some("received");
    if inbound {
        let from = get("From").unwrap_or_default();
        let channel = if from.starts_with("whatsapp:") {
            Channel::Whatsapp
        } else {
            Channel::Sms
        };
        let strip = |a: String| a.trim_start_matches("whatsapp:").to_owned();
        let key = format!("inbound:{sid}");
        return Ok(Parsed {
            dedupe_key: key.clone(),
            events: vec![Event {
                key,
                action: Action::Inbound(InboundMessage {
                    channel,
                    from: strip(from),
                    to: strip(get("To").unwrap_or_default()),
                    body: params
                        .iter()
                        .find(|(k, _)| k == "Body")
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default(),
                    provider_message_id: sid,
                    received_at: chrono::Utc::now(),
                }),
            }],
            twiml: true,
            ..Default::default()
        });
    }
    let status = status.unwrap_or_default();
    let key = format!("{sid}:{status}");
    let message_id = raw
        .query_pairs()
        .into_iter()
        .find(|(k, _)| k == "message_id")
        .and_then(|(_, v)| MessageId::parse(&v))
        .map(|id| id.uuid());
    let target = status_for(&status);
    let failure = matches!(
        target,
        Some(MessageStatus::Failed | MessageStatus::Undelivered)
    );
    let change = StatusChange {
        status: target,
        error_code: get("ErrorCode").filter(|_| failure),
        error_message: failure.then(|| {
            get("ErrorMessage").unwrap_or_else(|| format!("Twilio reported the message {status}"))
        }),
        ..Default::default()
    };
    Ok(Parsed {
        dedupe_key: key.clone(),
        events: vec![Event {
            key,
            action: Action::Message {
                message: MessageRef {
                    message_id,
                    provider_message_id: Some(sid),
                },
                change,
                opt_outs: Vec::new(),
            },
        }],
        ..Default::default()
    })
}

/// Our status for one of Twilio's.
pub fn status_for(status: &str) -> Option<MessageStatus> {
    Some(match status {
        "sending" | "sent" => MessageStatus::Sent,
        "delivered" => MessageStatus::Delivered,
        "read" => MessageStatus::Read,
        "undelivered" => MessageStatus::Undelivered,
        "failed" => MessageStatus::Failed,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Twilio's webhook security guide.
    #[test]
    fn the_signature_matches_twilios_documented_example() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(
            signature(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn parameters_are_sorted_by_name_then_value() {
        let params = vec![
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "9".to_owned()),
            ("a".to_owned(), "1".to_owned()),
        ];
        assert_eq!(signed_string("u", &params), "ua1a9b2");
    }
}
