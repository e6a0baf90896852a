//! SES events carried in SNS notifications (configuration-set event publishing, `eventType`;
//! identity notifications, `notificationType`, read the same way).
//!
//! The message is found by `mail.tags.message_id` (our id, set as an `EmailTags` entry at
//! send time), else by `mail.messageId` = the stored provider message id.
//! - Delivery → DELIVERED (at `delivery.timestamp`); Open and Click → READ;
//! - Bounce → UNDELIVERED with `bounceType:bounceSubType` as error code and the first
//!   recipient's `diagnosticCode`; a Permanent bounce also opts every bounced recipient out of
//!   EMAIL with source BOUNCE;
//! - Complaint → an EMAIL opt-out of source COMPLAINT for every complaining recipient;
//! - Reject and Rendering Failure → FAILED;
//! - Send, DeliveryDelay and the rest change nothing.
//!
//! The identity is the SNS `MessageId` of the notification.

use serde_json::Value;

use super::{Action, Event, MessageRef, OptOutReport, StatusChange};
use crate::domain::Channel;
use crate::domain::MessageStatus;
use crate::domain::ids::MessageId;
use crate::domain::opt_out::OptOutSource;

fn time(value: Option<&Value>) -> Option<chrono::DateTime<chrono::Utc>> {
    value
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// Our id in `mail.tags` (a list of values per tag in event publishing, a string otherwise).
fn tagged_message_id(mail: &Value) -> Option<uuid::Uuid> {
    let tag = mail.pointer("/tags/message_id")?;
    let value = match tag {
        Value::Array(values) => values.first()?.as_str()?,
        Value::String(s) => s.as_str(),
        _ => return None,
    };
    MessageId::parse(value).map(|m| m.uuid())
}

fn recipients(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r.get("emailAddress").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

/// The event an SES notification describes, or `None` when it is not one we act on.
pub(super) fn event(sns_message_id: &str, message: &str) -> Option<Event> {
    let event: Value = serde_json::from_str(message).ok()?;
    let kind = str_at(&event, "/eventType").or_else(|| str_at(&event, "/notificationType"))?;
    let mail = event.get("mail").unwrap_or(&Value::Null);
    let mut change = StatusChange::default();
    let mut opt_outs = Vec::new();
    let opt_out = |recipient: String, source: OptOutSource, reason: String| OptOutReport {
        recipient: Some(recipient),
        channel: Channel::Email,
        source,
        reason,
    };
    match kind {
        "Delivery" => {
            change.status = Some(MessageStatus::Delivered);
            change.at = time(event.pointer("/delivery/timestamp"));
        }
        "Open" | "Click" => change.status = Some(MessageStatus::Read),
        "Bounce" => {
            let bounce = event.get("bounce").unwrap_or(&Value::Null);
            let ty = str_at(bounce, "/bounceType").unwrap_or("Undetermined");
            let sub = str_at(bounce, "/bounceSubType").unwrap_or("Undetermined");
            change.status = Some(MessageStatus::Undelivered);
            change.error_code = Some(format!("{ty}:{sub}"));
            change.error_message = str_at(bounce, "/bouncedRecipients/0/diagnosticCode")
                .map(str::to_owned)
                .or_else(|| Some(format!("SES reported a {ty} bounce ({sub})")));
            change.at = time(bounce.get("timestamp"));
            if ty == "Permanent" {
                for r in recipients(bounce.get("bouncedRecipients")) {
                    let reason = format!("permanent bounce ({sub})");
                    opt_outs.push(opt_out(r, OptOutSource::Bounce, reason));
                }
            }
        }
        "Complaint" => {
            let complaint = event.get("complaint").unwrap_or(&Value::Null);
            let feedback = str_at(complaint, "/complaintFeedbackType").unwrap_or("abuse");
            for r in recipients(complaint.get("complainedRecipients")) {
                let reason = format!("complaint ({feedback})");
                opt_outs.push(opt_out(r, OptOutSource::Complaint, reason));
            }
        }
        "Reject" | "Rendering Failure" => {
            change.status = Some(MessageStatus::Failed);
            change.error_code = Some(kind.replace(' ', "_").to_ascii_uppercase());
            change.error_message = str_at(&event, "/reject/reason")
                .or_else(|| str_at(&event, "/failure/errorMessage"))
                .map(str::to_owned);
        }
        _ => return None,
    }
    Some(Event {
        key: format!("sns:{sns_message_id}"),
        action: Action::Message {
            message: MessageRef {
                message_id: tagged_message_id(mail),
                provider_message_id: str_at(mail, "/messageId").map(str::to_owned),
            },
            change,
            opt_outs,
        },
    })
}
