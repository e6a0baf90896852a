//! Provider callbacks: delivery receipts, inbound messages and template status updates posted
//! by providers to `POST /cpaas/v1/provider-callbacks/{kind}/{provider_id}`.
//!
//! What every callback goes through (see [`ingest`]):
//! 1. the provider named by the path must exist and be of the path's kind (else not found);
//! 2. the provider's own signature is checked on the raw request against its stored
//!    credentials (one module per provider says exactly how);
//! 3. the raw request (headers and body) is stored under its identity at the provider before
//!    anything is applied; a request already processed is answered as a duplicate;
//! 4. its events are applied in one transaction: each claims its own identity first
//!    (PROVIDERS.md §2.8 keys), then moves the message through the forward-only status machine
//!    with the matching outbox event, records opt-outs, inbound messages and template statuses.
//!
//! Guarantees: a replayed callback changes nothing; a late or repeated status never moves a
//! message back; every lookup is scoped to the provider's tenant.

pub mod aws_sns;
pub mod ingest;
pub mod keywords;
pub mod meta_whatsapp;
pub mod sandbox;
pub mod sendgrid;
mod ses;
pub(crate) mod signing;
pub mod status;
pub mod templates;
pub mod twilio;
pub mod vonage;

use std::sync::Arc;

use actix_web::http::header::HeaderMap;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::{AppEnv, Settings};
use crate::db::providers::Provider;
use crate::domain::MessageStatus;
use crate::domain::opt_out::OptOutSource;
use crate::domain::{Channel, ProviderKind};
use crate::providers::ProviderSettings;
use crate::providers::registry::ProviderRegistry;

pub use ingest::{Receipt, Reply};

/// The `{kind}` path segment of a callback URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackKind {
    Twilio,
    MetaWhatsapp,
    Sendgrid,
    Vonage,
    AwsSns,
}

impl CallbackKind {
    /// Parses the lower-case, dash form (`meta-whatsapp`).
    pub fn from_segment(segment: &str) -> Option<Self> {
        Some(match segment {
            "twilio" => Self::Twilio,
            "meta-whatsapp" => Self::MetaWhatsapp,
            "sendgrid" => Self::Sendgrid,
            "vonage" => Self::Vonage,
            "aws-sns" => Self::AwsSns,
            _ => return None,
        })
    }

    /// Whether a provider of `kind` posts to this route. SES publishes its events through SNS,
    /// so the `aws-sns` route serves AWS_SES providers as well.
    pub fn accepts(self, kind: ProviderKind) -> bool {
        matches!(
            (self, kind),
            (Self::Twilio, ProviderKind::Twilio)
                | (Self::MetaWhatsapp, ProviderKind::MetaWhatsapp)
                | (Self::Sendgrid, ProviderKind::Sendgrid)
                | (Self::Vonage, ProviderKind::Vonage)
                | (Self::AwsSns, ProviderKind::AwsSns | ProviderKind::AwsSes)
        )
    }
}

/// The request exactly as received.
pub struct RawCallback<'a> {
    /// The path and, when present, `?` and the query string, undecoded.
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl RawCallback<'_> {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The decoded query parameters.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        match self.path_and_query.split_once('?') {
            Some((_, query)) => url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
            None => Vec::new(),
        }
    }
}

/// The provider a callback is for, with its opened settings.
pub struct Source {
    pub provider: Provider,
    pub settings: ProviderSettings,
}

impl Source {
    pub fn tenant_id(&self) -> Uuid {
        self.provider.tenant_id
    }
}

/// What a verified callback says.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The request's identity at the provider (a redelivery carries the same).
    pub dedupe_key: String,
    pub events: Vec<Event>,
    /// An SNS subscription to confirm by GET on this URL.
    pub confirm_url: Option<String>,
    /// Answer with an empty TwiML document (Twilio inbound messages), so Twilio sends no reply.
    pub twiml: bool,
}

/// One event inside a callback, with its identity at the provider.
#[derive(Debug)]
pub struct Event {
    pub key: String,
    pub action: Action,
}

/// What an event asks for.
#[derive(Debug)]
pub enum Action {
    /// A report about one of our messages: a status, opt-outs it implies, or both.
    Message {
        message: MessageRef,
        change: StatusChange,
        opt_outs: Vec<OptOutReport>,
    },
    Inbound(InboundMessage),
    TemplateStatus(TemplateStatusUpdate),
}

/// How a report names the message: our id (echoed back) and/or the provider's id.
#[derive(Debug, Default, Clone)]
pub struct MessageRef {
    pub message_id: Option<Uuid>,
    pub provider_message_id: Option<String>,
}

/// A status reported by the provider, already in our terms.
#[derive(Debug, Default, Clone)]
pub struct StatusChange {
    /// `None` when the event only matters for its opt-outs (or is a status we do not track).
    pub status: Option<MessageStatus>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// The price the provider reported, in its currency.
    pub price: Option<crate::pricing::Price>,
    /// That price in US dollars, by the price table's rates (set before it is applied).
    pub cost_usd_micros: Option<i64>,
    /// When it happened at the provider.
    pub at: Option<DateTime<Utc>>,
}

/// An opt-out a report implies (a hard bounce, a spam complaint, an unsubscribe).
#[derive(Debug, Clone)]
pub struct OptOutReport {
    /// The address as the provider gave it; the message's recipient when absent.
    pub recipient: Option<String>,
    pub channel: Channel,
    pub source: OptOutSource,
    pub reason: String,
}

/// A message a recipient sent to one of the tenant's numbers.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub channel: Channel,
    pub from: String,
    pub to: String,
    pub body: String,
    pub provider_message_id: String,
    pub received_at: DateTime<Utc>,
}

/// A WhatsApp template's new status at Meta.
#[derive(Debug, Clone)]
pub struct TemplateStatusUpdate {
    pub name: String,
    pub language: String,
    /// One of our template statuses.
    pub status: &'static str,
    pub reason: Option<String>,
}

/// Why a callback was refused.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    InvalidSignature(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Upstream(String),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Enqueue(#[from] crate::outbox::EnqueueError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<diesel::result::Error> for CallbackError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(crate::db::DbError::Query(e))
    }
}

impl From<crate::db::PoolError> for CallbackError {
    fn from(e: crate::db::PoolError) -> Self {
        Self::Db(crate::db::DbError::Pool(e))
    }
}

/// Shorthand for a refused signature.
pub(crate) fn bad_signature(message: impl Into<String>) -> CallbackError {
    CallbackError::InvalidSignature(message.into())
}

/// Everything callbacks need besides the database: the credential cipher (through a
/// registry), an HTTP client for SNS certificates and subscription confirmations, and the
/// certificate cache.
pub struct Callbacks {
    registry: Arc<ProviderRegistry>,
    http: reqwest::Client,
    certificates: aws_sns::CertificateCache,
    public_base_url: Option<String>,
    /// `config.sns_cert_base_url` is honoured outside production only.
    allow_test_endpoints: bool,
    /// Wakes the drainers after a callback's changes (and their events) commit.
    wakeup: Option<Arc<crate::outbox::Wakeup>>,
    /// Converts the prices providers report into US dollars.
    prices: Arc<crate::pricing::PriceTable>,
}

impl Callbacks {
    pub fn new(
        registry: Arc<ProviderRegistry>,
        settings: &Settings,
        prices: Arc<crate::pricing::PriceTable>,
    ) -> Self {
        Self {
            prices,
            http: registry.http().clone(),
            registry,
            certificates: aws_sns::CertificateCache::default(),
            public_base_url: settings.public_base_url.clone(),
            allow_test_endpoints: settings.app_env != AppEnv::Production,
            wakeup: None,
        }
    }

    /// Wakes the drainers after each callback whose changes committed.
    pub fn with_wakeup(mut self, wakeup: Arc<crate::outbox::Wakeup>) -> Self {
        self.wakeup = Some(wakeup);
        self
    }

    /// Puts the reported prices of a callback's status changes in US dollars; a price in a
    /// currency the table has no rate for is dropped (the price recorded at the send stays).
    fn convert_prices(&self, parsed: &mut Parsed) {
        for event in &mut parsed.events {
            if let Action::Message { change, .. } = &mut event.action
                && let Some(price) = &change.price
            {
                change.cost_usd_micros = self.prices.to_usd(price);
                if change.cost_usd_micros.is_none() {
                    tracing::warn!(currency = %price.currency, "a callback's price is in a currency the price table has no rate for; ignored");
                    change.price = None;
                }
            }
        }
    }

    fn committed_events(&self) {
        if let Some(wakeup) = &self.wakeup {
            wakeup.committed();
        }
    }
}

impl From<CallbackError> for crate::error::ApiError {
    fn from(err: CallbackError) -> Self {
        use crate::error::{ApiError, ErrorCode};
        match err {
            CallbackError::NotFound(resource) => ApiError::not_found(resource),
            CallbackError::InvalidSignature(message) => {
                ApiError::new(ErrorCode::InvalidSignature, message)
            }
            CallbackError::Invalid(message) => ApiError::invalid_field("body", message),
            CallbackError::Upstream(message) => {
                ApiError::new(ErrorCode::ServiceUnavailable, message)
            }
            CallbackError::Db(e) => e.into(),
            CallbackError::Enqueue(e) => e.into(),
            CallbackError::Internal(e) => ApiError::internal(e),
        }
    }
}
