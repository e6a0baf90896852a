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
//! - Template list (the `sync-templates` job): `GET {base}/{api_version}/{waba_id}/message_templates
//!   ?fields=name,status,language,category&limit=…`, bearer, cursor paging: while the answer has
//!   `paging.next`, the next page is asked with `after` = `paging.cursors.after` (the `next` URL
//!   itself is not followed, so the token never goes to a host other than the configured one).
//! - Probe: `GET {base}/{api_version}/{phone_number_id}`, bearer (the phone number's record).
//! - Graph errors `{error: {code, message, error_data: {details}}}`; the code decides, as Meta
//!   advises: 130429, 131056, 4 and 80007 are rate limits; 1 and 2 are transient; 190, 131026,
//!   131047, 131048, 131051 and the 132xxx template errors are permanent; other codes follow
//!   the HTTP status.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{self, Hint, ProviderError, Reply};
use super::{CallError, OutboundMessage, ProviderClient, ProviderSettings, SendOutcome};
use crate::domain::media::WhatsappMedia;
use crate::domain::{Channel, ProviderKind};

const DEFAULT_BASE: &str = "https://graph.facebook.com";
const DEFAULT_VERSION: &str = "v21.0";

/// One WhatsApp Business phone number (and its business account, for templates).
pub struct MetaWhatsappClient {
    http: reqwest::Client,
    /// `{base}/{api_version}`.
    graph: String,
    phone_number_id: String,
    waba_id: Option<String>,
    access_token: String,
}

/// A template as Meta lists it.
#[derive(Clone, Debug, Deserialize)]
pub struct MetaTemplate {
    pub name: String,
    pub language: String,
    pub status: String,
    #[serde(default)]
    pub category: Option<String>,
}

/// One page of the template list.
#[derive(Clone, Debug)]
pub struct TemplatePage {
    pub templates: Vec<MetaTemplate>,
    /// The cursor of the next page; `None` on the last.
    pub after: Option<String>,
}

impl MetaWhatsappClient {
    /// Needs `phone_number_id` and `access_token`; listing templates also needs `waba_id`.
    pub fn new(settings: &ProviderSettings, http: reqwest::Client) -> anyhow::Result<Self> {
        let version = settings
            .config_str("api_version")
            .unwrap_or(DEFAULT_VERSION);
        Ok(Self {
            graph: format!("{}/{version}", settings.base_url(DEFAULT_BASE)),
            phone_number_id: settings.require_config("phone_number_id")?,
            waba_id: settings.config_str("waba_id").map(str::to_owned),
            access_token: settings.require_credential("access_token")?,
            http,
        })
    }

    /// One page of the business account's templates (`after` = the previous page's cursor).
    pub async fn template_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<TemplatePage, CallError> {
        let waba_id = self.waba_id.as_deref().ok_or_else(|| {
            CallError::new(
                "INVALID_PROVIDER_CONFIG",
                "config.waba_id is required to list templates",
            )
        })?;
        let mut query = vec![
            ("fields", "name,status,language,category".to_owned()),
            ("limit", limit.to_string()),
        ];
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        let request = self
            .http
            .get(format!("{}/{waba_id}/message_templates", self.graph))
            .bearer_auth(&self.access_token)
            .query(&query);
        let reply = http::call(request, error).await?;
        let body = reply.json().unwrap_or(Value::Null);
        let Some(data) = body.get("data").and_then(Value::as_array) else {
            return Err(CallError::new(
                "INVALID_ANSWER",
                "the template list has no data array",
            ));
        };
        // Entries without a name, language or status cannot be matched; they are skipped.
        let templates = data
            .iter()
            .filter_map(|t| serde_json::from_value(t.clone()).ok())
            .collect();
        let after = body
            .pointer("/paging/next")
            .and_then(Value::as_str)
            .filter(|next| !next.is_empty())
            .and_then(|_| body.pointer("/paging/cursors/after"))
            .and_then(Value::as_str)
            .filter(|cursor| !cursor.is_empty())
            .map(str::to_owned);
        Ok(TemplatePage { templates, after })
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
        None => match message.media.first() {
            Some(item) => {
                let kind = WhatsappMedia::of(&item.content_type);
                let mut media = json!({"link": item.url});
                if kind.takes_caption() && !message.body.is_empty() {
                    media["caption"] = json!(message.body);
                }
                if kind == WhatsappMedia::Document {
                    media["filename"] = json!(item.filename);
                }
                body["type"] = json!(kind.as_str());
                body[kind.as_str()] = media;
            }
            None => {
                body["type"] = json!("text");
                body["text"] = json!({"body": message.body});
            }
        },
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
            .post(format!("{}/{}/messages", self.graph, self.phone_number_id))
            .bearer_auth(&self.access_token)
            .json(&body(message));
        match http::execute(request).await {
            Ok(reply) if reply.status.is_success() => accepted(&reply),
            Ok(reply) => http::classify_error(&reply, error(&reply)),
            Err(outcome) => outcome,
        }
    }

    async fn probe(&self) -> Result<(), CallError> {
        let request = self
            .http
            .get(format!("{}/{}", self.graph, self.phone_number_id))
            .bearer_auth(&self.access_token);
        http::call(request, error).await.map(drop)
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
        190 | 131026 | 131047 | 131048 | 131050 | 131051 | 132000..=132999 => Some(Hint::Permanent),
        _ => None,
    }
}
