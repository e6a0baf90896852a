//! What an opt-out covers (one channel or all of them) and where it came from.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Channel, Recipient, RecipientError};

/// The channels an opt-out covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OptOutScope {
    Channel(Channel),
    /// Every channel.
    All,
}

impl OptOutScope {
    pub const ALL_STR: &'static str = "ALL";

    pub fn as_str(self) -> &'static str {
        match self {
            OptOutScope::Channel(c) => c.as_str(),
            OptOutScope::All => Self::ALL_STR,
        }
    }

    /// Parses a recipient by this scope's rules; `All` decides by the recipient's shape.
    pub fn parse_recipient(self, raw: &str) -> Result<Recipient, RecipientError> {
        match self {
            OptOutScope::Channel(c) => Recipient::parse(c, raw),
            OptOutScope::All => Recipient::parse_any(raw),
        }
    }
}

impl fmt::Display for OptOutScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OptOutScope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case(Self::ALL_STR) {
            return Ok(OptOutScope::All);
        }
        s.parse().map(OptOutScope::Channel).map_err(|_| {
            format!("unknown channel {s:?}; expected one of SMS, WHATSAPP, EMAIL, PUSH, VOICE, ALL")
        })
    }
}

/// Where an opt-out came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OptOutSource {
    /// Added through the REST API.
    Api,
    /// The recipient replied with a stop word.
    StopKeyword,
    /// A provider reported it.
    Provider,
    /// An e-mail bounced.
    Bounce,
    /// A spam complaint.
    Complaint,
}

impl OptOutSource {
    pub const ALL: [OptOutSource; 5] = [
        OptOutSource::Api,
        OptOutSource::StopKeyword,
        OptOutSource::Provider,
        OptOutSource::Bounce,
        OptOutSource::Complaint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OptOutSource::Api => "API",
            OptOutSource::StopKeyword => "STOP_KEYWORD",
            OptOutSource::Provider => "PROVIDER",
            OptOutSource::Bounce => "BOUNCE",
            OptOutSource::Complaint => "COMPLAINT",
        }
    }
}

impl FromStr for OptOutSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OptOutSource::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unknown source {s:?}; expected one of API, STOP_KEYWORD, PROVIDER, BOUNCE, COMPLAINT"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_is_a_channel_or_all() {
        assert_eq!("all".parse::<OptOutScope>(), Ok(OptOutScope::All));
        assert_eq!(
            "SMS".parse::<OptOutScope>(),
            Ok(OptOutScope::Channel(Channel::Sms))
        );
        assert!("FAX".parse::<OptOutScope>().is_err());
        assert_eq!(OptOutScope::All.as_str(), "ALL");
    }

    #[test]
    fn sources_round_trip() {
        for source in OptOutSource::ALL {
            assert_eq!(source.as_str().parse::<OptOutSource>(), Ok(source));
        }
        assert!("SMOKE_SIGNAL".parse::<OptOutSource>().is_err());
    }
}
