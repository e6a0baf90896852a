//! The channels a message can travel on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A delivery channel.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    ToSchema,
    diesel::AsExpression,
    diesel::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Channel {
    Sms,
    Whatsapp,
    Email,
    Push,
    Voice,
}

impl Channel {
    /// Whether its recipients are phone numbers (SMS, WHATSAPP, VOICE).
    pub fn takes_phone_numbers(self) -> bool {
        matches!(self, Channel::Sms | Channel::Whatsapp | Channel::Voice)
    }

    pub const ALL: [Channel; 5] = [
        Channel::Sms,
        Channel::Whatsapp,
        Channel::Email,
        Channel::Push,
        Channel::Voice,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "SMS",
            Channel::Whatsapp => "WHATSAPP",
            Channel::Email => "EMAIL",
            Channel::Push => "PUSH",
            Channel::Voice => "VOICE",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown channel {s:?}; expected one of SMS, WHATSAPP, EMAIL, PUSH, VOICE")
            })
    }
}
