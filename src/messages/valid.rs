//! A send request checked on its own, without the database: channel, recipient, content,
//! schedule, metadata and priority parsed into a [`ValidSend`] (`accept.rs` then checks it
//! against the tenant's data).

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::ids::TemplateId;
use crate::domain::media::{self, MediaItem};
use crate::domain::recipient::{EmailAddress, Recipient};
use crate::domain::{Channel, PlanTier, Priority, ProviderId};
use crate::error::{ApiError, ErrorCode};

use super::fallback::{Defaults, ValidStep, validate_steps};
use super::request::SendRequest;

/// The longest validity window a send may ask for (7 days).
const MAX_TTL_SECS: i64 = 7 * 24 * 3600;
/// Longest accepted SMS body, in characters (Twilio's limit).
pub const SMS_MAX_CHARS: usize = 1600;
/// Longest accepted body of any other channel, in bytes.
pub const BODY_MAX_BYTES: usize = 64 * 1024;
/// Largest `metadata`, serialised.
pub const METADATA_MAX_BYTES: usize = 4096;
/// How far ahead a message may be scheduled.
pub const MAX_SCHEDULE_DAYS: i64 = 35;

pub(super) enum Content {
    Text {
        subject: Option<String>,
        body: String,
        html_body: Option<String>,
    },
    Template {
        by: TemplateKey,
        variables: Map<String, Value>,
        subject: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum TemplateKey {
    Id(Uuid),
    Name { name: String, locale: String },
}

/// A send request whose every field is valid on its own.
pub struct ValidSend {
    pub(super) channel: Channel,
    pub(super) recipient: Recipient,
    pub(super) content: Content,
    pub(super) pinned: Option<Uuid>,
    pub(super) scheduled_at: Option<DateTime<Utc>>,
    pub(super) metadata: Map<String, Value>,
    pub(super) source_event_id: Option<String>,
    pub(super) notification_id: Option<String>,
    pub(super) reply_to: Option<String>,
    /// `None`: the default of the path it came by.
    pub(super) priority: Option<Priority>,
    /// The validity window, from when the message is due.
    pub(super) ttl: Option<Duration>,
    /// The steps to fall back on, in order.
    pub(super) fallback: Vec<ValidStep>,
    /// The plan tier the later steps are checked against (the caller's).
    pub(super) plan_tier: PlanTier,
    pub(super) media: Vec<MediaItem>,
}

impl ValidSend {
    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// Whether it goes in the high lane.
    pub fn is_urgent(&self) -> bool {
        self.priority == Some(Priority::High)
    }

    /// The channels of its fallback steps, in order.
    pub fn fallback_channels(&self) -> impl Iterator<Item = Channel> + '_ {
        self.fallback.iter().map(|s| s.send.channel)
    }

    /// Records the caller's plan tier, which its fallback steps are checked against.
    pub fn with_plan_tier(mut self, tier: PlanTier) -> Self {
        self.plan_tier = tier;
        self
    }

    /// Gives the send `priority` unless it asked for one.
    pub fn with_default_priority(mut self, priority: Priority) -> Self {
        self.priority.get_or_insert(priority);
        self
    }
}

fn empty_body() -> ApiError {
    ApiError::new(ErrorCode::EmptyMessageBody, "the message body is empty")
}

pub(super) fn check_body(channel: Channel, body: &str) -> Result<(), ApiError> {
    if body.trim().is_empty() {
        return Err(empty_body());
    }
    if channel == Channel::Sms && body.chars().count() > SMS_MAX_CHARS {
        return Err(ApiError::invalid_field(
            "message_body",
            format!("an SMS body is at most {SMS_MAX_CHARS} characters"),
        ));
    }
    if body.len() > BODY_MAX_BYTES {
        return Err(ApiError::invalid_field(
            "message_body",
            "the body is at most 64 KiB",
        ));
    }
    Ok(())
}

/// Parses a request into domain types; no database involved. Media URLs must be `https://` on
/// public hosts.
pub fn validate(req: SendRequest, now: DateTime<Utc>) -> Result<ValidSend, ApiError> {
    validate_with(req, now, false)
}

/// [`validate`], letting media URLs point at internal hosts over plain http when
/// `allow_internal_media` (development only).
pub fn validate_with(
    mut req: SendRequest,
    now: DateTime<Utc>,
    allow_internal_media: bool,
) -> Result<ValidSend, ApiError> {
    let fallback = req.fallback.take().map(|steps| (Defaults::of(&req), steps));
    let media_requested = req.media.take().unwrap_or_default();
    let channel: Channel = req
        .channel
        .parse()
        .map_err(|e: String| ApiError::new(ErrorCode::InvalidChannel, e))?;
    let recipient = Recipient::parse(channel, &req.recipient)?;
    if req.subject.is_some() && channel != Channel::Email {
        return Err(ApiError::invalid_field(
            "subject",
            "only e-mail messages have a subject",
        ));
    }
    if channel != Channel::Email {
        for (field, given) in [
            ("html_body", req.html_body.is_some()),
            ("reply_to", req.reply_to.is_some()),
        ] {
            if given {
                return Err(ApiError::invalid_field(
                    field,
                    format!("is only for EMAIL messages, not {channel}"),
                ));
            }
        }
    }
    let reply_to = req
        .reply_to
        .as_deref()
        .map(|r| {
            EmailAddress::parse(r.trim())
                .map(|a| a.as_str().to_owned())
                .map_err(|e| ApiError::invalid_field("reply_to", e))
        })
        .transpose()?;
    let template_given = req.template_id.is_some() || req.template_name.is_some();
    let html_body = req.html_body.filter(|h| !h.trim().is_empty());
    if html_body.as_ref().is_some_and(|h| h.len() > BODY_MAX_BYTES) {
        return Err(ApiError::invalid_field(
            "html_body",
            "the body is at most 64 KiB",
        ));
    }
    if html_body.is_some() && template_given {
        return Err(ApiError::invalid_field(
            "html_body",
            "give either html_body or a template, not both",
        ));
    }
    // An e-mail with an HTML part may leave its plain-text part to be derived from it, and a
    // send with media its text altogether.
    let message_body = match (req.message_body, &html_body) {
        (None, Some(html)) => Some(crate::templates::html_to_text(html)),
        (None, None) if !media_requested.is_empty() && !template_given => Some(String::new()),
        (body, _) => body,
    };
    let has_text = template_given || message_body.as_deref().is_some_and(|b| !b.is_empty());
    let media = media::check(channel, media_requested, has_text, allow_internal_media)
        .map_err(|e| ApiError::validation(vec![e]))?;
    let content = match (message_body, template_given) {
        (Some(_), true) => {
            return Err(ApiError::invalid_field(
                "message_body",
                "give either message_body or a template, not both",
            ));
        }
        (Some(body), false) => {
            if !body.is_empty() || media.is_empty() {
                check_body(channel, &body)?;
            }
            if channel == Channel::Email
                && req.subject.as_deref().is_none_or(|s| s.trim().is_empty())
            {
                return Err(ApiError::invalid_field(
                    "subject",
                    "an e-mail needs a subject",
                ));
            }
            Content::Text {
                subject: req.subject,
                body,
                html_body,
            }
        }
        (None, true) => {
            let by = match (req.template_id, req.template_name) {
                (Some(_), Some(_)) => {
                    return Err(ApiError::invalid_field(
                        "template_id",
                        "give template_id or template_name, not both",
                    ));
                }
                (Some(id), None) => TemplateKey::Id(
                    TemplateId::parse(&id)
                        .ok_or_else(|| {
                            ApiError::new(ErrorCode::TemplateNotFound, "template not found")
                        })?
                        .uuid(),
                ),
                (None, Some(name)) => TemplateKey::Name {
                    name,
                    locale: req.locale.unwrap_or_else(|| "en".into()),
                },
                (None, None) => return Err(empty_body()),
            };
            Content::Template {
                by,
                variables: req.template_variables.unwrap_or_default(),
                subject: req.subject,
            }
        }
        (None, false) => return Err(empty_body()),
    };
    let pinned = req
        .provider_id
        .map(|p| {
            ProviderId::parse(&p)
                .map(|id| id.uuid())
                .ok_or_else(|| ApiError::invalid_field("provider_id", "not a provider id (prv_…)"))
        })
        .transpose()?;
    if let Some(at) = req.scheduled_at
        && at > now + Duration::days(MAX_SCHEDULE_DAYS)
    {
        return Err(ApiError::invalid_field(
            "scheduled_at",
            format!("at most {MAX_SCHEDULE_DAYS} days ahead"),
        ));
    }
    let priority = req
        .priority
        .as_deref()
        .map(|p| p.parse::<Priority>())
        .transpose()
        .map_err(|e| ApiError::invalid_field("priority", e))?;
    let ttl = match req.ttl_secs {
        None => None,
        Some(secs @ 1..=MAX_TTL_SECS) => Some(Duration::seconds(secs)),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "ttl_secs",
                format!("must be 1 to {MAX_TTL_SECS} seconds"),
            ));
        }
    };
    let metadata = req.metadata.unwrap_or_default();
    if serde_json::to_vec(&metadata)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
        > METADATA_MAX_BYTES
    {
        return Err(ApiError::invalid_field("metadata", "at most 4 KiB of JSON"));
    }
    let fallback = match fallback {
        Some((defaults, steps)) => validate_steps(&defaults, steps, now)?,
        None => Vec::new(),
    };
    Ok(ValidSend {
        channel,
        recipient,
        content,
        pinned,
        scheduled_at: req.scheduled_at.filter(|at| *at > now),
        metadata,
        source_event_id: None,
        notification_id: None,
        reply_to,
        priority,
        ttl,
        fallback,
        plan_tier: PlanTier::Free,
        media,
    })
}

impl ValidSend {
    /// Marks the send as coming from a consumed event, for de-duplication.
    pub fn from_event(mut self, event_id: &str) -> Self {
        self.source_event_id = Some(event_id.to_owned());
        self
    }

    /// Records notify-svc's id of the notification this send is for.
    pub fn for_notification(mut self, notification_id: Option<String>) -> Self {
        self.notification_id = notification_id;
        self
    }
}
