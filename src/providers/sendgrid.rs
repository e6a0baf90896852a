//! Twilio SendGrid: e-mail through `v3/mail/send`.
//!
//! - `POST {base}/v3/mail/send` (base `https://api.sendgrid.com`), `Authorization: Bearer
//!   {api_key}`, one personalization to the recipient, `from` (with `from_name` when
//!   configured), the subject, a `text/plain` part and, when the e-mail has one, a `text/html`
//!   part (in that order, as SendGrid requires), and `reply_to` when the send names one.
//! - Echo field: `personalizations[0].custom_args` = `{message_id, tenant_id}`; SendGrid
//!   flattens custom args into every event of the message.
//! - Success is `202` with an empty body; id = the `X-Message-Id` header (events carry it as
//!   the prefix of `sg_message_id`).
//! - Probe: `GET {base}/v3/scopes`, bearer (the key's scopes).
//! - Errors `{errors: [{message, field}]}` follow the HTTP status; a 429 without
//!   `Retry-After` waits until `X-RateLimit-Reset`.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::http::{self, ProviderError, Reply};
use super::{CallError, OutboundMessage, ProviderClient, ProviderSettings, SendOutcome};
use crate::domain::{Channel, ProviderKind};

const DEFAULT_BASE: &str = "https://api.sendgrid.com";

/// A SendGrid account sending from one address.
pub struct SendgridClient {
    http: reqwest::Client,
    base: String,
    api_key: String,
    from: Value,
}

impl SendgridClient {
    /// Needs `from_email` and `api_key`.
    pub fn new(settings: &ProviderSettings, http: reqwest::Client) -> anyhow::Result<Self> {
        let mut from = json!({"email": settings.require_config("from_email")?});
        if let Some(name) = settings.config_str("from_name") {
            from["name"] = json!(name);
        }
        Ok(Self {
            base: settings.base_url(DEFAULT_BASE),
            api_key: settings.require_credential("api_key")?,
            from,
            http,
        })
    }
}

#[async_trait]
impl ProviderClient for SendgridClient {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Sendgrid
    }

    async fn send(&self, message: &OutboundMessage) -> SendOutcome {
        if message.channel != Channel::Email {
            return super::unsupported_channel(ProviderKind::Sendgrid, message.channel);
        }
        let Some(subject) = message.subject.as_deref() else {
            return missing_subject();
        };
        let mut content = vec![json!({"type": "text/plain", "value": message.body})];
        if let Some(html) = &message.html_body {
            content.push(json!({"type": "text/html", "value": html}));
        }
        let mut body = json!({
            "personalizations": [{
                "to": [{"email": message.recipient}],
                "custom_args": {
                    "message_id": message.message_id,
                    "tenant_id": message.tenant_id.to_string(),
                },
            }],
            "from": self.from,
            "subject": subject,
            "content": content,
        });
        if let Some(reply_to) = &message.reply_to {
            body["reply_to"] = json!({"email": reply_to});
        }
        if !message.media.is_empty() {
            let attachments = match super::media::fetch_all(&self.http, &message.media).await {
                Ok(attachments) => attachments,
                Err(outcome) => return outcome,
            };
            body["attachments"] = attachments
                .into_iter()
                .map(|a| {
                    json!({"content": a.base64, "type": a.content_type, "filename": a.filename,
                           "disposition": "attachment"})
                })
                .collect();
        }
        let request = self
            .http
            .post(format!("{}/v3/mail/send", self.base))
            .bearer_auth(&self.api_key)
            .json(&body);
        match http::execute(request).await {
            Ok(reply) if reply.status.is_success() => {
                let id = reply.header("x-message-id").map(str::to_owned);
                http::accepted(id, None, &reply)
            }
            Ok(reply) => http::classify_error(&reply, error(&reply)),
            Err(outcome) => outcome,
        }
    }

    async fn probe(&self) -> Result<(), CallError> {
        let request = self
            .http
            .get(format!("{}/v3/scopes", self.base))
            .bearer_auth(&self.api_key);
        http::call(request, error).await.map(drop)
    }
}

/// The outcome for an e-mail without a subject (the API refuses those before they get here).
pub(crate) fn missing_subject() -> SendOutcome {
    SendOutcome::PermanentFailure {
        code: "MISSING_SUBJECT".into(),
        message: "an e-mail needs a subject".into(),
    }
}

fn error(reply: &Reply) -> ProviderError {
    let body = reply.json().unwrap_or(Value::Null);
    let messages: Vec<String> = body
        .get("errors")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| {
            let message = e.get("message").and_then(Value::as_str)?;
            Some(match e.get("field").and_then(Value::as_str) {
                Some(field) => format!("{field}: {message}"),
                None => message.to_owned(),
            })
        })
        .collect();
    let reset = reply
        .header("x-ratelimit-reset")
        .and_then(|r| r.trim().parse::<i64>().ok())
        .map(|at| {
            Duration::from_secs(u64::try_from(at - chrono::Utc::now().timestamp()).unwrap_or(0))
        });
    ProviderError {
        code: None,
        message: (!messages.is_empty()).then(|| messages.join("; ")),
        hint: None,
        retry_after: reset,
    }
}
