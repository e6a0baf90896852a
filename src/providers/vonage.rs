//! Vonage SMS API.
//!
//! - `POST {base}/sms/json` (base `https://rest.nexmo.com`), form-encoded with `api_key`,
//!   `api_secret`, `from`, `to` (digits, no `+`), `text`, and `type=unicode` when the text is
//!   not in the GSM 7-bit alphabet; `callback` = the message's status callback URL when it has one.
//! - Echo field: `client-ref` = our message id; Vonage returns it in every delivery receipt.
//! - The API answers HTTP 200 whatever happened: `messages[0].status` decides. "0" is
//!   accepted (id `messages[0]["message-id"]`, cost the sum of every part's `message-price`, in
//!   the account's currency: `config.currency`, default EUR); "1" (throttled) is a rate limit; "5" (internal error) is
//!   transient; anything else is permanent with its `error-text`. A long text is split into
//!   parts; once the first part is accepted the message counts as accepted, since retrying
//!   would repeat the parts already sent. Non-200 answers follow the shared HTTP rules.
//! - Probe: `GET {base}/account/get-balance`, HTTP Basic `api_key:api_secret` (the Account
//!   API's balance; Basic keeps the secret out of the URL).

use async_trait::async_trait;
use serde_json::Value;

use super::http::{self, Reply};
use super::{CallError, OutboundMessage, ProviderClient, ProviderSettings, SendOutcome};
use crate::domain::{Channel, ProviderKind};

const DEFAULT_BASE: &str = "https://rest.nexmo.com";

/// A Vonage account sending from one sender id or number.
pub struct VonageClient {
    http: reqwest::Client,
    base: String,
    api_key: String,
    api_secret: String,
    from: String,
    /// The account's currency, which its prices come in (`config.currency`, default EUR).
    currency: String,
}

impl VonageClient {
    /// Needs `from`, `api_key` and `api_secret`.
    pub fn new(settings: &ProviderSettings, http: reqwest::Client) -> anyhow::Result<Self> {
        Ok(Self {
            base: settings.base_url(DEFAULT_BASE),
            api_key: settings.require_credential("api_key")?,
            api_secret: settings.require_credential("api_secret")?,
            from: settings
                .require_config("from")?
                .trim_start_matches('+')
                .to_owned(),
            currency: settings
                .config_str("currency")
                .unwrap_or("EUR")
                .to_ascii_uppercase(),
            http,
        })
    }
}

#[async_trait]
impl ProviderClient for VonageClient {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Vonage
    }

    async fn send(&self, message: &OutboundMessage) -> SendOutcome {
        if message.channel != Channel::Sms {
            return super::unsupported_channel(ProviderKind::Vonage, message.channel);
        }
        if !message.media.is_empty() {
            return super::media::unsupported(ProviderKind::Vonage);
        }
        let mut form = vec![
            ("api_key", self.api_key.as_str()),
            ("api_secret", self.api_secret.as_str()),
            ("from", self.from.as_str()),
            ("to", message.recipient.trim_start_matches('+')),
            ("text", message.body.as_str()),
            ("client-ref", message.message_id.as_str()),
        ];
        if crate::domain::sms::segment(&message.body).encoding == crate::domain::sms::Encoding::Ucs2
        {
            form.push(("type", "unicode"));
        }
        if let Some(callback) = &message.status_callback_url {
            form.push(("callback", callback));
        }
        // Milliseconds the carrier keeps trying: 20,000 to 604,800,000.
        let ttl = message
            .validity
            .map(|v| (v.as_millis().clamp(20_000, 604_800_000) as u64).to_string());
        if let Some(ttl) = &ttl {
            form.push(("ttl", ttl));
        }
        let request = self
            .http
            .post(format!("{}/sms/json", self.base))
            .form(&form);
        match http::execute(request).await {
            Ok(reply) if reply.status.is_success() => outcome(&reply, &self.currency),
            Ok(reply) => http::classify_error(&reply, http::ProviderError::default()),
            Err(outcome) => outcome,
        }
    }

    async fn probe(&self) -> Result<(), CallError> {
        let request = self
            .http
            .get(format!("{}/account/get-balance", self.base))
            .basic_auth(&self.api_key, Some(&self.api_secret));
        http::call(request, |reply| {
            let body = reply.json().unwrap_or(Value::Null);
            http::ProviderError {
                message: ["error-code-label", "title", "detail"]
                    .iter()
                    .find_map(|k| body.get(*k).and_then(Value::as_str))
                    .map(str::to_owned),
                ..http::ProviderError::default()
            }
        })
        .await
        .map(drop)
    }
}

fn outcome(reply: &Reply, currency: &str) -> SendOutcome {
    let body = reply.json().unwrap_or(Value::Null);
    let parts = body
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let Some(first) = parts.first() else {
        return http::accepted(None, None, reply);
    };
    let field =
        |part: &Value, name: &str| part.get(name).and_then(Value::as_str).map(str::to_owned);
    let Some(status) = field(first, "status") else {
        return http::accepted(None, None, reply);
    };
    let text = || field(first, "error-text").unwrap_or_else(|| format!("status {status}"));
    match status.as_str() {
        "0" => {
            let prices: Vec<Option<i64>> = parts
                .iter()
                .filter(|p| p.get("status").and_then(Value::as_str) == Some("0"))
                .map(|p| {
                    field(p, "message-price")
                        .as_deref()
                        .and_then(http::price_micros)
                })
                .collect();
            let price =
                prices
                    .iter()
                    .copied()
                    .sum::<Option<i64>>()
                    .map(|micros| crate::pricing::Price {
                        micros,
                        currency: currency.to_owned(),
                    });
            http::accepted(field(first, "message-id"), price, reply)
        }
        "1" => SendOutcome::RateLimited {
            retry_after: None,
            code: status.clone(),
            message: text(),
        },
        "5" => SendOutcome::TransientFailure {
            code: status.clone(),
            message: text(),
        },
        _ => SendOutcome::PermanentFailure {
            code: status.clone(),
            message: text(),
        },
    }
}
