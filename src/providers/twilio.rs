//! Twilio: SMS and WhatsApp through the Messages API, voice through the Calls API.
//!
//! - `POST {base}/2010-04-01/Accounts/{account_sid}/Messages.json`, form-encoded, HTTP Basic
//!   `account_sid:auth_token`; `MessagingServiceSid` is used when configured, else `From`.
//!   WhatsApp addresses are `whatsapp:+…`.
//! - VOICE: `POST …/Calls.json` with `Twiml` = `<Response><Say>{body}</Say></Response>`.
//! - Id: the resource's `sid` (`SM…`/`MM…` for messages, `CA…` for calls). A `price`, when
//!   already known, becomes the cost.
//! - Echo field: the Messages and Calls APIs carry no free-form field that comes back in status
//!   callbacks, so our message id travels in the `StatusCallback` URL's query
//!   (`?message_id=msg_…`), which Twilio calls back verbatim. Without a callback URL nothing
//!   carries it and callbacks correlate by `MessageSid` alone.
//! - Probe: `GET {base}/2010-04-01/Accounts/{account_sid}.json`, Basic (the account record).
//! - Look-up after an ambiguous outcome: `GET …/Messages.json?To=…&DateSent>=YYYY-MM-DD` (and
//!   `From` when configured), newest first; a message to the same address with the same body,
//!   created since the first attempt, is the one we sent.
//! - Errors `{code, message}`: 20429 is a rate limit; 21211, 21606, 21610 and 21614 are
//!   permanent whatever the status; otherwise the status decides.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::http::{self, Hint, ProviderError, Reply};
use super::{CallError, Lookup, OutboundMessage, ProviderClient, ProviderSettings, SendOutcome};
use crate::domain::{Channel, ProviderKind};

const DEFAULT_BASE: &str = "https://api.twilio.com";

/// A Twilio account.
pub struct TwilioClient {
    http: reqwest::Client,
    account_url: String,
    account_sid: String,
    auth_token: String,
    from: Option<String>,
    messaging_service_sid: Option<String>,
}

impl TwilioClient {
    /// Needs `account_sid`, `auth_token` and `from` or `messaging_service_sid`.
    pub fn new(settings: &ProviderSettings, http: reqwest::Client) -> anyhow::Result<Self> {
        let account_sid = settings.require_credential("account_sid")?;
        let from = settings.config_str("from").map(str::to_owned);
        let messaging_service_sid = settings
            .config_str("messaging_service_sid")
            .map(str::to_owned);
        if from.is_none() && messaging_service_sid.is_none() {
            anyhow::bail!("config.from or config.messaging_service_sid is required for TWILIO");
        }
        Ok(Self {
            account_url: format!(
                "{}/2010-04-01/Accounts/{account_sid}",
                settings.base_url(DEFAULT_BASE)
            ),
            auth_token: settings.require_credential("auth_token")?,
            account_sid,
            http,
            from,
            messaging_service_sid,
        })
    }

    fn message_form(&self, message: &OutboundMessage) -> Vec<(&'static str, String)> {
        let whatsapp = message.channel == Channel::Whatsapp;
        let address = |a: &str| {
            if whatsapp && !a.starts_with("whatsapp:") {
                format!("whatsapp:{a}")
            } else {
                a.to_owned()
            }
        };
        let mut form = vec![("To", address(&message.recipient))];
        match (&self.messaging_service_sid, &self.from) {
            (Some(service), _) => form.push(("MessagingServiceSid", service.clone())),
            (None, Some(from)) => form.push(("From", address(from))),
            (None, None) => {}
        }
        form.push(("Body", message.body.clone()));
        // An SMS with media is an MMS; WhatsApp takes them the same way.
        for item in &message.media {
            form.push(("MediaUrl", item.url.clone()));
        }
        if let Some(callback) = status_callback(message) {
            form.push(("StatusCallback", callback));
        }
        if let Some(validity) = message.validity {
            // Seconds the message may wait in Twilio's queue: 1 to 36,000.
            let secs = validity.as_secs().clamp(1, 36_000);
            form.push(("ValidityPeriod", secs.to_string()));
        }
        form
    }

    fn call_form(
        &self,
        message: &OutboundMessage,
    ) -> Result<Vec<(&'static str, String)>, SendOutcome> {
        let from = self
            .from
            .clone()
            .ok_or_else(|| SendOutcome::PermanentFailure {
                code: "NO_CALLER_ID".into(),
                message: "voice calls need config.from (a messaging service cannot place calls)"
                    .into(),
            })?;
        let mut form = vec![
            ("To", message.recipient.clone()),
            ("From", from),
            (
                "Twiml",
                format!(
                    "<Response><Say>{}</Say></Response>",
                    xml_escape(&message.body)
                ),
            ),
        ];
        if let Some(callback) = status_callback(message) {
            form.push(("StatusCallback", callback));
        }
        Ok(form)
    }
}

/// The message's callback URL with `message_id` added to its query.
fn status_callback(message: &OutboundMessage) -> Option<String> {
    let raw = message.status_callback_url.as_deref()?;
    match url::Url::parse(raw) {
        Ok(mut url) => {
            url.query_pairs_mut()
                .append_pair("message_id", &message.message_id);
            Some(url.into())
        }
        Err(_) => Some(raw.to_owned()),
    }
}

/// Escapes text for an XML element.
pub(crate) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[async_trait]
impl ProviderClient for TwilioClient {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Twilio
    }

    async fn send(&self, message: &OutboundMessage) -> SendOutcome {
        let (resource, form) = match message.channel {
            Channel::Sms | Channel::Whatsapp => ("Messages.json", self.message_form(message)),
            Channel::Voice => match self.call_form(message) {
                Ok(form) => ("Calls.json", form),
                Err(outcome) => return outcome,
            },
            other => return super::unsupported_channel(ProviderKind::Twilio, other),
        };
        let request = self
            .http
            .post(format!("{}/{resource}", self.account_url))
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&form);
        match http::execute(request).await {
            Ok(reply) if reply.status.is_success() => accepted(&reply),
            Ok(reply) => http::classify_error(&reply, error(&reply)),
            Err(outcome) => outcome,
        }
    }

    async fn probe(&self) -> Result<(), CallError> {
        let request = self
            .http
            .get(format!("{}.json", self.account_url))
            .basic_auth(&self.account_sid, Some(&self.auth_token));
        http::call(request, error).await.map(drop)
    }

    async fn lookup(&self, message: &OutboundMessage, since: DateTime<Utc>) -> Lookup {
        if !matches!(message.channel, Channel::Sms | Channel::Whatsapp) {
            return Lookup::Unsupported;
        }
        let form = self.message_form(message);
        let to = form
            .iter()
            .find(|(k, _)| *k == "To")
            .map(|(_, v)| v.clone());
        let mut query = vec![
            ("To", to.clone().unwrap_or_default()),
            (
                "DateSent>",
                (since - chrono::Duration::days(1))
                    .format("%Y-%m-%d")
                    .to_string(),
            ),
            ("PageSize", "50".to_owned()),
        ];
        if let Some((_, from)) = form.iter().find(|(k, _)| *k == "From") {
            query.push(("From", from.clone()));
        }
        let request = self
            .http
            .get(format!("{}/Messages.json", self.account_url))
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .query(&query);
        let reply = match http::call(request, error).await {
            Ok(reply) => reply,
            Err(e) => return Lookup::Failed(e.to_string()),
        };
        let Some(listed) = reply.json() else {
            return Lookup::Failed("the message list is not JSON".into());
        };
        let found = listed
            .get("messages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|m| {
                m.get("to").and_then(Value::as_str) == to.as_deref()
                    && m.get("body").and_then(Value::as_str) == Some(message.body.as_str())
                    && m.get("date_created")
                        .and_then(Value::as_str)
                        .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
                        .is_none_or(|d| d >= since - chrono::Duration::seconds(60))
            })
            .and_then(|m| m.get("sid").and_then(Value::as_str));
        match found {
            Some(sid) => Lookup::Found {
                provider_message_id: sid.to_owned(),
            },
            None => Lookup::NotFound,
        }
    }
}

fn accepted(reply: &Reply) -> SendOutcome {
    let body = reply.json().unwrap_or(Value::Null);
    let sid = body.get("sid").and_then(Value::as_str).map(str::to_owned);
    let price = body
        .get("price")
        .and_then(Value::as_str)
        .and_then(http::price_micros)
        .map(|micros| crate::pricing::Price {
            micros,
            currency: body
                .get("price_unit")
                .and_then(Value::as_str)
                .map_or_else(|| "USD".to_owned(), str::to_ascii_uppercase),
        });
    http::accepted(sid, price, reply)
}

fn error(reply: &Reply) -> ProviderError {
    let body = reply.json().unwrap_or(Value::Null);
    let code = body.get("code").and_then(Value::as_i64);
    ProviderError {
        code: code.map(|c| c.to_string()),
        message: body
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned),
        hint: match code {
            Some(20429) => Some(Hint::RateLimited),
            Some(21211 | 21606 | 21610 | 21614) => Some(Hint::Permanent),
            _ => None,
        },
        retry_after: None,
    }
}
