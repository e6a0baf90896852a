//! Amazon SES v2: e-mail through `outbound-emails`.
//!
//! - `POST {base}/v2/email/outbound-emails` (base `https://email.{region}.amazonaws.com`),
//!   JSON with `FromEmailAddress` (with `config.from_name` as its display name, MIME-encoded
//!   when not ASCII), `Destination.ToAddresses`, a simple content (subject, a `Text` body and,
//!   when the e-mail has one, an `Html` body), `ReplyToAddresses` when the send names one, and
//!   `ConfigurationSetName` when configured; signed with SigV4 (service `ses`).
//! - Echo field: `EmailTags` `message_id` = our id and `tenant_id` = the tenant UUID; both are
//!   valid tag values as they are (`[A-Za-z0-9_-]`), and SES returns them as `mail.tags` in
//!   every event published through the configuration set.
//! - Id: `MessageId`.
//! - Probe: `GET {base}/v2/email/account`, SigV4 (the account's sending status).
//! - Errors: the `x-amzn-ErrorType` header names the error, the body carries `message`.
//!   `TooManyRequestsException` and `LimitExceededException` are rate limits; other codes
//!   follow the HTTP status (5xx transient, 4xx permanent).

use async_trait::async_trait;
use serde_json::{Value, json};

use super::aws_signing::AwsSigner;
use super::http::{self, Hint, ProviderError, Reply};
use super::{CallError, OutboundMessage, ProviderClient, ProviderSettings, SendOutcome};
use crate::domain::{Channel, ProviderKind};

/// SES in one region, sending from one address.
pub struct SesClient {
    http: reqwest::Client,
    base: String,
    signer: AwsSigner,
    from_email: String,
    configuration_set: Option<String>,
}

impl SesClient {
    /// Needs `region`, `from_email`, `access_key_id` and `secret_access_key`.
    pub fn new(settings: &ProviderSettings, http: reqwest::Client) -> anyhow::Result<Self> {
        let region = settings.require_config("region")?;
        let default_base = format!("https://email.{region}.amazonaws.com");
        Ok(Self {
            base: settings.base_url(&default_base),
            signer: AwsSigner::new(settings, &region, "ses")?,
            from_email: from_address(
                &settings.require_config("from_email")?,
                settings.config_str("from_name"),
            ),
            configuration_set: settings.config_str("configuration_set").map(str::to_owned),
            http,
        })
    }

    fn body(&self, message: &OutboundMessage, subject: &str) -> Value {
        let mut body = json!({
            "FromEmailAddress": self.from_email,
            "Destination": {"ToAddresses": [message.recipient]},
            "Content": {"Simple": {
                "Subject": {"Data": subject, "Charset": "UTF-8"},
                "Body": {"Text": {"Data": message.body, "Charset": "UTF-8"}},
            }},
            "EmailTags": [
                {"Name": "message_id", "Value": message.message_id},
                {"Name": "tenant_id", "Value": message.tenant_id.to_string()},
            ],
        });
        if let Some(html) = &message.html_body {
            body["Content"]["Simple"]["Body"]["Html"] = json!({"Data": html, "Charset": "UTF-8"});
        }
        if let Some(reply_to) = &message.reply_to {
            body["ReplyToAddresses"] = json!([reply_to]);
        }
        if let Some(set) = &self.configuration_set {
            body["ConfigurationSetName"] = json!(set);
        }
        body
    }
}

/// `FromEmailAddress`: the bare address, or `"Name" <address>` with the name quoted, or
/// MIME-encoded (RFC 2047) when it is not ASCII, as SES requires.
fn from_address(email: &str, name: Option<&str>) -> String {
    use base64::Engine;
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        None => email.to_owned(),
        Some(name) if name.is_ascii() && !name.chars().any(|c| c.is_ascii_control()) => {
            let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
            format!("\"{quoted}\" <{email}>")
        }
        Some(name) => format!(
            "=?UTF-8?B?{}?= <{email}>",
            base64::engine::general_purpose::STANDARD.encode(name.as_bytes())
        ),
    }
}

#[async_trait]
impl ProviderClient for SesClient {
    fn kind(&self) -> ProviderKind {
        ProviderKind::AwsSes
    }

    async fn send(&self, message: &OutboundMessage) -> SendOutcome {
        if message.channel != Channel::Email {
            return super::unsupported_channel(ProviderKind::AwsSes, message.channel);
        }
        let Some(subject) = message.subject.as_deref() else {
            return super::sendgrid::missing_subject();
        };
        let mut body = self.body(message, subject);
        if !message.media.is_empty() {
            let attachments = match super::media::fetch_all(&self.http, &message.media).await {
                Ok(attachments) => attachments,
                Err(outcome) => return outcome,
            };
            body["Content"]["Simple"]["Attachments"] = attachments
                .into_iter()
                .map(|a| {
                    json!({"RawContent": a.base64, "ContentType": a.content_type,
                           "FileName": a.filename, "ContentDisposition": "ATTACHMENT"})
                })
                .collect();
        }
        let body = body.to_string().into_bytes();
        let url = format!("{}/v2/email/outbound-emails", self.base);
        let request = match self
            .signer
            .signed_post(&self.http, &url, "application/json", body)
        {
            Ok(request) => request,
            Err(err) => {
                return SendOutcome::PermanentFailure {
                    code: "SIGNING_FAILED".into(),
                    message: format!("the request could not be signed: {err:#}"),
                };
            }
        };
        match http::execute(request).await {
            Ok(reply) if reply.status.is_success() => {
                let id = reply.json().and_then(|b| {
                    b.get("MessageId")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                });
                http::accepted(id, None, &reply)
            }
            Ok(reply) => http::classify_error(&reply, error(&reply)),
            Err(outcome) => outcome,
        }
    }

    async fn probe(&self) -> Result<(), CallError> {
        let request = self
            .signer
            .signed_get(&self.http, &format!("{}/v2/email/account", self.base))
            .map_err(|e| CallError::new("SIGNING_FAILED", format!("{e:#}")))?;
        http::call(request, error).await.map(drop)
    }
}

fn error(reply: &Reply) -> ProviderError {
    let body = reply.json().unwrap_or(Value::Null);
    // `x-amzn-ErrorType` may carry a namespace after a colon; a body `__type` may prefix one.
    let code = reply
        .header("x-amzn-errortype")
        .map(|t| t.split(':').next().unwrap_or(t))
        .or_else(|| {
            body.get("__type")
                .and_then(Value::as_str)
                .map(|t| t.rsplit('#').next().unwrap_or(t))
        })
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let message = ["message", "Message"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_str))
        .map(str::to_owned);
    ProviderError {
        hint: match code.as_deref() {
            Some("TooManyRequestsException" | "LimitExceededException") => Some(Hint::RateLimited),
            _ => None,
        },
        code,
        message,
        retry_after: None,
    }
}

#[cfg(test)]
mod from_tests {
    use super::from_address;

    #[test]
    fn the_sender_name_is_quoted_or_mime_encoded() {
        assert_eq!(from_address("a@x.io", None), "a@x.io");
        assert_eq!(
            from_address("a@x.io", Some("Eventzr")),
            "\"Eventzr\" <a@x.io>"
        );
        assert_eq!(
            from_address("a@x.io", Some("Say \"hi\"")),
            "\"Say \\\"hi\\\"\" <a@x.io>"
        );
        assert_eq!(
            from_address("a@x.io", Some("Café")),
            "=?UTF-8?B?Q2Fmw6k=?= <a@x.io>"
        );
    }
}
