//! Amazon SNS: SMS through `Publish` to a phone number.
//!
//! - `POST {base}/` (base `https://sns.{region}.amazonaws.com`), AWS query protocol
//!   (`Action=Publish&Version=2010-03-31&PhoneNumber=+E164&Message=…`), with the message
//!   attributes `AWS.SNS.SMS.SMSType=Transactional` and, when configured,
//!   `AWS.SNS.SMS.SenderID`; signed with SigV4 (service `sns`, the configured region).
//! - Id: `PublishResponse/PublishResult/MessageId`.
//! - Echo field: none. SMS publishes carry no field that comes back: delivery status only
//!   reaches CloudWatch Logs, keyed by the SNS `MessageId`, so correlation uses that id.
//! - Probe: `POST {base}/` `Action=GetSMSAttributes&Version=2010-03-31`, SigV4 (the account's
//!   SMS settings).
//! - Errors `ErrorResponse/Error/Code`: `Throttling` is a rate limit; `InternalError`,
//!   `InternalFailure` and `ServiceUnavailable` are transient; other codes follow the HTTP
//!   status (4xx permanent, 5xx transient).

use async_trait::async_trait;

use super::aws_signing::AwsSigner;
use super::http::{self, Hint, ProviderError, Reply};
use super::{CallError, OutboundMessage, ProviderClient, ProviderSettings, SendOutcome};
use crate::domain::{Channel, ProviderKind};

const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// SNS in one region.
pub struct SnsClient {
    http: reqwest::Client,
    url: String,
    signer: AwsSigner,
    sender_id: Option<String>,
}

impl SnsClient {
    /// Needs `region`, `access_key_id` and `secret_access_key`.
    pub fn new(settings: &ProviderSettings, http: reqwest::Client) -> anyhow::Result<Self> {
        let region = settings.require_config("region")?;
        let default_base = format!("https://sns.{region}.amazonaws.com");
        Ok(Self {
            url: format!("{}/", settings.base_url(&default_base)),
            signer: AwsSigner::new(settings, &region, "sns")?,
            sender_id: settings.config_str("sender_id").map(str::to_owned),
            http,
        })
    }

    fn form(&self, message: &OutboundMessage) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", "Publish")
            .append_pair("Version", "2010-03-31")
            .append_pair("PhoneNumber", &message.recipient)
            .append_pair("Message", &message.body);
        let mut attributes = vec![("AWS.SNS.SMS.SMSType", "Transactional")];
        if let Some(sender_id) = &self.sender_id {
            attributes.push(("AWS.SNS.SMS.SenderID", sender_id));
        }
        for (n, (name, value)) in attributes.into_iter().enumerate() {
            let entry = format!("MessageAttributes.entry.{}", n + 1);
            form.append_pair(&format!("{entry}.Name"), name)
                .append_pair(&format!("{entry}.Value.DataType"), "String")
                .append_pair(&format!("{entry}.Value.StringValue"), value);
        }
        form.finish()
    }
}

#[async_trait]
impl ProviderClient for SnsClient {
    fn kind(&self) -> ProviderKind {
        ProviderKind::AwsSns
    }

    async fn send(&self, message: &OutboundMessage) -> SendOutcome {
        if message.channel != Channel::Sms {
            return super::unsupported_channel(ProviderKind::AwsSns, message.channel);
        }
        if !message.media.is_empty() {
            return super::media::unsupported(ProviderKind::AwsSns);
        }
        let body = self.form(message).into_bytes();
        let request = match self.signer.signed_post(&self.http, &self.url, FORM, body) {
            Ok(request) => request,
            Err(err) => {
                return SendOutcome::PermanentFailure {
                    code: "SIGNING_FAILED".into(),
                    message: format!("the request could not be signed: {err:#}"),
                };
            }
        };
        match http::execute(request).await {
            Ok(reply) if reply.status.is_success() => {
                let id = xml_text(&reply, "PublishResult", "MessageId");
                http::accepted(id, None, &reply)
            }
            Ok(reply) => http::classify_error(&reply, error(&reply)),
            Err(outcome) => outcome,
        }
    }

    async fn probe(&self) -> Result<(), CallError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "GetSMSAttributes")
            .append_pair("Version", "2010-03-31")
            .finish()
            .into_bytes();
        let request = self
            .signer
            .signed_post(&self.http, &self.url, FORM, body)
            .map_err(|e| CallError::new("SIGNING_FAILED", format!("{e:#}")))?;
        http::call(request, error).await.map(drop)
    }
}

/// The text of `parent/child` anywhere in an XML answer (namespaces ignored).
fn xml_text(reply: &Reply, parent: &str, child: &str) -> Option<String> {
    let text = std::str::from_utf8(&reply.body).ok()?;
    let doc = roxmltree::Document::parse(text).ok()?;
    doc.descendants()
        .filter(|n| n.has_tag_name(parent))
        .flat_map(|n| n.children())
        .find(|n| n.has_tag_name(child))
        .and_then(|n| n.text())
        .map(|t| t.trim().to_owned())
}

fn error(reply: &Reply) -> ProviderError {
    let code = xml_text(reply, "Error", "Code");
    ProviderError {
        hint: match code.as_deref() {
            Some("Throttling") => Some(Hint::RateLimited),
            Some("InternalError" | "InternalFailure" | "ServiceUnavailable") => {
                Some(Hint::Transient)
            }
            _ => None,
        },
        code,
        message: xml_text(reply, "Error", "Message"),
        retry_after: None,
    }
}
