//! E-mail attachments, fetched from their URLs when the message is sent: with the provider
//! client (which, outside development, connects to public addresses only and follows no
//! redirect), each read up to `MAX_ATTACHMENT_BYTES` and all of them up to
//! `MAX_ATTACHMENTS_BYTES`. A URL that answers 4xx, or a file over the limits, fails the
//! send for good; a network error or a 5xx is transient (the send is retried).

use base64::Engine;

use super::SendOutcome;
use crate::domain::media::{MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS_BYTES, MediaItem};

/// An attachment read into memory.
#[derive(Clone, Debug)]
pub struct Attachment {
    /// Its bytes, base64 (as SendGrid and SES take them).
    pub base64: String,
    pub content_type: String,
    pub filename: String,
}

fn failed(transient: bool, code: &str, message: String) -> SendOutcome {
    if transient {
        SendOutcome::TransientFailure {
            code: code.into(),
            message,
        }
    } else {
        SendOutcome::PermanentFailure {
            code: code.into(),
            message,
        }
    }
}

/// Fetches every item; the first that cannot be had decides the outcome.
pub async fn fetch_all(
    http: &reqwest::Client,
    items: &[MediaItem],
) -> Result<Vec<Attachment>, SendOutcome> {
    let mut out = Vec::with_capacity(items.len());
    let mut total = 0usize;
    for item in items {
        let response = http.get(&item.url).send().await.map_err(|e| {
            failed(
                true,
                "MEDIA_FETCH_FAILED",
                format!("{} could not be fetched: {e}", item.url),
            )
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(failed(
                status.is_server_error(),
                "MEDIA_UNAVAILABLE",
                format!("{} answered {status}", item.url),
            ));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ATTACHMENT_BYTES as u64)
        {
            return Err(too_large(item));
        }
        let bytes = super::http::read_capped(response, MAX_ATTACHMENT_BYTES + 1)
            .await
            .map_err(|e| {
                failed(
                    true,
                    "MEDIA_FETCH_FAILED",
                    format!("{} could not be read: {e}", item.url),
                )
            })?;
        if bytes.len() > MAX_ATTACHMENT_BYTES {
            return Err(too_large(item));
        }
        total += bytes.len();
        if total > MAX_ATTACHMENTS_BYTES {
            return Err(failed(
                false,
                "MEDIA_TOO_LARGE",
                format!("the attachments weigh more than {MAX_ATTACHMENTS_BYTES} bytes in all"),
            ));
        }
        out.push(Attachment {
            base64: base64::engine::general_purpose::STANDARD.encode(&bytes),
            content_type: item.content_type.clone(),
            filename: item.filename.clone(),
        });
    }
    Ok(out)
}

fn too_large(item: &MediaItem) -> SendOutcome {
    failed(
        false,
        "MEDIA_TOO_LARGE",
        format!("{} is larger than {MAX_ATTACHMENT_BYTES} bytes", item.url),
    )
}

/// The outcome for media a provider kind cannot send.
pub fn unsupported(kind: crate::domain::ProviderKind) -> SendOutcome {
    SendOutcome::PermanentFailure {
        code: "MEDIA_UNSUPPORTED".into(),
        message: format!("{kind} does not send media; route media messages to another provider"),
    }
}
