//! The SANDBOX provider's delivery reports. A sandbox message that was SENT is reported
//! DELIVERED (or UNDELIVERED, at `undelivered_rate`) once its provider's `delivery_delay_ms`
//! has passed, through the same status path as a real provider's callback: forward-only, with
//! `communication.delivered` / `communication.failed` and the webhook fan-out that follows.
//! The message row itself says which reports are due, so a restart between the send and the
//! report loses nothing; a report applied twice changes nothing the second time.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::status::{EventOutcome, apply_report};
use super::{CallbackError, MessageRef, Source, StatusChange};
use crate::db::providers::Provider;
use crate::db::schema::providers;
use crate::db::{DbPool, messages, tx};
use crate::domain::MessageStatus;
use crate::providers::registry::ProviderRegistry;
use crate::providers::sandbox;

/// Reports at most `limit` due sandbox deliveries; counts what each did.
pub async fn report_due(
    pool: &DbPool,
    registry: &ProviderRegistry,
    limit: i64,
) -> Result<BTreeMap<String, i64>, CallbackError> {
    let mut conn = pool.get().await?;
    let due = messages::due_sandbox_reports(&mut conn, limit).await?;
    let mut counts: BTreeMap<String, i64> = ["due", "delivered", "undelivered", "unchanged"]
        .into_iter()
        .map(|k| (k.to_owned(), 0))
        .collect();
    counts.insert("due".into(), due.len() as i64);
    if due.is_empty() {
        return Ok(counts);
    }
    let ids: Vec<Uuid> = due.iter().map(|d| d.provider_id).collect();
    let rows: Vec<Provider> = providers::table
        .filter(providers::id.eq_any(&ids))
        .select(Provider::as_select())
        .load(&mut conn)
        .await?;
    let mut sources: HashMap<Uuid, Source> = HashMap::new();
    for row in rows {
        let settings = registry.settings(&row)?;
        sources.insert(
            row.id,
            Source {
                provider: row,
                settings,
            },
        );
    }
    for report in due {
        let Some(source) = sources.get(&report.provider_id) else {
            continue;
        };
        let undelivered = sandbox::report(&source.settings);
        let change = StatusChange {
            status: Some(match undelivered {
                None => MessageStatus::Delivered,
                Some(_) => MessageStatus::Undelivered,
            }),
            error_message: undelivered
                .as_ref()
                .map(|_| "the sandbox reported the message undelivered".to_owned()),
            error_code: undelivered,
            ..StatusChange::default()
        };
        let reference = MessageRef {
            message_id: Some(report.message_id),
            provider_message_id: None,
        };
        let (outcome, _) = tx::run(&mut conn, async |conn| {
            apply_report(conn, source, &reference, &change, &[]).await
        })
        .await?;
        let key = match (outcome, change.status) {
            (EventOutcome::Applied, Some(MessageStatus::Delivered)) => "delivered",
            (EventOutcome::Applied, _) => "undelivered",
            _ => "unchanged",
        };
        *counts.entry(key.into()).or_default() += 1;
    }
    Ok(counts)
}
