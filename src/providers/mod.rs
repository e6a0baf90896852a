//! Provider adapters: one client per provider kind, each speaking the provider's real wire
//! format against a configurable base URL. An adapter makes exactly one call per `send` and
//! never retries by itself; it classifies what happened so delivery can decide.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::{Channel, ProviderKind};

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
    pub body: String,
    /// A provider-side template (WhatsApp): its name, language and ordered body parameters.
    pub provider_template: Option<ProviderTemplate>,
    pub metadata: Value,
    /// Where the provider should post status callbacks for this message, when it takes one.
    pub status_callback_url: Option<String>,
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
        cost_usd_micros: Option<i64>,
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

/// A provider's settings, opened for use.
#[derive(Clone, Debug)]
pub struct ProviderSettings {
    pub provider_id: Uuid,
    pub kind: ProviderKind,
    pub config: Map<String, Value>,
    pub credentials: Map<String, Value>,
}

/// A client for one configured provider.
#[async_trait]
pub trait ProviderClient: Send + Sync {
    fn kind(&self) -> ProviderKind;

    /// Makes one send call and classifies its outcome.
    async fn send(&self, message: &OutboundMessage) -> SendOutcome;
}
