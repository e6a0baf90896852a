//! The kinds the mock speaks and the behaviour each is told to have. A behaviour packs into
//! one `u64` so that it is read and used up with a single atomic operation.

use serde::{Deserialize, Serialize};

/// The largest `count` a behaviour takes.
pub const MAX_COUNT: u32 = 0x00FF_FFFE;
const UNLIMITED: u64 = 0x00FF_FFFF;

/// A provider API the mock speaks (`fcm_token` is the OAuth2 token endpoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MockKind {
    Twilio,
    MetaWhatsapp,
    Vonage,
    AwsSns,
    Sendgrid,
    AwsSes,
    Fcm,
    FcmToken,
}

impl MockKind {
    pub const ALL: [MockKind; 8] = [
        MockKind::Twilio,
        MockKind::MetaWhatsapp,
        MockKind::Vonage,
        MockKind::AwsSns,
        MockKind::Sendgrid,
        MockKind::AwsSes,
        MockKind::Fcm,
        MockKind::FcmToken,
    ];

    /// The name used in control requests and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            MockKind::Twilio => "twilio",
            MockKind::MetaWhatsapp => "meta_whatsapp",
            MockKind::Vonage => "vonage",
            MockKind::AwsSns => "aws_sns",
            MockKind::Sendgrid => "sendgrid",
            MockKind::AwsSes => "aws_ses",
            MockKind::Fcm => "fcm",
            MockKind::FcmToken => "fcm_token",
        }
    }

    /// Parses a name, case-insensitively (`TWILIO` and `twilio` are the same kind).
    pub fn parse(name: &str) -> Option<MockKind> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(name))
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// What the mock does with the next requests of a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Ok,
    #[serde(rename = "fail_5xx")]
    Fail5xx,
    #[serde(rename = "fail_4xx")]
    Fail4xx,
    RateLimit,
    Delay,
    Timeout,
}

impl Mode {
    const ALL: [Mode; 6] = [
        Mode::Ok,
        Mode::Fail5xx,
        Mode::Fail4xx,
        Mode::RateLimit,
        Mode::Delay,
        Mode::Timeout,
    ];
}

/// A behaviour: the mode, its delay, and how many requests it still applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Behaviour {
    pub mode: Mode,
    pub delay_ms: u32,
    /// `None`: until changed.
    pub count: Option<u32>,
}

impl Behaviour {
    pub const OK: Behaviour = Behaviour {
        mode: Mode::Ok,
        delay_ms: 0,
        count: None,
    };

    /// Bits 0–7 mode, 8–31 remaining count (all ones: unlimited), 32–63 delay.
    pub(crate) fn pack(self) -> u64 {
        let count = self
            .count
            .map_or(UNLIMITED, |c| u64::from(c.min(MAX_COUNT)));
        (self.mode as u64) | (count << 8) | (u64::from(self.delay_ms) << 32)
    }

    pub(crate) fn unpack(word: u64) -> Behaviour {
        let count = (word >> 8) & UNLIMITED;
        Behaviour {
            mode: Mode::ALL
                .get((word & 0xFF) as usize)
                .copied()
                .unwrap_or(Mode::Ok),
            delay_ms: (word >> 32) as u32,
            count: (count != UNLIMITED).then_some(count as u32),
        }
    }
}
