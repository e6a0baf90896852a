//! CloudEvents 1.0 envelopes and the topics this service publishes and consumes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Topic names (the event `type`, and the NATS subject).
pub mod topics {
    pub const COMMUNICATION_REQUESTED: &str = "eventzr.cpaas.communication.requested.v1";
    pub const COMMUNICATION_SENT: &str = "eventzr.cpaas.communication.sent.v1";
    pub const COMMUNICATION_DELIVERED: &str = "eventzr.cpaas.communication.delivered.v1";
    pub const COMMUNICATION_FAILED: &str = "eventzr.cpaas.communication.failed.v1";
    pub const COMMUNICATION_CANCELLED: &str = "eventzr.cpaas.communication.cancelled.v1";
    pub const COMMUNICATION_FALLBACK: &str = "eventzr.cpaas.communication.fallback.v1";
    pub const PROVIDER_FAILOVER: &str = "eventzr.cpaas.provider.failover.v1";
    pub const SMS_INBOUND: &str = "eventzr.cpaas.sms.inbound.v1";
    pub const WEBHOOK_DISABLED: &str = "eventzr.cpaas.webhook.disabled.v1";
    pub const NOTIFY_TRANSACTIONAL_REQUESTED: &str = "eventzr.notify.transactional.requested.v1";

    /// Every topic this service publishes.
    pub const PUBLISHED: &[&str] = &[
        COMMUNICATION_REQUESTED,
        COMMUNICATION_SENT,
        COMMUNICATION_DELIVERED,
        COMMUNICATION_FAILED,
        COMMUNICATION_CANCELLED,
        COMMUNICATION_FALLBACK,
        PROVIDER_FAILOVER,
        SMS_INBOUND,
        WEBHOOK_DISABLED,
    ];
}

/// The `source` of every event this service emits.
pub const SOURCE: &str = "cpaas-orchestrator-svc";

/// A CloudEvent in JSON form.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CloudEvent {
    pub specversion: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub source: String,
    pub id: String,
    pub time: String,
    pub datacontenttype: String,
    pub subject: String,
    pub data: Value,
}

impl CloudEvent {
    /// A new event of `topic` about `tenant_id`, with a time-ordered id.
    pub fn new(topic: &str, tenant_id: Uuid, data: Value) -> Self {
        Self::at(topic, tenant_id, data, Uuid::now_v7(), Utc::now())
    }

    /// An event with a given id and time.
    pub fn at(topic: &str, tenant_id: Uuid, data: Value, id: Uuid, time: DateTime<Utc>) -> Self {
        Self {
            specversion: "1.0".into(),
            ty: topic.into(),
            source: SOURCE.into(),
            id: format!("evt-{id}"),
            time: crate::domain::time::format(&time),
            datacontenttype: "application/json".into(),
            subject: tenant_id.to_string(),
            data,
        }
    }

    /// The UUID inside the `evt-` id.
    pub fn uuid(&self) -> Uuid {
        self.id
            .strip_prefix("evt-")
            .and_then(|u| Uuid::parse_str(u).ok())
            .unwrap_or_else(Uuid::now_v7)
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_is_a_cloudevent_1_0_with_an_evt_id() {
        let tenant = Uuid::now_v7();
        let e = CloudEvent::new(
            topics::COMMUNICATION_REQUESTED,
            tenant,
            json!({"messageId": "msg_1"}),
        );
        let v = e.to_value();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], topics::COMMUNICATION_REQUESTED);
        assert_eq!(v["source"], SOURCE);
        assert_eq!(v["subject"], tenant.to_string());
        assert_eq!(v["datacontenttype"], "application/json");
        assert!(v["id"].as_str().unwrap().starts_with("evt-"));
        assert_eq!(format!("evt-{}", e.uuid()), e.id);
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }
}
