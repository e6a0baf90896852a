//! Media a message carries: pictures and files by URL. Each channel takes what its providers
//! take, checked when the send is accepted: MMS (SMS through Twilio) up to 10 items of image,
//! video, audio, vCard, calendar or PDF; one WhatsApp image, video, audio, sticker or document
//! (by its content type, given or guessed from the URL); up to 10 e-mail attachments, fetched
//! when the message is sent; one push notification image. URLs must be `https://` on a public
//! host (a loopback, private or link-local address is refused), as webhook URLs are.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Channel;
use crate::error::FieldError;

/// Most items of an MMS.
pub const MAX_MMS_ITEMS: usize = 10;
/// Most attachments of an e-mail.
pub const MAX_ATTACHMENTS: usize = 10;
/// The largest attachment fetched, and the most all of an e-mail's attachments may weigh.
pub const MAX_ATTACHMENT_BYTES: usize = 5 * 1024 * 1024;
pub const MAX_ATTACHMENTS_BYTES: usize = 10 * 1024 * 1024;
/// Longest accepted file name.
const MAX_FILENAME: usize = 255;

/// One media item of a send, as the API takes it.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaRequest {
    /// `https://` URL the provider (or, for e-mail attachments, this service) fetches it from.
    #[schema(example = "https://tickets.example.com/t/123.pdf")]
    pub url: String,
    /// Its MIME type; guessed from the URL's file extension when left out.
    #[schema(example = "application/pdf")]
    pub content_type: Option<String>,
    /// The file name shown (e-mail attachments, WhatsApp documents); by default the URL's.
    pub filename: Option<String>,
}

/// A checked media item, as a message stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MediaItem {
    pub url: String,
    pub content_type: String,
    pub filename: String,
}

/// How a WhatsApp media message is sent (Meta's message `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhatsappMedia {
    Image,
    Video,
    Audio,
    Sticker,
    Document,
}

impl WhatsappMedia {
    pub fn of(content_type: &str) -> Self {
        match content_type {
            "image/jpeg" | "image/png" => WhatsappMedia::Image,
            "image/webp" => WhatsappMedia::Sticker,
            t if t.starts_with("video/") => WhatsappMedia::Video,
            t if t.starts_with("audio/") => WhatsappMedia::Audio,
            _ => WhatsappMedia::Document,
        }
    }

    /// Meta's name of it.
    pub fn as_str(self) -> &'static str {
        match self {
            WhatsappMedia::Image => "image",
            WhatsappMedia::Video => "video",
            WhatsappMedia::Audio => "audio",
            WhatsappMedia::Sticker => "sticker",
            WhatsappMedia::Document => "document",
        }
    }

    /// Whether it shows the message's text as a caption (audio and stickers have none).
    pub fn takes_caption(self) -> bool {
        !matches!(self, WhatsappMedia::Audio | WhatsappMedia::Sticker)
    }
}

fn mms_type(t: &str) -> bool {
    ["image/", "video/", "audio/"]
        .iter()
        .any(|p| t.starts_with(p))
        || matches!(
            t,
            "application/pdf" | "text/vcard" | "text/x-vcard" | "text/calendar"
        )
}

/// Checks a send's media for its channel. `has_text` tells whether the send has a text (a
/// WhatsApp audio or sticker cannot carry one); `allow_internal` lets URLs point at internal
/// hosts over plain http (development only). Errors name the item (`media[1].url`).
pub fn check(
    channel: Channel,
    items: Vec<MediaRequest>,
    has_text: bool,
    allow_internal: bool,
) -> Result<Vec<MediaItem>, FieldError> {
    let most = match channel {
        Channel::Sms => MAX_MMS_ITEMS,
        Channel::Email => MAX_ATTACHMENTS,
        Channel::Whatsapp | Channel::Push => 1,
        Channel::Voice => 0,
    };
    if items.len() > most {
        return Err(FieldError::new(
            "media",
            match most {
                0 => format!("{channel} messages carry no media"),
                1 => format!(
                    "a {channel} message carries one media item, not {}",
                    items.len()
                ),
                n => format!("a {channel} message carries at most {n} media items"),
            },
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let field = |name: &str| format!("media[{i}].{name}");
        let url = super::webhook::check_webhook_url(&item.url, allow_internal, allow_internal)
            .map_err(|e| FieldError::new(field("url"), e))?;
        let path = url::Url::parse(&url)
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        let content_type = match item.content_type.map(|t| t.trim().to_ascii_lowercase()) {
            Some(t) if t.parse::<mime_guess::mime::Mime>().is_ok() && !t.contains(['*', ';']) => t,
            Some(_) => {
                return Err(FieldError::new(
                    field("content_type"),
                    "must be a MIME type, such as image/png",
                ));
            }
            None => match mime_guess::from_path(&path).first() {
                Some(guessed) => guessed.essence_str().to_owned(),
                None => {
                    return Err(FieldError::new(
                        field("content_type"),
                        "is required when the URL has no known file extension",
                    ));
                }
            },
        };
        let filename = match item.filename.map(|f| f.trim().to_owned()) {
            Some(f)
                if f.is_empty()
                    || f.len() > MAX_FILENAME
                    || f.contains(['/', '\\'])
                    || f.chars().any(char::is_control) =>
            {
                return Err(FieldError::new(
                    field("filename"),
                    format!("must be a plain file name of 1 to {MAX_FILENAME} characters"),
                ));
            }
            Some(f) => f,
            None => path
                .rsplit('/')
                .next()
                .filter(|s| !s.is_empty())
                .unwrap_or("attachment")
                .to_owned(),
        };
        match channel {
            Channel::Sms if !mms_type(&content_type) => {
                return Err(FieldError::new(
                    field("content_type"),
                    format!(
                        "{content_type} cannot be sent by MMS (images, video, audio, vCard, calendar or PDF)"
                    ),
                ));
            }
            Channel::Push if !content_type.starts_with("image/") => {
                return Err(FieldError::new(
                    field("content_type"),
                    "a push notification carries an image only",
                ));
            }
            Channel::Whatsapp if has_text && !WhatsappMedia::of(&content_type).takes_caption() => {
                return Err(FieldError::new(
                    "message_body",
                    format!(
                        "a WhatsApp {} message carries no text",
                        WhatsappMedia::of(&content_type).as_str()
                    ),
                ));
            }
            _ => {}
        }
        out.push(MediaItem {
            url,
            content_type,
            filename,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(url: &str) -> MediaRequest {
        MediaRequest {
            url: url.into(),
            content_type: None,
            filename: None,
        }
    }

    #[test]
    fn types_are_guessed_and_names_taken_from_the_url() {
        let got = check(
            Channel::Email,
            vec![item("https://cdn.example.com/t/ticket.pdf")],
            true,
            false,
        )
        .unwrap();
        assert_eq!(got[0].content_type, "application/pdf");
        assert_eq!(got[0].filename, "ticket.pdf");
        assert_eq!(
            WhatsappMedia::of("application/pdf"),
            WhatsappMedia::Document
        );
        assert_eq!(WhatsappMedia::of("image/png"), WhatsappMedia::Image);
    }

    #[test]
    fn each_channel_takes_what_its_providers_take() {
        let two = vec![
            item("https://a.example/a.png"),
            item("https://a.example/b.png"),
        ];
        assert_eq!(
            check(Channel::Whatsapp, two.clone(), true, false)
                .unwrap_err()
                .field,
            "media"
        );
        assert!(check(Channel::Sms, two.clone(), true, false).is_ok());
        assert_eq!(
            check(Channel::Voice, two, true, false).unwrap_err().field,
            "media"
        );
        let pdf = vec![item("https://a.example/a.pdf")];
        assert_eq!(
            check(Channel::Push, pdf, true, false).unwrap_err().field,
            "media[0].content_type"
        );
        let zip = vec![item("https://a.example/a.zip")];
        assert_eq!(
            check(Channel::Sms, zip, true, false).unwrap_err().field,
            "media[0].content_type"
        );
        let audio = vec![item("https://a.example/a.mp3")];
        assert_eq!(
            check(Channel::Whatsapp, audio.clone(), true, false)
                .unwrap_err()
                .field,
            "message_body"
        );
        assert!(check(Channel::Whatsapp, audio, false, false).is_ok());
    }

    #[test]
    fn urls_must_be_https_on_a_public_host() {
        for url in [
            "http://cdn.example.com/a.png",
            "https://127.0.0.1/a.png",
            "https://10.0.0.8/a.png",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost/a.png",
            "https://[::1]/a.png",
            "file:///etc/passwd",
        ] {
            let err = check(Channel::Sms, vec![item(url)], true, false).unwrap_err();
            assert_eq!(err.field, "media[0].url", "{url}");
        }
        assert!(
            check(
                Channel::Sms,
                vec![item("http://127.0.0.1:9/a.png")],
                true,
                true
            )
            .is_ok()
        );
    }
}
