//! What a provider is handed for one attempt.

use super::policy::DeliveryPolicy;
use crate::db::messages::Message;
use crate::db::providers::Provider;
use crate::domain::ids::MessageId;
use crate::domain::provider_kind::SMART_ENCODING;
use crate::domain::{Channel, ProviderId, ProviderKind};
use crate::providers::OutboundMessage;

/// The callback path segment of the kinds whose send call names a status callback URL.
fn callback_kind(kind: ProviderKind) -> Option<&'static str> {
    match kind {
        ProviderKind::Twilio => Some("twilio"),
        ProviderKind::Vonage => Some("vonage"),
        _ => None,
    }
}

/// The body as the provider gets it: an SMS through a provider with `config.smart_encoding`
/// has its look-alike characters replaced so it stays GSM-7.
pub(super) fn sent_body(message: &Message, provider: &Provider) -> String {
    let smart = provider.config.get(SMART_ENCODING) == Some(&serde_json::Value::Bool(true));
    if message.channel == Channel::Sms && smart {
        crate::domain::sms::smart_encode(&message.body)
    } else {
        message.body.clone()
    }
}

/// The provider's view of a message being sent.
pub fn outbound(
    policy: &DeliveryPolicy,
    message: &Message,
    provider: &Provider,
) -> OutboundMessage {
    let kind: Option<ProviderKind> = provider.kind.parse().ok();
    let status_callback_url = match (&policy.public_base_url, kind.and_then(callback_kind)) {
        (Some(base), Some(kind)) => Some(format!(
            "{base}/cpaas/v1/provider-callbacks/{kind}/{}",
            ProviderId::from_uuid(provider.id)
        )),
        _ => None,
    };
    OutboundMessage {
        message_id: MessageId::from_uuid(message.id).to_string(),
        tenant_id: message.tenant_id,
        channel: message.channel,
        recipient: message.recipient.clone(),
        subject: message.subject.clone(),
        body: sent_body(message, provider),
        html_body: message.html_body.clone(),
        reply_to: message.reply_to.clone(),
        provider_template: None,
        metadata: message.metadata.clone(),
        status_callback_url,
        validity: message
            .expires_at
            .and_then(|at| (at - chrono::Utc::now()).to_std().ok()),
        media: message
            .media
            .as_ref()
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or_default(),
    }
}
