//! Applies a provider's report to one of our messages, inside the caller's transaction: the
//! message is found within the provider's tenant (by our echoed id, else by the provider's
//! message id) and locked, the reported status is applied only when
//! [`MessageStatus::can_move_to`] allows it, and the lifecycle event is enqueued with it.
//!
//! - SENT (a callback that overtook the send's own bookkeeping): `sent_at`,
//!   `communication.sent`.
//! - DELIVERED: `delivered_at`, `communication.delivered`.
//! - READ: `read_at`; when no delivery was reported before (Meta may skip it) also
//!   `delivered_at` and `communication.delivered`, since a read message was delivered.
//! - UNDELIVERED / FAILED: `failed_at`, the provider's error code and message,
//!   `communication.failed`.
//! - A reported cost replaces the estimate; a provider message id fills a missing one.
//!
//! A status the machine refuses (a late SENT after DELIVERED, anything after a terminal state)
//! changes nothing. Opt-outs a report implies (hard bounce, complaint) are recorded whatever
//! the status did: a bounce after a delivery still means the address is dead.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{CallbackError, MessageRef, OptOutReport, Source, StatusChange};
use crate::db::messages::Message;
use crate::db::opt_outs::add_opt_out;
use crate::db::schema::messages;
use crate::domain::MessageStatus;
use crate::domain::Recipient;
use crate::domain::opt_out::OptOutSource;
use crate::messages::events;
use crate::outbox::{self, OutboxEvent};

/// What one event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventOutcome {
    /// Something changed.
    Applied,
    /// Understood, but nothing needed to change (or the status machine refused it).
    Unchanged,
    /// No message of the provider's tenant matches.
    Unmatched,
}

impl EventOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            EventOutcome::Applied => "APPLIED",
            EventOutcome::Unchanged => "UNCHANGED",
            EventOutcome::Unmatched => "UNMATCHED",
        }
    }
}

/// The columns a transition sets; `None` leaves a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = messages)]
struct Transition {
    status: Option<String>,
    updated_at: Option<DateTime<Utc>>,
    sent_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    read_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
    error_code: Option<String>,
    error_message: Option<String>,
    cost_usd_micros: Option<i64>,
    cost_currency: Option<String>,
    cost_amount_micros: Option<i64>,
    provider_message_id: Option<String>,
    next_attempt_at: Option<Option<DateTime<Utc>>>,
}

/// Applies one report; returns what it did and the message it concerned.
pub async fn apply_report(
    conn: &mut AsyncPgConnection,
    source: &Source,
    reference: &MessageRef,
    change: &StatusChange,
    opt_outs: &[OptOutReport],
) -> Result<(EventOutcome, Option<Uuid>), CallbackError> {
    let message = find_message(conn, source, reference).await?;
    let mut changed = false;
    if let (Some(message), Some(target)) = (&message, change.status) {
        changed = transition(conn, message, target, reference, change).await?;
    }
    for report in opt_outs {
        // A bounce or complaint counts only for a message this provider sent: a report naming
        // no such message is someone else's (or forged), and must not silence an address.
        if message.is_none()
            && matches!(
                report.source,
                OptOutSource::Bounce | OptOutSource::Complaint
            )
        {
            continue;
        }
        let raw = report
            .recipient
            .as_deref()
            .or(message.as_ref().map(|m| m.recipient.as_str()));
        let Some(recipient) = raw.and_then(|r| Recipient::parse(report.channel, r).ok()) else {
            continue;
        };
        let (_, created) = add_opt_out(
            conn,
            source.tenant_id(),
            recipient.normalized(),
            report.channel.as_str(),
            report.source.as_str(),
            Some(&report.reason),
        )
        .await?;
        changed |= created;
    }
    let outcome = match (&message, changed) {
        (_, true) => EventOutcome::Applied,
        (Some(_), false) => EventOutcome::Unchanged,
        (None, false) if !opt_outs.is_empty() => EventOutcome::Unchanged,
        (None, false) => EventOutcome::Unmatched,
    };
    Ok((outcome, message.map(|m| m.id)))
}

/// The message a report names, locked, within the provider's tenant and sent through this
/// provider.
async fn find_message(
    conn: &mut AsyncPgConnection,
    source: &Source,
    reference: &MessageRef,
) -> QueryResult<Option<Message>> {
    let scoped = || {
        messages::table
            .filter(messages::tenant_id.eq(source.tenant_id()))
            .filter(messages::provider_id.eq(source.provider.id))
            .select(Message::as_select())
            .for_update()
    };
    if let Some(id) = reference.message_id
        && let Some(found) = scoped()
            .filter(messages::id.eq(id))
            .first(conn)
            .await
            .optional()?
    {
        return Ok(Some(found));
    }
    match &reference.provider_message_id {
        Some(provider_id) => scoped()
            .filter(messages::provider_message_id.eq(provider_id))
            .first(conn)
            .await
            .optional(),
        None => Ok(None),
    }
}

/// Moves the message to `target` when the status machine allows it; returns whether it did.
async fn transition(
    conn: &mut AsyncPgConnection,
    message: &Message,
    target: MessageStatus,
    reference: &MessageRef,
    change: &StatusChange,
) -> Result<bool, CallbackError> {
    let current = message.status;
    if !current.can_move_to(target) {
        return Ok(false);
    }
    let now = Utc::now();
    let at = change.at.unwrap_or(now);
    let failure = matches!(target, MessageStatus::Failed | MessageStatus::Undelivered);
    let mut set = Transition {
        status: Some(target.as_str().to_owned()),
        updated_at: Some(now),
        cost_usd_micros: change.cost_usd_micros,
        cost_currency: change
            .cost_usd_micros
            .and(change.price.as_ref())
            .map(|p| p.currency.clone()),
        cost_amount_micros: change
            .cost_usd_micros
            .and(change.price.as_ref())
            .map(|p| p.micros),
        provider_message_id: message
            .provider_message_id
            .is_none()
            .then(|| reference.provider_message_id.clone())
            .flatten(),
        next_attempt_at: (current == MessageStatus::Queued).then_some(None),
        ..Default::default()
    };
    if !failure && message.sent_at.is_none() {
        set.sent_at = Some(at);
    }
    match target {
        MessageStatus::Delivered => set.delivered_at = Some(at),
        MessageStatus::Read => {
            set.read_at = Some(at);
            if message.delivered_at.is_none() {
                set.delivered_at = Some(at);
            }
        }
        MessageStatus::Failed | MessageStatus::Undelivered => {
            set.failed_at = Some(at);
            set.error_code = Some(
                change
                    .error_code
                    .clone()
                    .unwrap_or_else(|| target.as_str().to_owned()),
            );
            set.error_message = Some(
                change
                    .error_message
                    .clone()
                    .unwrap_or_else(|| format!("the provider reported the message {target}")),
            );
        }
        _ => {}
    }
    let updated: Message = diesel::update(messages::table.find(message.id))
        .set(&set)
        .returning(Message::as_returning())
        .get_result(conn)
        .await?;
    let mut emitted: Vec<OutboxEvent> = Vec::new();
    if set.sent_at.is_some() {
        emitted.push(events::sent(&updated));
    }
    if set.delivered_at.is_some() {
        emitted.push(events::delivered(&updated));
    }
    if failure {
        emitted.push(events::failed(&updated));
    }
    outbox::enqueue(conn, &emitted).await?;
    Ok(true)
}
