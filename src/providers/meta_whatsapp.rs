//! Meta WhatsApp Cloud API: text and template messages through the Graph API.
//!
//! - `POST {base}/{api_version}/{phone_number_id}/messages` (base `https://graph.facebook.com`,
//!   version `v21.0` unless configured), `Authorization: Bearer {access_token}`, JSON with
//!   `messaging_product: "whatsapp"`, `recipient_type: "individual"` and `to` as digits.
//! - A message with a provider template is sent as `type: "template"` (name, language code and
//!   the body parameters in order); anything else as `type: "text"`.
//! - Echo field: `biz_opaque_callback_data` = our message id; Meta returns it in every status
//!   webhook of the message.
//! - Id: `messages[0].id` (`wamid.…`).
//! - Graph errors `{error: {code, message, error_data: {details}}}`; the code decides, as Meta
//!   advises: 130429, 131056, 4 and 80007 are rate limits; 1 and 2 are transient; 190, 131026,
//!   131047, 131048, 131051 and the 132xxx template errors are permanent; other codes follow
//!   the HTTP status.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::http::{self, Hint, ProviderError, Reply};
use super::{OutboundMessage, ProviderClient, ProviderSettings, SendOutcome};
use crate::domain::{Channel, ProviderKind};

const DEFAULT_BASE: &str = "https://graph.facebook.com";
const DEFAULT_VERSION: &str = "v21.0";

/// One WhatsApp Business phone number.
pub struct MetaWhatsappClient {
    http: reqwest::Client,
    url: String,
    access_token: String,
}

impl MetaWhatsappClient {
    /// Needs `phone_number_id` and `access_token`.
    pub fn new(settings: &ProviderSettings, http: reqwest::Client) -> anyhow::Result<Self> {
        let phone_number_id = settings.require_config("phone_number_id")?;
        let version = settings
            .config_str("api_version")
            .unwrap_or(DEFAULT_VERSION);
        Ok(Self {
            url: format!(
                "{}/{version}/{phone_number_id}/messages",
                settings.base_url(DEFAULT_BASE)
            ),
            access_token: settings.require_credential("access_token")?,
            http,
        })
    }
}

/// The Graph request body for one message.
fn body(message: &OutboundMessage) -> Value {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.recipient.trim_start_matches('+'),
        "biz_opaque_callback_data": message.message_id,
    });
    match &message.provider_template {
        Some(template) => {
            let mut spec = json!({
                "name": template.name,
                "language": {"code": template.language},
            });
            if !template.body_parameters.is_empty() {
                let parameters: Vec<Value> = template
                    .body_parameters
                    .iter()
                    .map(|text| json!({"type": "text", "text": text}))
                    .collect();
                spec["components"] = json!([{"type": "body", "parameters": parameters}]);
            }
            body["type"] = json!("template");
            body["template"] = spec;
        }
        None => {
            body["type"] = json!("text");
            body["text"] = json!({"body": message.body});
        }
    }
    body
}

#[async_trait]
impl ProviderClient for MetaWhatsappClient {
    fn kind(&self) -> ProviderKind {
        ProviderKind::MetaWhatsapp
    }

    async fn send(&self, message: &OutboundMessage) -> SendOutcome {
        if message.channel != Channel::Whatsapp {
            return super::unsupported_channel(ProviderKind::MetaWhatsapp, message.channel);
        }
        let request = self
            .http
            .post(&self.url)
            .bearer_auth(&self.access_token)
            .json(&body(message));
        match http::execute(request).await {
            Ok(reply) if reply.status.is_success() => accepted(&reply),
            Ok(reply) => http::classify_error(&reply, error(&reply)),
            Err(outcome) => outcome,
        }
    }
}

fn accepted(reply: &Reply) -> SendOutcome {
    let id = reply
        .json()
        .and_then(|b| b.pointer("/messages/0/id").cloned())
        .and_then(|id| id.as_str().map(str::to_owned));
    http::accepted(id, None, reply)
}

fn error(reply: &Reply) -> ProviderError {
    let body = reply.json().unwrap_or(Value::Null);
    let error = body.get("error").unwrap_or(&Value::Null);
    let code = error.get("code").and_then(Value::as_i64);
    let details = error
        .pointer("/error_data/details")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty());
    let message = match (error.get("message").and_then(Value::as_str), details) {
        (Some(m), Some(d)) if !m.contains(d) => Some(format!("{m}: {d}")),
        (Some(m), _) => Some(m.to_owned()),
        (None, d) => d.map(str::to_owned),
    };
    ProviderError {
        code: code.map(|c| c.to_string()),
        message,
        hint: code.and_then(hint),
        retry_after: None,
    }
}

fn hint(code: i64) -> Option<Hint> {
    match code {
        130429 | 131056 | 4 | 80007 => Some(Hint::RateLimited),
        1 | 2 => Some(Hint::Transient),
        190 | 131026 | 131047 | 131048 | 131051 | 132000..=132999 => Some(Hint::Permanent),
        _ => None,
    }
}
