//! Accepting messages: the same path for `POST /messages`, `POST /messages/bulk` and the
//! consumed `notify.transactional.requested` event. Input is parsed into domain types first
//! (no database), then checked against the tenant's templates, opt-outs and providers, then
//! inserted with one `communication.requested` event per message, in the caller's transaction.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use diesel_async::AsyncPgConnection;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::db::messages::{self as db, Message, NewMessage};
use crate::domain::MessageStatus;
use crate::domain::ids::TemplateId;
use crate::domain::recipient::{EmailAddress, Recipient};
use crate::domain::{Channel, Priority, ProviderId};
use crate::error::{ApiError, ErrorCode};
use crate::outbox::{self, OutboxEvent};
use crate::templates::{self, TemplateRef};

pub use super::request::SendRequest;

/// Longest accepted SMS body, in characters (Twilio's limit).
pub const SMS_MAX_CHARS: usize = 1600;
/// Longest accepted body of any other channel, in bytes.
pub const BODY_MAX_BYTES: usize = 64 * 1024;
/// Largest `metadata`, serialised.
pub const METADATA_MAX_BYTES: usize = 4096;
/// How far ahead a message may be scheduled.
pub const MAX_SCHEDULE_DAYS: i64 = 35;

enum Content {
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
enum TemplateKey {
    Id(Uuid),
    Name { name: String, locale: String },
}

/// A send request whose every field is valid on its own.
pub struct ValidSend {
    channel: Channel,
    recipient: Recipient,
    content: Content,
    pinned: Option<Uuid>,
    scheduled_at: Option<DateTime<Utc>>,
    metadata: Map<String, Value>,
    source_event_id: Option<String>,
    notification_id: Option<String>,
    reply_to: Option<String>,
    /// `None`: the default of the path it came by.
    priority: Option<Priority>,
}

impl ValidSend {
    pub fn channel(&self) -> Channel {
        self.channel
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

fn check_body(channel: Channel, body: &str) -> Result<(), ApiError> {
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

/// Parses a request into domain types; no database involved.
pub fn validate(req: SendRequest, now: DateTime<Utc>) -> Result<ValidSend, ApiError> {
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
    // An e-mail with an HTML part may leave its plain-text part to be derived from it.
    let message_body = match (req.message_body, &html_body) {
        (None, Some(html)) => Some(crate::templates::html_to_text(html)),
        (body, _) => body,
    };
    let content = match (message_body, template_given) {
        (Some(_), true) => {
            return Err(ApiError::invalid_field(
                "message_body",
                "give either message_body or a template, not both",
            ));
        }
        (Some(body), false) => {
            check_body(channel, &body)?;
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
    let metadata = req.metadata.unwrap_or_default();
    if serde_json::to_vec(&metadata)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
        > METADATA_MAX_BYTES
    {
        return Err(ApiError::invalid_field("metadata", "at most 4 KiB of JSON"));
    }
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

/// Checks valid sends against the tenant's data and inserts the acceptable ones with their
/// events. Must run inside a transaction. Returns one result per input, in order.
pub async fn accept(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    sends: Vec<Result<ValidSend, ApiError>>,
) -> Result<Vec<Result<Message, ApiError>>, ApiError> {
    let now = Utc::now();
    let recipients: Vec<String> = sends
        .iter()
        .flatten()
        .map(|s| s.recipient.normalized().to_owned())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let opted = crate::db::opt_outs::opted_out(conn, tenant_id, recipients).await?;
    let mut providers: HashMap<Channel, Vec<Uuid>> = HashMap::new();
    let mut template_cache: HashMap<(TemplateKey, Channel), Option<crate::templates::Template>> =
        HashMap::new();

    let mut prepared: Vec<Result<NewMessage, ApiError>> = Vec::with_capacity(sends.len());
    for send in sends {
        let send = match send {
            Ok(s) => s,
            Err(e) => {
                prepared.push(Err(e));
                continue;
            }
        };
        let outcome = prepare(
            conn,
            tenant_id,
            send,
            now,
            &opted,
            &mut providers,
            &mut template_cache,
        )
        .await?;
        prepared.push(outcome);
    }

    let rows: Vec<NewMessage> = prepared
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let inserted = db::insert_messages(conn, &rows).await?;
    let events: Vec<OutboxEvent> = inserted.iter().map(super::events::requested).collect();
    outbox::enqueue(conn, &events).await?;

    let mut inserted = inserted.into_iter();
    Ok(prepared
        .into_iter()
        .map(|p| match p {
            Ok(_) => inserted.next().ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("fewer rows inserted than prepared"))
            }),
            Err(e) => Err(e),
        })
        .collect())
}

/// One send's checks; `Ok(Err(_))` is this send's refusal, `Err(_)` aborts the whole call.
async fn prepare(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    send: ValidSend,
    now: DateTime<Utc>,
    opted: &HashSet<(String, String)>,
    providers: &mut HashMap<Channel, Vec<Uuid>>,
    template_cache: &mut HashMap<(TemplateKey, Channel), Option<crate::templates::Template>>,
) -> Result<Result<NewMessage, ApiError>, ApiError> {
    let channel = send.channel;
    let (subject, body, html_body, template_id, template_version) = match send.content {
        Content::Text {
            subject,
            body,
            html_body,
        } => (subject, body, html_body, None, None),
        Content::Template {
            by,
            variables,
            subject,
        } => {
            let key = (by.clone(), channel);
            if !template_cache.contains_key(&key) {
                let found = match &by {
                    TemplateKey::Id(id) => {
                        templates::find_template(conn, tenant_id, TemplateRef::Id(*id)).await?
                    }
                    TemplateKey::Name { name, locale } => {
                        templates::find_template(
                            conn,
                            tenant_id,
                            TemplateRef::Name {
                                name,
                                channel,
                                locale,
                            },
                        )
                        .await?
                    }
                };
                template_cache.insert(key.clone(), found);
            }
            let Some(template) = template_cache.get(&key).and_then(Option::as_ref) else {
                return Ok(Err(ApiError::new(
                    ErrorCode::TemplateNotFound,
                    "template not found",
                )));
            };
            if template.channel != channel.as_str() {
                return Ok(Err(ApiError::invalid_field(
                    "template_id",
                    format!("the template is for {}, not {channel}", template.channel),
                )));
            }
            if !template.is_approved() {
                return Ok(Err(ApiError::new(
                    ErrorCode::TemplateNotApproved,
                    format!("the template is {}, not APPROVED", template.status),
                )));
            }
            let rendered = match templates::render(template, &variables) {
                Ok(r) => r,
                Err(e) => return Ok(Err(e.into())),
            };
            if let Err(e) = check_body(channel, &rendered.body) {
                return Ok(Err(e));
            }
            let subject = subject.or(rendered.subject);
            if channel == Channel::Email && subject.as_deref().is_none_or(|s| s.trim().is_empty()) {
                return Ok(Err(ApiError::invalid_field(
                    "subject",
                    "an e-mail needs a subject",
                )));
            }
            (
                subject,
                rendered.body,
                rendered.html_body,
                Some(template.id),
                Some(template.version),
            )
        }
    };
    let recipient = send.recipient.normalized().to_owned();
    if opted.contains(&(recipient.clone(), channel.as_str().to_owned()))
        || opted.contains(&(recipient.clone(), "ALL".to_owned()))
    {
        return Ok(Err(ApiError::new(
            ErrorCode::RecipientOptedOut,
            format!("{recipient} has opted out of {channel}"),
        )));
    }
    let available = match providers.entry(channel) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => {
            e.insert(db::active_providers_for(conn, tenant_id, channel.as_str()).await?)
        }
    };
    let usable = match send.pinned {
        Some(pinned) => available.contains(&pinned),
        None => !available.is_empty(),
    };
    if !usable {
        return Ok(Err(ApiError::new(
            ErrorCode::NoProviderConfigured,
            match send.pinned {
                Some(p) => format!(
                    "provider {} is not an active {channel} provider of this tenant",
                    ProviderId::from_uuid(p)
                ),
                None => format!("no active provider is configured for {channel}"),
            },
        )));
    }
    let status = if send.scheduled_at.is_some() {
        MessageStatus::Scheduled
    } else {
        MessageStatus::Queued
    };
    Ok(Ok(NewMessage {
        id: Uuid::now_v7(),
        tenant_id,
        channel,
        recipient,
        status,
        subject,
        body,
        template_id,
        template_version,
        pinned_provider_id: send.pinned,
        metadata: Value::Object(send.metadata),
        source_event_id: send.source_event_id,
        notification_id: send.notification_id,
        html_body,
        reply_to: send.reply_to,
        priority: send.priority.unwrap_or_default(),
        scheduled_at: send.scheduled_at,
        created_at: now,
        updated_at: now,
    }))
}
