//! `eventzr.notify.transactional.requested.v1`: another service asks for a send. The event's
//! `data` is the body of `POST /cpaas/v1/messages` plus `tenantId` (or the tenant in `subject`),
//! and it is accepted exactly as the API accepts a send: validation, templates, opt-outs and
//! providers, the message and its `communication.requested` event in one transaction. The event
//! id becomes the message's `source_event_id`, so the same event never makes two messages.
//! Requests from the platform's own services are not subject to the per-tenant send limits.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde_json::Value;

use super::{Consumed, record, tenant_of};
use crate::db::schema::consumed_events;
use crate::db::{DbError, DbPool};
use crate::error::ApiError;
use crate::messages::accept::{self, SendRequest};
use crate::outbox::CloudEvent;

fn send_request(data: &Value) -> Result<SendRequest, String> {
    let mut body = data.as_object().cloned().unwrap_or_default();
    body.remove("tenantId");
    serde_json::from_value(Value::Object(body)).map_err(|e| e.to_string())
}

/// Handles one event; safe to call again with the same event.
pub async fn handle(pool: &DbPool, event: &CloudEvent) -> anyhow::Result<Consumed> {
    let mut conn = pool.get().await.map_err(DbError::from)?;
    let tenant = tenant_of(event);
    conn.transaction::<_, ApiError, _>(async |conn| {
        let Some(tenant) = tenant else {
            return Ok(
                if record(conn, event, None, "rejected", Some("no tenantId")).await? {
                    Consumed::Done {
                        outcome: "rejected",
                        detail: Some("no tenantId".into()),
                    }
                } else {
                    Consumed::Duplicate
                },
            );
        };
        let send = send_request(&event.data)
            .map_err(|e| ApiError::invalid_field("data", e))
            .and_then(|r| accept::validate(r, chrono::Utc::now()))
            .map(|s| s.from_event(&event.id));
        let refused = |e: &ApiError| format!("{}: {}", e.code.as_str(), e.message);
        if let Err(e) = &send {
            let detail = refused(e);
            return Ok(
                if record(conn, event, Some(tenant), "rejected", Some(&detail)).await? {
                    tracing::warn!(event_id = %event.id, %detail, "consumed send request refused");
                    Consumed::Done {
                        outcome: "rejected",
                        detail: Some(detail),
                    }
                } else {
                    Consumed::Duplicate
                },
            );
        }
        if !record(conn, event, Some(tenant), "accepted", None).await? {
            return Ok(Consumed::Duplicate);
        }
        let result = accept::accept(conn, tenant, vec![send]).await?;
        match result.into_iter().next() {
            Some(Ok(message)) => Ok(Consumed::Done {
                outcome: "accepted",
                detail: Some(crate::domain::ids::MessageId::from_uuid(message.id).to_string()),
            }),
            Some(Err(e)) => {
                let detail = refused(&e);
                diesel::update(consumed_events::table.find(&event.id))
                    .set((
                        consumed_events::outcome.eq("rejected"),
                        consumed_events::detail.eq(&detail),
                    ))
                    .execute(conn)
                    .await?;
                tracing::warn!(event_id = %event.id, %detail, "consumed send request refused");
                Ok(Consumed::Done {
                    outcome: "rejected",
                    detail: Some(detail),
                })
            }
            None => Ok(Consumed::Duplicate),
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))
}
