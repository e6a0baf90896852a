//! Recipients: E.164 phone numbers checked against the numbering plans, e-mail addresses
//! (lower-cased) and push device tokens. A `Recipient` is always in its normalised form, so two
//! spellings of one address compare equal once parsed.

use std::fmt::{self, Write as _};

use super::Channel;
use crate::error::{ApiError, ErrorCode, FieldError};

/// Longest accepted device token.
pub const MAX_DEVICE_TOKEN_LEN: usize = 4096;
/// Longest accepted e-mail address (RFC 5321 path limit).
const MAX_EMAIL_LEN: usize = 254;

/// A valid phone number in E.164 form (`+14155552671`), and the ISO 3166 code of its country
/// when its numbering plan names one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String, Option<String>);

impl PhoneNumber {
    /// Parses `+` then the country code and number. The number
    /// must be valid in its country's numbering plan (length and assigned prefixes).
    /// Spaces, dashes, dots and parentheses are tolerated as separators.
    pub fn parse(raw: &str) -> Result<PhoneNumber, String> {
        let rest = raw.trim().strip_prefix('+').ok_or_else(|| {
            "must be in E.164 form: + then the country code and number".to_owned()
        })?;
        let digits: String = rest
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err("must contain only digits after the +".to_owned());
        }
        if digits.len() > 15 {
            return Err("is longer than the 15 digits E.164 allows".to_owned());
        }
        let parsed = phonenumber::parse(None, format!("+{digits}"))
            .map_err(|e| format!("is not a phone number: {e}"))?;
        if !phonenumber::is_valid(&parsed) {
            return Err(
                "is not a valid number in its country's numbering plan (wrong length or unassigned prefix)"
                    .to_owned(),
            );
        }
        // E.164 is the country code then the national number (the crate's E.164 formatter
        // writes the same, after matching the plan's display formats it then does not use).
        let mut e164 = String::with_capacity(16);
        write!(e164, "+{}{}", parsed.code().value(), parsed.national())
            .map_err(|_| "cannot be formatted as E.164".to_owned())?;
        let country = parsed.country().id().map(|id| id.as_ref().to_owned());
        Ok(PhoneNumber(e164, country))
    }

    /// `+` country code and national number, no separators.
    pub fn as_e164(&self) -> &str {
        &self.0
    }

    /// The ISO 3166 code of its country (`US`), when its numbering plan names one.
    pub fn country(&self) -> Option<&str> {
        self.1.as_deref()
    }
}

/// The ISO 3166 code of the country an E.164 number belongs to (`+447700900123` → `GB`), by
/// the numbering plans; `None` when it is not a phone number or its plan is shared and the
/// number fits none.
pub fn country_of(e164: &str) -> Option<String> {
    let parsed = phonenumber::parse(None, e164).ok()?;
    parsed.country().id().map(|id| id.as_ref().to_owned())
}

/// Whether `code` is an ISO 3166 country code of the numbering plans (`US`, `GB`).
pub fn is_country_code(code: &str) -> bool {
    code.parse::<phonenumber::country::Id>().is_ok()
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A valid e-mail address, trimmed and lower-cased.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Parses a bare address (no display name, no domain literal, a dot in the domain).
    pub fn parse(raw: &str) -> Result<EmailAddress, String> {
        let lowered = raw.trim().to_lowercase();
        if lowered.len() > MAX_EMAIL_LEN {
            return Err(format!("is longer than {MAX_EMAIL_LEN} characters"));
        }
        let options = email_address::Options::default()
            .without_display_text()
            .without_domain_literal()
            .with_required_tld();
        email_address::EmailAddress::parse_with_options(&lowered, options)
            .map_err(|e| format!("is not a valid e-mail address: {e}"))?;
        Ok(EmailAddress(lowered))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a recipient was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecipientError {
    #[error("recipient {0}")]
    InvalidPhone(String),
    #[error("recipient {0}")]
    InvalidEmail(String),
    #[error("recipient {0}")]
    InvalidDeviceToken(String),
}

/// Where a message goes, parsed by the rules of its channel.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Recipient {
    Phone(PhoneNumber),
    Email(EmailAddress),
    DeviceToken(String),
}

impl Recipient {
    /// The country of a phone number (see [`PhoneNumber::country`]); `None` for other kinds.
    pub fn country(&self) -> Option<&str> {
        match self {
            Recipient::Phone(p) => p.country(),
            _ => None,
        }
    }

    /// SMS, WHATSAPP and VOICE take a phone number, EMAIL an address, PUSH a device token.
    pub fn parse(channel: Channel, raw: &str) -> Result<Recipient, RecipientError> {
        match channel {
            Channel::Sms | Channel::Whatsapp | Channel::Voice => PhoneNumber::parse(raw)
                .map(Recipient::Phone)
                .map_err(RecipientError::InvalidPhone),
            Channel::Email => EmailAddress::parse(raw)
                .map(Recipient::Email)
                .map_err(RecipientError::InvalidEmail),
            Channel::Push => parse_device_token(raw).map(Recipient::DeviceToken),
        }
    }

    /// For a recipient whose channel is not known: what looks like a phone number (`+` and
    /// digits) must be one, what has an `@` must be an e-mail address, anything else is taken
    /// as a device token.
    pub fn parse_any(raw: &str) -> Result<Recipient, RecipientError> {
        let trimmed = raw.trim();
        let phone_like = trimmed.strip_prefix('+').is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-'))
        });
        if phone_like {
            Recipient::parse(Channel::Sms, trimmed)
        } else if trimmed.contains('@') {
            Recipient::parse(Channel::Email, trimmed)
        } else {
            Recipient::parse(Channel::Push, trimmed)
        }
    }

    /// The form recipients are stored and compared in.
    pub fn normalized(&self) -> &str {
        match self {
            Recipient::Phone(p) => p.as_e164(),
            Recipient::Email(e) => e.as_str(),
            Recipient::DeviceToken(t) => t,
        }
    }
}

fn parse_device_token(raw: &str) -> Result<String, RecipientError> {
    let token = raw.trim();
    if token.is_empty() {
        return Err(RecipientError::InvalidDeviceToken(
            "must be a non-empty device token".into(),
        ));
    }
    if token.chars().count() > MAX_DEVICE_TOKEN_LEN {
        return Err(RecipientError::InvalidDeviceToken(format!(
            "device token is longer than {MAX_DEVICE_TOKEN_LEN} characters"
        )));
    }
    if token.chars().any(char::is_whitespace) {
        return Err(RecipientError::InvalidDeviceToken(
            "device token must not contain whitespace".into(),
        ));
    }
    Ok(token.to_owned())
}

impl From<RecipientError> for ApiError {
    fn from(err: RecipientError) -> Self {
        let coded = |code, reason: String| {
            ApiError::new(code, format!("recipient {reason}"))
                .with_details(vec![FieldError::new("recipient", reason)])
        };
        match err {
            RecipientError::InvalidPhone(reason) => coded(ErrorCode::InvalidPhoneNumber, reason),
            RecipientError::InvalidEmail(reason) => coded(ErrorCode::InvalidEmail, reason),
            RecipientError::InvalidDeviceToken(reason) => {
                ApiError::invalid_field("recipient", reason)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_numbers_parse_to_e164() {
        for (raw, e164) in [
            ("+14155552671", "+14155552671"),
            ("+447911123456", "+447911123456"),
            ("+44 7911 123456", "+447911123456"),
            ("+33 6 12 34 56 78", "+33612345678"),
            (" +1-415-555-2671 ", "+14155552671"),
            ("+1 (415) 555.2671", "+14155552671"),
        ] {
            assert_eq!(PhoneNumber::parse(raw).unwrap().as_e164(), e164, "{raw}");
        }
    }

    #[test]
    fn numbers_outside_the_numbering_plan_are_refused() {
        for raw in [
            "+1415555267",
            "+999123456",
            "14155552671",
            "+1 (415) 555-267x",
            "+",
            "+4479111234561234567",
            "",
        ] {
            assert!(PhoneNumber::parse(raw).is_err(), "{raw} should be refused");
        }
    }

    #[test]
    fn email_addresses_are_trimmed_and_lower_cased() {
        assert_eq!(
            EmailAddress::parse(" Foo@Example.COM ").unwrap().as_str(),
            "foo@example.com"
        );
        for raw in [
            "no-at-sign",
            "a@b",
            "Foo <foo@example.com>",
            "a@[127.0.0.1]",
            "@x.com",
        ] {
            assert!(EmailAddress::parse(raw).is_err(), "{raw} should be refused");
        }
    }

    #[test]
    fn each_channel_parses_its_own_kind_of_recipient() {
        assert_eq!(
            Recipient::parse(Channel::Whatsapp, "+44 7911 123456")
                .unwrap()
                .normalized(),
            "+447911123456"
        );
        assert_eq!(
            Recipient::parse(Channel::Email, "Foo@Example.COM")
                .unwrap()
                .normalized(),
            "foo@example.com"
        );
        assert_eq!(
            Recipient::parse(Channel::Push, " tok:ABC_123 ")
                .unwrap()
                .normalized(),
            "tok:ABC_123"
        );
        assert!(matches!(
            Recipient::parse(Channel::Sms, "foo@example.com"),
            Err(RecipientError::InvalidPhone(_))
        ));
        assert!(matches!(
            Recipient::parse(Channel::Push, "has space"),
            Err(RecipientError::InvalidDeviceToken(_))
        ));
        assert!(matches!(
            Recipient::parse(Channel::Push, &"x".repeat(MAX_DEVICE_TOKEN_LEN + 1)),
            Err(RecipientError::InvalidDeviceToken(_))
        ));
    }

    #[test]
    fn without_a_channel_the_shape_decides() {
        assert!(matches!(
            Recipient::parse_any("+44 7911 123456"),
            Ok(Recipient::Phone(_))
        ));
        assert!(matches!(
            Recipient::parse_any("+1415555267"),
            Err(RecipientError::InvalidPhone(_))
        ));
        assert!(matches!(
            Recipient::parse_any("Foo@Example.com"),
            Ok(Recipient::Email(_))
        ));
        assert!(matches!(
            Recipient::parse_any("fcm-token-1"),
            Ok(Recipient::DeviceToken(_))
        ));
    }

    #[test]
    fn errors_map_to_their_codes() {
        let phone: ApiError = RecipientError::InvalidPhone("x".into()).into();
        assert_eq!(phone.code, ErrorCode::InvalidPhoneNumber);
        let email: ApiError = RecipientError::InvalidEmail("x".into()).into();
        assert_eq!(email.code, ErrorCode::InvalidEmail);
        let token: ApiError = RecipientError::InvalidDeviceToken("x".into()).into();
        assert_eq!(token.code, ErrorCode::ValidationFailed);
        assert_eq!(token.details.unwrap()[0]["field"], "recipient");
    }
}
