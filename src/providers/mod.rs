//! Provider adapters: one client per provider kind, each speaking the provider's real wire
//! format against a configurable base URL. An adapter makes exactly one call per `send` and
//! never retries by itself; it classifies what happened so delivery can decide.
//!
//! Clients are built from stored settings with [`build_client`] and share one
//! [`reqwest::Client`] (see [`http_client`]). Every adapter passes our message id through the
//! provider's echo field where the provider has one; each module says which field it uses.

pub mod aws_ses;
mod aws_signing;
pub mod aws_sns;
pub mod fcm;
pub mod hosts;
pub mod http;
pub mod media;
pub mod meta_whatsapp;
pub mod registry;
pub mod resolver;
pub mod sandbox;
pub mod sendgrid;
pub mod twilio;
pub mod vonage;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::{Channel, ProviderKind};

pub use http::http_client;

/// What to send through a provider.
#[derive(Clone, Debug)]
pub struct OutboundMessage {
    /// Our message id (`msg_…`), passed in the provider's echo field.
    pub message_id: String,
    pub tenant_id: Uuid,
    pub channel: Channel,
    /// Normalised: E.164, lower-case e-mail, or a device token.
    pub recipient: String,
    pub subject: Option<String>,
    /// The text; for an e-mail, its plain-text part.
    pub body: String,
    /// The HTML part of an e-mail.
    pub html_body: Option<String>,
    /// The Reply-To address of an e-mail.
    pub reply_to: Option<String>,
    /// A provider-side template (WhatsApp): its name, language and ordered body parameters.
    pub provider_template: Option<ProviderTemplate>,
    pub metadata: Value,
    /// Where the provider should post status callbacks for this message, when it takes one.
    pub status_callback_url: Option<String>,
    /// What is left of the message's validity window (`ttl_secs`), for providers that take
    /// one.
    pub validity: Option<std::time::Duration>,
    /// Pictures and files by URL (MMS, WhatsApp media, e-mail attachments, a push image).
    pub media: Vec<crate::domain::media::MediaItem>,
}

/// A template held by the provider (WhatsApp template messages).
#[derive(Clone, Debug)]
pub struct ProviderTemplate {
    pub name: String,
    pub language: String,
    pub body_parameters: Vec<String>,
}

/// How one provider call ended.
#[derive(Clone, Debug, PartialEq)]
pub enum SendOutcome {
    /// The provider took the message.
    Accepted {
        provider_message_id: String,
        /// The price it reported, in its currency.
        price: Option<crate::pricing::Price>,
    },
    /// The provider refused it for good (invalid number, rejected content, opted out at the
    /// provider, bad credentials): no retry, no failover.
    PermanentFailure { code: String, message: String },
    /// It failed before the provider took it; retrying (or failing over) is safe.
    TransientFailure { code: String, message: String },
    /// The provider asked us to slow down.
    RateLimited {
        retry_after: Option<Duration>,
        code: String,
        message: String,
    },
    /// The request may have been taken (timeout or connection loss after sending): it must
    /// not be re-sent through another provider without reconciliation.
    Ambiguous { message: String },
}

impl SendOutcome {
    /// The stored name of the outcome.
    pub fn as_str(&self) -> &'static str {
        match self {
            SendOutcome::Accepted { .. } => "ACCEPTED",
            SendOutcome::PermanentFailure { .. } => "PERMANENT_FAILURE",
            SendOutcome::TransientFailure { .. } => "TRANSIENT_FAILURE",
            SendOutcome::RateLimited { .. } => "RATE_LIMITED",
            SendOutcome::Ambiguous { .. } => "AMBIGUOUS",
        }
    }
}

/// Why a call other than a send failed (a health probe, a template listing).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CallError {
    pub code: String,
    pub message: String,
}

impl CallError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl From<SendOutcome> for CallError {
    /// The failure a classified outcome describes (a call that was answered but not with
    /// success, or that was not answered at all).
    fn from(outcome: SendOutcome) -> Self {
        match outcome {
            SendOutcome::PermanentFailure { code, message }
            | SendOutcome::TransientFailure { code, message }
            | SendOutcome::RateLimited { code, message, .. } => Self { code, message },
            SendOutcome::Ambiguous { message } => Self::new("NO_ANSWER", message),
            SendOutcome::Accepted { .. } => Self::new("UNEXPECTED", "the call was accepted"),
        }
    }
}

/// A provider's settings, opened for use. Its `Debug` shows which credentials are set, never
/// their values.
#[derive(Clone)]
pub struct ProviderSettings {
    pub provider_id: Uuid,
    pub kind: ProviderKind,
    pub config: Map<String, Value>,
    pub credentials: Map<String, Value>,
}

impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let credentials: Vec<&str> = self.credentials.keys().map(String::as_str).collect();
        f.debug_struct("ProviderSettings")
            .field("provider_id", &self.provider_id)
            .field("kind", &self.kind)
            .field("config", &self.config)
            .field("credentials", &format_args!("{credentials:?} (redacted)"))
            .finish()
    }
}

impl ProviderSettings {
    /// A non-empty `config` string, trimmed.
    pub fn config_str(&self, key: &str) -> Option<&str> {
        non_empty(self.config.get(key))
    }

    /// A non-empty `credentials` string, trimmed.
    pub fn credential_str(&self, key: &str) -> Option<&str> {
        non_empty(self.credentials.get(key))
    }

    /// `config.base_url` without a trailing slash, or `default`.
    pub fn base_url(&self, default: &str) -> String {
        self.config_str("base_url")
            .unwrap_or(default)
            .trim_end_matches('/')
            .to_owned()
    }

    pub(crate) fn require_config(&self, key: &str) -> anyhow::Result<String> {
        self.config_str(key)
            .map(str::to_owned)
            .with_context(|| format!("config.{key} is required for {}", self.kind))
    }

    pub(crate) fn require_credential(&self, key: &str) -> anyhow::Result<String> {
        self.credential_str(key)
            .map(str::to_owned)
            .with_context(|| format!("credentials.{key} is required for {}", self.kind))
    }
}

fn non_empty(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Builds the client for one provider from its opened settings. Fails when a setting the kind
/// needs is missing or unusable (for FCM, a service account key that does not parse).
pub fn build_client(
    settings: &ProviderSettings,
    http: reqwest::Client,
) -> anyhow::Result<Arc<dyn ProviderClient>> {
    Ok(match settings.kind {
        ProviderKind::Twilio => Arc::new(twilio::TwilioClient::new(settings, http)?),
        ProviderKind::MetaWhatsapp => {
            Arc::new(meta_whatsapp::MetaWhatsappClient::new(settings, http)?)
        }
        ProviderKind::Vonage => Arc::new(vonage::VonageClient::new(settings, http)?),
        ProviderKind::AwsSns => Arc::new(aws_sns::SnsClient::new(settings, http)?),
        ProviderKind::Sendgrid => Arc::new(sendgrid::SendgridClient::new(settings, http)?),
        ProviderKind::AwsSes => Arc::new(aws_ses::SesClient::new(settings, http)?),
        ProviderKind::Fcm => Arc::new(fcm::FcmClient::new(settings, http)?),
        ProviderKind::Sandbox => Arc::new(sandbox::SandboxClient::new(settings)?),
    })
}

/// The outcome for a message on a channel the provider does not carry (routing should never
/// pick such a provider).
pub(crate) fn unsupported_channel(kind: ProviderKind, channel: Channel) -> SendOutcome {
    SendOutcome::PermanentFailure {
        code: "UNSUPPORTED_CHANNEL".into(),
        message: format!("{kind} does not carry {channel} messages"),
    }
}

/// A client for one configured provider.
#[async_trait]
pub trait ProviderClient: Send + Sync {
    fn kind(&self) -> ProviderKind;

    /// Makes one send call and classifies its outcome.
    async fn send(&self, message: &OutboundMessage) -> SendOutcome;

    /// Makes one cheap authenticated call that sends nothing, to learn whether the provider
    /// answers and accepts the credentials (the health job probes open circuits with it).
    async fn probe(&self) -> Result<(), CallError>;

    /// Asks the provider whether it took `message` since `since` (after an ambiguous outcome,
    /// before any resend). Providers without such a look-up answer `Unsupported`.
    async fn lookup(&self, _message: &OutboundMessage, _since: DateTime<Utc>) -> Lookup {
        Lookup::Unsupported
    }
}

/// What a provider's look-up found of a message we may have sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// It took the message: this is its id.
    Found { provider_message_id: String },
    /// It has no such message: a resend cannot duplicate it.
    NotFound,
    /// The provider offers no look-up.
    Unsupported,
    /// The look-up itself failed.
    Failed(String),
}
