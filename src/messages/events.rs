//! The lifecycle events of a message (requested, sent, delivered, failed, cancelled, provider
//! failover, fallback), with the platform's keys. Acceptance, delivery, callbacks and chains
//! all build them here.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::db::messages::Message;
use crate::domain::ids::{MessageId, TemplateId};
use crate::outbox::{CloudEvent, OutboxEvent, topics};

fn cost(message: &Message) -> Value {
    message
        .cost_usd_micros
        .map(|m| json!(m as f64 / 1_000_000.0))
        .unwrap_or(Value::Null)
}

/// Every lifecycle event of a message carries its `metadata` (when it has any), notify-svc's
/// `notificationId` (when it was sent for one), its fallback chain's `chainId` (the id of
/// the chain's first message, when it is in one), and an SMS's `encoding` and `segments`.
fn event(message: &Message, topic: &str, mut data: Value) -> OutboxEvent {
    if let (Some(encoding), Some(segments)) = (&message.encoding, message.segments) {
        data["encoding"] = json!(encoding);
        data["segments"] = json!(segments);
    }
    if let Some(chain) = message.chain_id {
        data["chainId"] = json!(MessageId::from_uuid(chain).to_string());
    }
    if let Some(id) = &message.notification_id {
        data["notificationId"] = json!(id);
    }
    if message.metadata.as_object().is_some_and(|m| !m.is_empty()) {
        data["metadata"] = message.metadata.clone();
    }
    OutboxEvent {
        aggregate_type: "message",
        aggregate_id: message.id,
        tenant_id: Some(message.tenant_id),
        event: CloudEvent::new(topic, message.tenant_id, data),
        lane: message.priority.lane(),
    }
}

fn base(message: &Message) -> Value {
    json!({
        "tenantId": message.tenant_id,
        "messageId": MessageId::from_uuid(message.id).to_string(),
        "channel": message.channel,
        "recipient": message.recipient,
        "status": message.status,
        "provider": message.provider_kind,
        "cost_usd": cost(message),
        "attempts": message.attempts,
    })
}

/// `communication.sent`
pub fn sent(message: &Message) -> OutboxEvent {
    let mut data = base(message);
    data["providerMessageId"] = json!(message.provider_message_id);
    event(message, topics::COMMUNICATION_SENT, data)
}

/// `communication.delivered`
pub fn delivered(message: &Message) -> OutboxEvent {
    let mut data = base(message);
    data["providerMessageId"] = json!(message.provider_message_id);
    event(message, topics::COMMUNICATION_DELIVERED, data)
}

/// `communication.failed`
pub fn failed(message: &Message) -> OutboxEvent {
    let mut data = base(message);
    data["providerMessageId"] = json!(message.provider_message_id);
    data["errorCode"] = json!(message.error_code);
    data["errorMessage"] = json!(message.error_message);
    event(message, topics::COMMUNICATION_FAILED, data)
}

/// `communication.cancelled`
pub fn cancelled(message: &Message) -> OutboxEvent {
    event(message, topics::COMMUNICATION_CANCELLED, base(message))
}

/// `provider.failover`
pub fn failover(
    message: &Message,
    from: (Uuid, &str),
    to: (Uuid, &str),
    reason: &str,
) -> OutboxEvent {
    let data = json!({
        "tenantId": message.tenant_id,
        "messageId": MessageId::from_uuid(message.id).to_string(),
        "channel": message.channel,
        "fromProvider": from.1,
        "fromProviderId": crate::domain::ProviderId::from_uuid(from.0).to_string(),
        "toProvider": to.1,
        "toProviderId": crate::domain::ProviderId::from_uuid(to.0).to_string(),
        "reason": reason,
    });
    event(message, topics::PROVIDER_FAILOVER, data)
}

/// `communication.fallback`: the chain moved from `from` to its next step, `next`.
pub fn fallback(from: &Message, next: &Message, step: i16, reason: &str) -> OutboxEvent {
    let mut data = json!({
        "tenantId": from.tenant_id,
        "messageId": MessageId::from_uuid(from.id).to_string(),
        "nextMessageId": MessageId::from_uuid(next.id).to_string(),
        "fromChannel": from.channel,
        "toChannel": next.channel,
        "reason": reason,
        "step": step,
    });
    if let Some(code) = &from.error_code {
        data["errorCode"] = json!(code);
    }
    event(from, topics::COMMUNICATION_FALLBACK, data)
}

/// The `communication.requested` event of a newly accepted message.
pub fn requested(message: &Message) -> OutboxEvent {
    let message_id = MessageId::from_uuid(message.id).to_string();
    let mut data = json!({
        "tenantId": message.tenant_id,
        "messageId": message_id,
        "channel": message.channel,
        "recipient": message.recipient,
        "status": message.status,
        "provider": null,
        "cost_usd": null,
    });
    if let Some(at) = message.scheduled_at {
        data["scheduledAt"] = json!(crate::domain::time::format(&at));
    }
    if let Some(t) = message.template_id {
        data["templateId"] = json!(TemplateId::from_uuid(t).to_string());
    }
    event(message, topics::COMMUNICATION_REQUESTED, data)
}
