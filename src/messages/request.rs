//! The body of a send, as `POST /cpaas/v1/messages` (and each item of a bulk request) and the
//! consumed `notify.transactional.requested` event carry it. `accept::validate` turns it into a
//! `ValidSend`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::domain::Priority;

/// A send request, as the API and the consumed event carry it.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// SMS, WHATSAPP, EMAIL, PUSH or VOICE.
    #[schema(example = "SMS")]
    pub channel: String,
    /// E.164 phone number, e-mail address or device token, by channel.
    #[schema(example = "+14155552671")]
    pub recipient: String,
    /// The text to send; or use a template. For EMAIL, the plain-text part (not escaped;
    /// derived from `html_body` when left out).
    pub message_body: Option<String>,
    /// EMAIL only: the HTML part, sent as is beside the plain-text one.
    pub html_body: Option<String>,
    /// EMAIL only: the Reply-To address.
    pub reply_to: Option<String>,
    /// A template by id (`tpl_…`).
    pub template_id: Option<String>,
    /// A template by name (with `locale`, default `en`).
    pub template_name: Option<String>,
    pub locale: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub template_variables: Option<Map<String, Value>>,
    /// E-mail subject (overrides the template's).
    pub subject: Option<String>,
    /// Send through this provider only (`prv_…`).
    pub provider_id: Option<String>,
    /// Send later (at most 35 days ahead); a time in the past sends now.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Up to 4 KiB of JSON, returned with the message and its events.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// `high` (one-time codes, transactional), `normal` or `bulk`: higher lanes are delivered
    /// first. Default `normal`, and `bulk` for the items of `POST /messages/bulk`.
    #[schema(value_type = Option<Priority>)]
    pub priority: Option<String>,
    /// Validity window, 1 to 604800 seconds (7 days) from when the message is due (now, or
    /// `scheduled_at`): a message not handed to a provider within it ends FAILED with
    /// `EXPIRED`. What is left of it is passed to providers that take one (Twilio
    /// `ValidityPeriod`, Vonage `ttl`, FCM's Android `ttl` and APNs expiration).
    #[schema(example = 300)]
    pub ttl_secs: Option<i64>,
    /// Up to 3 further steps, tried in turn when the one before ends FAILED or UNDELIVERED,
    /// or has not reached DELIVERED within the next step's `after_secs`. DELIVERED (or READ)
    /// ends the chain.
    pub fallback: Option<Vec<FallbackStep>>,
    /// Pictures and files by URL: an MMS (SMS through Twilio; up to 10), one WhatsApp image,
    /// video, audio or document, e-mail attachments (up to 10, fetched when the message is
    /// sent, 5 MiB each and 10 MiB in all), one push notification image. With media the text
    /// may be left out (it is the caption where the channel shows one).
    pub media: Option<Vec<crate::domain::media::MediaRequest>>,
}

/// One fallback step of a send. `recipient` defaults to the send's when the channels share an
/// address kind (SMS, WHATSAPP and VOICE take phone numbers); the content defaults to the
/// send's `message_body`, or to its `template_name` (with its `locale` and variables) on this
/// step's channel.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FallbackStep {
    #[schema(example = "SMS")]
    pub channel: String,
    pub recipient: Option<String>,
    #[serde(alias = "body", alias = "messageBody")]
    pub message_body: Option<String>,
    /// EMAIL only.
    pub subject: Option<String>,
    /// EMAIL only.
    #[serde(alias = "htmlBody")]
    pub html_body: Option<String>,
    #[serde(alias = "templateId")]
    pub template_id: Option<String>,
    #[serde(alias = "templateName")]
    pub template_name: Option<String>,
    pub locale: Option<String>,
    #[serde(alias = "variables")]
    #[schema(value_type = Option<Object>)]
    pub template_variables: Option<Map<String, Value>>,
    /// Start this step when the step before has not reached DELIVERED this many seconds
    /// (1 to 604800) after it was started, even though it has not failed. A step before that
    /// was not yet handed to a provider by then is cancelled.
    #[serde(alias = "afterSecs")]
    #[schema(example = 60)]
    pub after_secs: Option<i64>,
}
