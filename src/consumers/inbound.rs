//! `eventzr.cpaas.sms.inbound.v1`, consumed: inbound messages that reach the platform through
//! another service (a shared short code, an inbound-number gateway) and are published on the
//! same topic honour the stop and start words exactly as the provider callbacks do.
//!
//! The event's `data` carries `tenantId` (or the tenant is the CloudEvent `subject`), `from`,
//! `body` and optionally `channel` (SMS, the default, or WHATSAPP). Events this service
//! published itself (`source` = `cpaas-orchestrator-svc`) had their keyword applied in the
//! callback's own transaction and are only recorded. Each event id is recorded once in
//! `consumed_events`, in the same transaction as the opt-out change, so a redelivery changes
//! nothing.

use diesel_async::AsyncConnection;

use super::{Consumed, record, tenant_of};
use crate::callbacks::keywords::{KeywordAction, apply_keyword, classify};
use crate::db::{DbError, DbPool};
use crate::domain::PhoneNumber;
use crate::outbox::CloudEvent;
use crate::outbox::event::SOURCE;

/// What an event asks for, decided before any write.
enum Plan {
    Own,
    Rejected(String),
    NoKeyword,
    Keyword {
        sender: PhoneNumber,
        channel: &'static str,
        word: String,
        action: KeywordAction,
    },
}

fn plan(event: &CloudEvent) -> Plan {
    if event.source == SOURCE {
        return Plan::Own;
    }
    let channel = match event.data["channel"].as_str().unwrap_or("SMS") {
        "SMS" => "SMS",
        "WHATSAPP" => "WHATSAPP",
        other => return Plan::Rejected(format!("channel {other:?} takes no keywords")),
    };
    let Some(body) = event.data["body"].as_str() else {
        return Plan::Rejected("data.body is missing".into());
    };
    let Some((word, action)) = classify(body) else {
        return Plan::NoKeyword;
    };
    let from = event.data["from"].as_str().unwrap_or_default();
    match PhoneNumber::parse(from) {
        Ok(sender) => Plan::Keyword {
            sender,
            channel,
            word,
            action,
        },
        Err(e) => Plan::Rejected(format!("data.from {from:?} is not a phone number: {e}")),
    }
}

/// Handles one event; safe to call again with the same event.
pub async fn handle(pool: &DbPool, event: &CloudEvent) -> anyhow::Result<Consumed> {
    let tenant = tenant_of(event);
    let plan = match tenant {
        None => Plan::Rejected("no tenantId".into()),
        Some(_) => plan(event),
    };
    let mut conn = pool.get().await.map_err(DbError::from)?;
    let consumed = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let (outcome, detail) = match &plan {
                Plan::Own => ("own_event", None),
                Plan::Rejected(reason) => ("rejected", Some(reason.clone())),
                Plan::NoKeyword => ("no_keyword", None),
                Plan::Keyword { action, word, .. } => (
                    match action {
                        KeywordAction::OptOut => "opted_out",
                        KeywordAction::OptIn => "opted_in",
                    },
                    Some(word.clone()),
                ),
            };
            if !record(conn, event, tenant, outcome, detail.as_deref()).await? {
                return Ok(Consumed::Duplicate);
            }
            if let (
                Some(tenant),
                Plan::Keyword {
                    sender,
                    channel,
                    word,
                    action,
                },
            ) = (tenant, &plan)
            {
                apply_keyword(conn, tenant, sender, channel, word, *action).await?;
            }
            Ok(Consumed::Done { outcome, detail })
        })
        .await?;
    if let Consumed::Done {
        outcome: "rejected",
        detail,
    } = &consumed
    {
        tracing::warn!(event_id = %event.id, ?detail, "consumed inbound message refused");
    }
    Ok(consumed)
}
