//! Accepting messages: the same path for `POST /messages`, `POST /messages/bulk` and the
//! consumed `notify.transactional.requested` event. Input is parsed into domain types first
//! (no database, `valid.rs`), then checked against the tenant's templates, opt-outs and
//! providers, then inserted with one `communication.requested` event per message: in the
//! caller's transaction (`accept`), or for a single send by one statement that checks and
//! inserts and needs no transaction (`accept_one`).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SubsecRound, Utc};
use diesel_async::AsyncPgConnection;
use serde_json::Value;
use uuid::Uuid;

use super::render::{Rendered, TemplateCache, render};
use crate::db::chains::{self, NewChainStep, StepSpec};
use crate::db::messages::{self as db, Message, NewMessage};
use crate::domain::MessageStatus;
use crate::domain::provider_kind::serves_country;
use crate::domain::recipient::country_of;
use crate::domain::{Channel, ProviderId};
use crate::error::{ApiError, ErrorCode};
use crate::outbox::{self, OutboxEvent};

pub use super::request::SendRequest;
pub use super::valid::{
    BODY_MAX_BYTES, MAX_SCHEDULE_DAYS, METADATA_MAX_BYTES, SMS_MAX_CHARS, ValidSend, validate,
    validate_with,
};

/// Checks valid sends against the tenant's data and inserts the acceptable ones with their
/// events. Must run inside a transaction. Returns one result per input, in order.
pub async fn accept(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    sends: Vec<Result<ValidSend, ApiError>>,
) -> Result<Vec<Result<Message, ApiError>>, ApiError> {
    let (prepared, chain_steps) = prepare_all(conn, tenant_id, sends).await?;
    let rows: Vec<NewMessage> = prepared
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let inserted = db::insert_messages(conn, &rows).await?;
    chains::insert_steps(conn, &chain_steps).await?;
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

/// What accepting `sends` would insert, writing nothing: each checked against the tenant's
/// templates, opt-outs and providers as [`accept`] checks it, in order. A chain's later steps
/// are left out (they become messages only if they are needed).
pub async fn preview(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    sends: Vec<Result<ValidSend, ApiError>>,
) -> Result<Vec<Result<Message, ApiError>>, ApiError> {
    let (prepared, _) = prepare_all(conn, tenant_id, sends).await?;
    Ok(prepared
        .into_iter()
        .map(|p| p.map(|row| row.as_inserted()))
        .collect())
}

/// Every send's checks against the tenant's data, looked up once for them all: the rows to
/// insert (or each send's refusal), and the steps of their chains.
async fn prepare_all(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    sends: Vec<Result<ValidSend, ApiError>>,
) -> Result<(Vec<Result<NewMessage, ApiError>>, Vec<NewChainStep>), ApiError> {
    let now = Utc::now();
    let recipients: Vec<String> = sends
        .iter()
        .flatten()
        .map(|s| s.recipient.normalized().to_owned())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let channels: Vec<Channel> = sends
        .iter()
        .flatten()
        .map(ValidSend::channel)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let (opted, providers) = lookups(conn, tenant_id, recipients, channels).await?;
    let mut template_cache = TemplateCache::new();
    let mut prepared: Vec<Result<NewMessage, ApiError>> = Vec::with_capacity(sends.len());
    let mut chain_steps: Vec<NewChainStep> = Vec::new();
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
            Some((&opted, &providers)),
            &mut template_cache,
        )
        .await?;
        prepared.push(outcome.map(|(row, steps)| {
            chain_steps.extend(steps);
            row
        }));
    }
    Ok((prepared, chain_steps))
}

/// Accepts one send in as few round trips as it allows: its template, if it names one, is
/// read first; then one statement checks the recipient's opt-outs and the tenant's providers
/// and, if they allow it, inserts the message and its `communication.requested` event. That
/// statement is atomic on its own, so the caller needs no transaction (inside one it works the
/// same). A send with fallback steps writes them too, so it needs the caller's transaction.
pub async fn accept_one(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    send: ValidSend,
) -> Result<Result<Message, ApiError>, ApiError> {
    if !send.fallback.is_empty() {
        return accept(conn, tenant_id, vec![Ok(send)])
            .await?
            .pop()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no result for the one send")));
    }
    // The database keeps microseconds: the answer and the event show what it stores.
    let now = Utc::now().trunc_subsecs(6);
    let row = match prepare(conn, tenant_id, send, now, None, &mut TemplateCache::new()).await? {
        Ok((row, _)) => row,
        Err(refused) => return Ok(Err(refused)),
    };
    insert_checked(conn, &row).await
}

/// Inserts a prepared message with its `communication.requested` event in one statement, if
/// the recipient's opt-outs and the tenant's providers allow it (see [`accept_one`]).
pub(super) async fn insert_checked(
    conn: &mut AsyncPgConnection,
    row: &NewMessage,
) -> Result<Result<Message, ApiError>, ApiError> {
    let message = row.as_inserted();
    let event = super::events::requested(&message);
    let checked = db::insert_checked_message(
        conn,
        row,
        db::EventRow {
            id: event.event.uuid(),
            aggregate_type: event.aggregate_type,
            topic: &event.event.ty,
            payload: event.event.to_value(),
            lane: event.lane,
        },
    )
    .await?;
    if let Some(refused) = refusal(
        &row.recipient,
        row.channel,
        row.pinned_provider_id,
        checked.opted_out,
        checked.usable,
    ) {
        return Ok(Err(refused));
    }
    if !checked.inserted {
        return Err(ApiError::internal(anyhow::anyhow!(
            "the checked insert wrote nothing though nothing refused it"
        )));
    }
    Ok(Ok(message))
}

/// An SMS body's encoding and segments as it is (a provider's smart encoding may change them
/// when it is sent); nothing for other channels.
pub(super) fn sms_shape(channel: Channel, body: &str) -> (Option<String>, Option<i32>) {
    if channel != Channel::Sms {
        return (None, None);
    }
    let shape = crate::domain::sms::segment(body);
    (
        Some(shape.encoding.as_str().to_owned()),
        Some(shape.segments),
    )
}

/// Why a send to `recipient` on `channel` is refused, if it is: the recipient opted out (of
/// the channel or of all), or no active provider of the tenant carries the channel (or the
/// pinned provider is not one of them).
fn refusal(
    recipient: &str,
    channel: Channel,
    pinned: Option<Uuid>,
    opted_out: bool,
    usable: bool,
) -> Option<ApiError> {
    if opted_out {
        return Some(ApiError::new(
            ErrorCode::RecipientOptedOut,
            format!("{recipient} has opted out of {channel}"),
        ));
    }
    if !usable {
        // The country is looked up only here: it costs a numbering-plan match.
        let to = match destination(channel, recipient) {
            Some(country) => format!("{channel} to {country}"),
            None if channel.takes_phone_numbers() => {
                format!("{channel} to {recipient} (a number of no single country)")
            }
            None => channel.to_string(),
        };
        return Some(ApiError::new(
            ErrorCode::NoProviderConfigured,
            match pinned {
                Some(p) => format!(
                    "provider {} is not an active provider of this tenant for {to}",
                    ProviderId::from_uuid(p)
                ),
                None => format!("no active provider is configured for {to}"),
            },
        ));
    }
    None
}

/// The ISO 3166 country a message goes to, for the channels that take phone numbers.
pub(super) fn destination(channel: Channel, recipient: &str) -> Option<String> {
    channel
        .takes_phone_numbers()
        .then(|| country_of(recipient))
        .flatten()
}

/// The opt-outs of `recipients` and the active providers of `channels`, in one statement.
async fn lookups(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    recipients: Vec<String>,
    channels: Vec<Channel>,
) -> Result<
    (
        HashSet<(String, String)>,
        HashMap<Channel, Vec<db::ActiveProvider>>,
    ),
    ApiError,
> {
    let names = channels.iter().map(|c| c.as_str().to_owned()).collect();
    let mut found = db::send_lookups(conn, tenant_id, recipients, names).await?;
    let providers = channels
        .into_iter()
        .map(|c| (c, found.providers.remove(c.as_str()).unwrap_or_default()))
        .collect();
    Ok((found.opted_out, providers))
}

/// The opt-outs and providers a batch of sends was looked up against.
type Known<'a> = (
    &'a HashSet<(String, String)>,
    &'a HashMap<Channel, Vec<db::ActiveProvider>>,
);

/// One send's checks; `Ok(Err(_))` is this send's refusal, `Err(_)` aborts the whole call.
/// Without `known` the opt-out and provider checks are left to the statement that inserts it.
/// A send with fallback steps comes back with them rendered, to be inserted beside it.
async fn prepare(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    send: ValidSend,
    now: DateTime<Utc>,
    known: Option<Known<'_>>,
    template_cache: &mut TemplateCache,
) -> Result<Result<(NewMessage, Vec<NewChainStep>), ApiError>, ApiError> {
    let channel = send.channel;
    let Rendered {
        subject,
        body,
        html_body,
        template_id,
        template_version,
    } = match render(conn, tenant_id, channel, send.content, template_cache).await? {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let recipient = send.recipient.normalized().to_owned();
    if let Some((opted, providers)) = known {
        let opted_out = opted.contains(&(recipient.clone(), channel.as_str().to_owned()))
            || opted.contains(&(recipient.clone(), "ALL".to_owned()));
        let country = send.recipient.country();
        let available: Vec<Uuid> = providers
            .get(&channel)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter(|p| serves_country(&p.config, channel, country))
            .map(|p| p.id)
            .collect();
        let usable = match send.pinned {
            Some(pinned) => available.contains(&pinned),
            None => !available.is_empty(),
        };
        if let Some(refused) = refusal(&recipient, channel, send.pinned, opted_out, usable) {
            return Ok(Err(refused));
        }
    }
    let status = if send.scheduled_at.is_some() {
        MessageStatus::Scheduled
    } else {
        MessageStatus::Queued
    };
    let id = Uuid::now_v7();
    let mut steps = Vec::with_capacity(send.fallback.len() + 1);
    for (i, step) in send.fallback.into_iter().enumerate() {
        let step_channel = step.send.channel;
        let rendered = match render(
            conn,
            tenant_id,
            step_channel,
            step.send.content,
            template_cache,
        )
        .await?
        {
            Ok(r) => r,
            Err(e) => return Ok(Err(super::fallback::in_step(i, e))),
        };
        let spec = StepSpec {
            recipient: step.send.recipient.normalized().to_owned(),
            subject: rendered.subject,
            body: rendered.body,
            html_body: rendered.html_body,
            reply_to: step.send.reply_to,
            template_id: rendered.template_id,
            template_version: rendered.template_version,
        };
        steps.push(NewChainStep {
            chain_id: id,
            step: i as i16 + 1,
            tenant_id,
            channel: step_channel.as_str().to_owned(),
            state: chains::PENDING,
            message_id: None,
            spec: Some(serde_json::to_value(spec).map_err(ApiError::internal)?),
            after_secs: step.after_secs,
            plan_tier: send.plan_tier.as_str().to_owned(),
            // The first step waits on the message itself, from when it is due.
            due_at: (i == 0)
                .then(|| {
                    step.after_secs.map(|secs| {
                        send.scheduled_at.unwrap_or(now) + chrono::Duration::seconds(secs.into())
                    })
                })
                .flatten(),
        });
    }
    if !steps.is_empty() {
        steps.insert(
            0,
            NewChainStep {
                chain_id: id,
                step: 0,
                tenant_id,
                channel: channel.as_str().to_owned(),
                state: chains::STARTED,
                message_id: Some(id),
                spec: None,
                after_secs: None,
                plan_tier: send.plan_tier.as_str().to_owned(),
                due_at: None,
            },
        );
    }
    let chain_id = (!steps.is_empty()).then_some(id);
    let (encoding, segments) = sms_shape(channel, &body);
    Ok(Ok((
        NewMessage {
            id,
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
            expires_at: send.ttl.map(|ttl| send.scheduled_at.unwrap_or(now) + ttl),
            scheduled_at: send.scheduled_at,
            created_at: now,
            updated_at: now,
            chain_id,
            encoding,
            segments,
            country: send.recipient.country().map(str::to_owned),
            media: (!send.media.is_empty())
                .then(|| serde_json::to_value(&send.media))
                .transpose()
                .map_err(ApiError::internal)?,
        },
        steps,
    )))
}
