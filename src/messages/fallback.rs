//! The `fallback` steps of a send, checked at accept time as completely as the send itself: each
//! step is merged with the send's defaults (recipient, content) into a send request of its own
//! and validated like one, so a chain that could never be sent is refused with a 400 naming the
//! step (`fallback[1].recipient`). What depends on the tenant's data at the time (opt-outs,
//! providers, the send limit) is checked when the step is started (`chain.rs`).

use serde_json::{Value, json};

use super::request::{FallbackStep, SendRequest};
use super::valid::{ValidSend, validate};
use crate::domain::Channel;
use crate::error::{ApiError, ErrorCode, FieldError};

/// Most fallback steps of one send.
pub const MAX_STEPS: usize = 3;
/// Longest `after_secs` (7 days).
pub const MAX_AFTER_SECS: i64 = 7 * 24 * 3600;

/// A fallback step whose every field is valid on its own.
pub struct ValidStep {
    /// Its channel, recipient and content (nothing else of it is used).
    pub send: ValidSend,
    /// How long the step before may go without DELIVERED before this one starts anyway.
    pub after_secs: Option<i32>,
}

/// What a step inherits from the send it falls back from.
pub(super) struct Defaults {
    channel: Option<Channel>,
    recipient: String,
    /// The send's plain text (derived from its HTML part when it gave only that).
    text: Option<String>,
    html_body: Option<String>,
    subject: Option<String>,
    reply_to: Option<String>,
    template_id: Option<String>,
    template_name: Option<String>,
    locale: Option<String>,
    template_variables: Option<serde_json::Map<String, Value>>,
}

impl Defaults {
    /// Taken from the send before it is validated (it is consumed by validation).
    pub(super) fn of(req: &SendRequest) -> Self {
        Self {
            channel: req.channel.parse().ok(),
            recipient: req.recipient.clone(),
            text: req
                .message_body
                .clone()
                .or_else(|| req.html_body.as_deref().map(crate::templates::html_to_text)),
            html_body: req.html_body.clone(),
            subject: req.subject.clone(),
            reply_to: req.reply_to.clone(),
            template_id: req.template_id.clone(),
            template_name: req.template_name.clone(),
            locale: req.locale.clone(),
            template_variables: req.template_variables.clone(),
        }
    }
}

/// The address kind of a channel: steps of one kind share a recipient.
fn address_kind(channel: Channel) -> &'static str {
    match channel {
        Channel::Sms | Channel::Whatsapp | Channel::Voice => "phone number",
        Channel::Email => "e-mail address",
        Channel::Push => "device token",
    }
}

/// Validates the steps against the send's defaults; the first invalid step's error names it.
pub(super) fn validate_steps(
    defaults: &Defaults,
    steps: Vec<FallbackStep>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<ValidStep>, ApiError> {
    if steps.len() > MAX_STEPS {
        return Err(ApiError::invalid_field(
            "fallback",
            format!("at most {MAX_STEPS} steps, not {}", steps.len()),
        ));
    }
    steps
        .into_iter()
        .enumerate()
        .map(|(i, step)| validate_step(defaults, step, now).map_err(|e| in_step(i, e)))
        .collect()
}

fn validate_step(
    defaults: &Defaults,
    step: FallbackStep,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<ValidStep, ApiError> {
    let channel: Channel = step
        .channel
        .parse()
        .map_err(|e: String| ApiError::new(ErrorCode::InvalidChannel, e))?;
    let after_secs = match step.after_secs {
        None => None,
        Some(secs @ 1..=MAX_AFTER_SECS) => Some(secs as i32),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "after_secs",
                format!("must be 1 to {MAX_AFTER_SECS} seconds"),
            ));
        }
    };
    let same_kind = defaults
        .channel
        .is_some_and(|c| address_kind(c) == address_kind(channel));
    let recipient = match step.recipient {
        Some(r) => r,
        None if same_kind => defaults.recipient.clone(),
        None => {
            return Err(ApiError::invalid_field(
                "recipient",
                format!(
                    "required: a {channel} step needs a {}, the send's recipient is a {}",
                    address_kind(channel),
                    defaults.channel.map_or("different address", address_kind),
                ),
            ));
        }
    };
    let own_content = step.message_body.is_some()
        || step.html_body.is_some()
        || step.template_id.is_some()
        || step.template_name.is_some();
    let both_email = channel == Channel::Email && defaults.channel == Some(Channel::Email);
    let mut req = SendRequest {
        channel: step.channel,
        recipient,
        message_body: step.message_body,
        html_body: step.html_body,
        reply_to: both_email.then(|| defaults.reply_to.clone()).flatten(),
        template_id: step.template_id,
        template_name: step.template_name,
        locale: step.locale,
        template_variables: step
            .template_variables
            .or_else(|| defaults.template_variables.clone()),
        subject: step
            .subject
            .or_else(|| both_email.then(|| defaults.subject.clone()).flatten()),
        provider_id: None,
        scheduled_at: None,
        metadata: None,
        priority: None,
        ttl_secs: None,
        fallback: None,
        media: None,
    };
    if !own_content {
        if let Some(name) = &defaults.template_name {
            req.template_name = Some(name.clone());
            req.locale = req.locale.or_else(|| defaults.locale.clone());
        } else if let Some(id) = &defaults.template_id {
            if defaults.channel != Some(channel) {
                return Err(ApiError::invalid_field(
                    "template_id",
                    format!(
                        "required: the send's template is for {}, give this step's content",
                        defaults.channel.map_or("another channel", Channel::as_str)
                    ),
                ));
            }
            req.template_id = Some(id.clone());
        } else {
            req.message_body = defaults.text.clone();
            if both_email {
                req.html_body = defaults.html_body.clone();
            }
        }
    }
    Ok(ValidStep {
        send: validate(req, now)?,
        after_secs,
    })
}

/// The field an error without details is about.
fn field_of(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidChannel => "channel",
        ErrorCode::InvalidPhoneNumber | ErrorCode::InvalidEmail => "recipient",
        ErrorCode::TemplateNotFound
        | ErrorCode::TemplateNotApproved
        | ErrorCode::TemplateVariablesMissing => "template",
        _ => "message_body",
    }
}

/// `error` as the error of fallback step `i`: its fields and message name the step.
pub fn in_step(i: usize, mut error: ApiError) -> ApiError {
    let prefix = format!("fallback[{i}]");
    let fields: Vec<FieldError> = match error.details.take() {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| {
                let field = item["field"].as_str().unwrap_or(field_of(error.code));
                let message = item["message"]
                    .as_str()
                    .map_or_else(|| item.to_string(), str::to_owned);
                FieldError::new(format!("{prefix}.{field}"), message)
            })
            .collect(),
        Some(other) => {
            error.details = Some(json!({ "step": i, "details": other }));
            Vec::new()
        }
        None => vec![FieldError::new(
            format!("{prefix}.{}", field_of(error.code)),
            error.message.clone(),
        )],
    };
    error.message = match (error.code, fields.as_slice()) {
        (ErrorCode::ValidationFailed, [one]) => format!("{}: {}", one.field, one.message),
        _ => format!("{prefix}: {}", error.message),
    };
    if !fields.is_empty() {
        error.details = serde_json::to_value(fields).ok();
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(body: Value) -> Result<ValidSend, ApiError> {
        let req: SendRequest = serde_json::from_value(body).unwrap();
        super::super::valid::validate(req, chrono::Utc::now())
    }

    #[test]
    fn a_phone_step_takes_the_sends_number_and_text() {
        let s = send(json!({"channel": "WHATSAPP", "recipient": "+14155552671",
            "message_body": "Doors at 7", "fallback": [{"channel": "SMS"}]}))
        .unwrap();
        assert_eq!(s.fallback.len(), 1);
        let step = &s.fallback[0].send;
        assert_eq!(step.channel(), Channel::Sms);
        assert_eq!(step.recipient.normalized(), "+14155552671");
    }

    #[test]
    fn an_email_step_needs_its_own_address_and_subject() {
        let e = send(json!({"channel": "SMS", "recipient": "+14155552671",
            "message_body": "hi", "fallback": [{"channel": "SMS"}, {"channel": "EMAIL"}]}))
        .err()
        .unwrap();
        assert_eq!(e.code, ErrorCode::ValidationFailed);
        assert_eq!(e.details.unwrap()[0]["field"], "fallback[1].recipient");
        let e = send(json!({"channel": "SMS", "recipient": "+14155552671",
            "message_body": "hi", "fallback": [{"channel": "EMAIL", "recipient": "a@b.example"}]}))
        .err()
        .unwrap();
        assert_eq!(e.details.unwrap()[0]["field"], "fallback[0].subject");
    }

    #[test]
    fn a_bad_step_is_named_with_its_code() {
        let e = send(
            json!({"channel": "SMS", "recipient": "+14155552671", "message_body": "hi",
            "fallback": [{"channel": "WHATSAPP", "recipient": "+1415"}]}),
        )
        .err()
        .unwrap();
        assert_eq!(e.code, ErrorCode::InvalidPhoneNumber);
        assert!(e.message.starts_with("fallback[0]"), "{}", e.message);
        assert_eq!(e.details.unwrap()[0]["field"], "fallback[0].recipient");
        let e = send(
            json!({"channel": "SMS", "recipient": "+14155552671", "message_body": "hi",
            "fallback": [{"channel": "FAX"}]}),
        )
        .err()
        .unwrap();
        assert_eq!(e.code, ErrorCode::InvalidChannel);
        let e = send(
            json!({"channel": "SMS", "recipient": "+14155552671", "message_body": "hi",
            "fallback": [{"channel": "WHATSAPP", "after_secs": 0}]}),
        )
        .err()
        .unwrap();
        assert_eq!(e.details.unwrap()[0]["field"], "fallback[0].after_secs");
        let four = json!([{"channel": "WHATSAPP"}, {"channel": "VOICE"}, {"channel": "WHATSAPP"},
            {"channel": "SMS"}]);
        let e = send(
            json!({"channel": "SMS", "recipient": "+14155552671", "message_body": "hi",
            "fallback": four}),
        )
        .err()
        .unwrap();
        assert_eq!(e.details.unwrap()[0]["field"], "fallback");
    }

    #[test]
    fn a_template_by_id_is_not_carried_to_another_channel_but_one_by_name_is() {
        let e = send(json!({"channel": "WHATSAPP", "recipient": "+14155552671",
            "template_id": "tpl_0192f0c1a2b37c4d8e9f00112233aabb", "fallback": [{"channel": "SMS"}]}))
        .err()
        .unwrap();
        assert_eq!(e.details.unwrap()[0]["field"], "fallback[0].template_id");
        assert!(
            send(json!({"channel": "WHATSAPP", "recipient": "+14155552671",
                "template_name": "doors", "template_variables": {"at": "7"},
                "fallback": [{"channel": "SMS"}]}))
            .is_ok()
        );
    }
}
