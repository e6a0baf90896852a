//! The sandbox provider: nothing leaves the process.
//!
//! Each send fails permanently with probability `failure_rate` (0 to 1, default 0) and code
//! `failure_code` (default `SANDBOX_FAILURE`); otherwise it is accepted with id
//! `sbx_<uuid>`, reporting no price (the price table's is recorded). `delivery_delay_ms` after
//! acceptance the sandbox reports the message DELIVERED, or UNDELIVERED with probability `undelivered_rate` and code
//! `undelivered_code` (default `SANDBOX_UNDELIVERED`): [`report`] decides, and
//! `callbacks::sandbox` applies it through the callback status path (the delay is compared in
//! the query that finds due reports, `db::messages::due_sandbox_reports`).
//! Echo field: none is needed, the id is ours. A probe always succeeds.

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

use super::{CallError, OutboundMessage, ProviderClient, ProviderSettings, SendOutcome};
use crate::domain::ProviderKind;

const DEFAULT_FAILURE_CODE: &str = "SANDBOX_FAILURE";

/// A provider that answers from memory.
pub struct SandboxClient {
    failure_rate: f64,
    failure_code: String,
}

impl SandboxClient {
    /// Reads `failure_rate` and `failure_code`; both are optional.
    pub fn new(settings: &ProviderSettings) -> anyhow::Result<Self> {
        let failure_rate = match settings.config.get("failure_rate") {
            None | Some(Value::Null) => 0.0,
            Some(value) => value
                .as_f64()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    anyhow::anyhow!("config.failure_rate must be a number between 0 and 1")
                })?,
        };
        Ok(Self {
            failure_rate,
            failure_code: settings
                .config_str("failure_code")
                .unwrap_or(DEFAULT_FAILURE_CODE)
                .to_owned(),
        })
    }
}

const DEFAULT_UNDELIVERED_CODE: &str = "SANDBOX_UNDELIVERED";

/// The sandbox's delivery report of one accepted message: `None` for delivered, else the
/// undelivered error code (with probability `undelivered_rate`).
pub fn report(settings: &ProviderSettings) -> Option<String> {
    let rate = settings
        .config
        .get("undelivered_rate")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    (rate > 0.0 && rand::random::<f64>() < rate).then(|| {
        settings
            .config_str("undelivered_code")
            .unwrap_or(DEFAULT_UNDELIVERED_CODE)
            .to_owned()
    })
}

#[async_trait]
impl ProviderClient for SandboxClient {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Sandbox
    }

    async fn send(&self, message: &OutboundMessage) -> SendOutcome {
        if self.failure_rate > 0.0 && rand::random::<f64>() < self.failure_rate {
            return SendOutcome::PermanentFailure {
                code: self.failure_code.clone(),
                message: format!(
                    "the sandbox failed {} on purpose (failure_rate {})",
                    message.message_id, self.failure_rate
                ),
            };
        }
        SendOutcome::Accepted {
            provider_message_id: format!("sbx_{}", Uuid::new_v4().simple()),
            price: None,
        }
    }

    async fn probe(&self) -> Result<(), CallError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;
    use crate::domain::Channel;

    fn client(config: Value) -> SandboxClient {
        let Value::Object(config) = config else {
            unreachable!()
        };
        SandboxClient::new(&ProviderSettings {
            provider_id: Uuid::now_v7(),
            kind: ProviderKind::Sandbox,
            config,
            credentials: Map::new(),
        })
        .unwrap()
    }

    fn message() -> OutboundMessage {
        OutboundMessage {
            message_id: "msg_1".into(),
            tenant_id: Uuid::now_v7(),
            channel: Channel::Sms,
            recipient: "+14155550100".into(),
            subject: None,
            body: "hi".into(),
            html_body: None,
            reply_to: None,
            provider_template: None,
            metadata: Value::Null,
            status_callback_url: None,
            validity: None,
            media: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_sandbox_without_failures_accepts_reporting_no_price() {
        match client(json!({})).send(&message()).await {
            SendOutcome::Accepted {
                provider_message_id,
                price,
            } => {
                assert!(provider_message_id.starts_with("sbx_"));
                assert_eq!(price, None, "the price table's is recorded");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_sandbox_that_always_fails_names_its_code() {
        let client = client(json!({"failure_rate": 1.0, "failure_code": "NOPE"}));
        match client.send(&message()).await {
            SendOutcome::PermanentFailure { code, .. } => assert_eq!(code, "NOPE"),
            other => panic!("{other:?}"),
        }
    }
}
