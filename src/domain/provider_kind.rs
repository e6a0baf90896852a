//! Provider kinds, the channels each supports and the settings each needs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::Channel;

/// A provider integration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProviderKind {
    Twilio,
    MetaWhatsapp,
    Vonage,
    AwsSns,
    Sendgrid,
    AwsSes,
    Fcm,
    Sandbox,
}

/// How a setting is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Required,
    Optional,
}

/// One known setting of a kind.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    pub name: &'static str,
    pub need: Need,
}

const fn req(name: &'static str) -> Setting {
    Setting {
        name,
        need: Need::Required,
    }
}

const fn opt(name: &'static str) -> Setting {
    Setting {
        name,
        need: Need::Optional,
    }
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 8] = [
        ProviderKind::Twilio,
        ProviderKind::MetaWhatsapp,
        ProviderKind::Vonage,
        ProviderKind::AwsSns,
        ProviderKind::Sendgrid,
        ProviderKind::AwsSes,
        ProviderKind::Fcm,
        ProviderKind::Sandbox,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Twilio => "TWILIO",
            ProviderKind::MetaWhatsapp => "META_WHATSAPP",
            ProviderKind::Vonage => "VONAGE",
            ProviderKind::AwsSns => "AWS_SNS",
            ProviderKind::Sendgrid => "SENDGRID",
            ProviderKind::AwsSes => "AWS_SES",
            ProviderKind::Fcm => "FCM",
            ProviderKind::Sandbox => "SANDBOX",
        }
    }

    /// The channels this kind can carry.
    pub fn channels(self) -> &'static [Channel] {
        use Channel::*;
        match self {
            ProviderKind::Twilio => &[Sms, Whatsapp, Voice],
            ProviderKind::MetaWhatsapp => &[Whatsapp],
            ProviderKind::Vonage | ProviderKind::AwsSns => &[Sms],
            ProviderKind::Sendgrid | ProviderKind::AwsSes => &[Email],
            ProviderKind::Fcm => &[Push],
            ProviderKind::Sandbox => &Channel::ALL,
        }
    }

    /// Readable, non-secret settings (`base_url` is accepted by every kind). AWS_SNS and AWS_SES
    /// also take `sns_topic_arn`, the only topic whose callbacks are accepted when set, and
    /// `sns_cert_base_url`, where SNS certificates and subscription URLs may come from instead
    /// of `https://sns.<region>.amazonaws.com` (honoured outside production only, for tests).
    pub fn config_settings(self) -> &'static [Setting] {
        match self {
            ProviderKind::Twilio => {
                const { &[opt("from"), opt("messaging_service_sid"), opt("base_url")] }
            }
            ProviderKind::MetaWhatsapp => {
                const {
                    &[
                        req("phone_number_id"),
                        req("waba_id"),
                        opt("api_version"),
                        opt("base_url"),
                    ]
                }
            }
            ProviderKind::Vonage => const { &[req("from"), opt("currency"), opt("base_url")] },
            ProviderKind::AwsSns => {
                const {
                    &[
                        req("region"),
                        opt("sender_id"),
                        opt("base_url"),
                        opt("sns_topic_arn"),
                        opt("sns_cert_base_url"),
                    ]
                }
            }
            ProviderKind::Sendgrid => {
                const { &[req("from_email"), opt("from_name"), opt("base_url")] }
            }
            ProviderKind::AwsSes => {
                const {
                    &[
                        req("region"),
                        req("from_email"),
                        opt("from_name"),
                        opt("configuration_set"),
                        opt("base_url"),
                        opt("sns_topic_arn"),
                        opt("sns_cert_base_url"),
                    ]
                }
            }
            ProviderKind::Fcm => const { &[req("project_id"), opt("base_url")] },
            ProviderKind::Sandbox => {
                const {
                    &[
                        opt("delivery_delay_ms"),
                        opt("failure_rate"),
                        opt("failure_code"),
                        opt("undelivered_rate"),
                        opt("undelivered_code"),
                        opt("base_url"),
                    ]
                }
            }
        }
    }

    /// Write-only secrets.
    pub fn credential_settings(self) -> &'static [Setting] {
        match self {
            ProviderKind::Twilio => const { &[req("account_sid"), req("auth_token")] },
            ProviderKind::MetaWhatsapp => {
                const { &[req("access_token"), req("app_secret"), req("verify_token")] }
            }
            ProviderKind::Vonage => {
                const { &[req("api_key"), req("api_secret"), req("signature_secret")] }
            }
            ProviderKind::AwsSns | ProviderKind::AwsSes => {
                const { &[req("access_key_id"), req("secret_access_key")] }
            }
            ProviderKind::Sendgrid => const { &[req("api_key"), opt("webhook_public_key")] },
            ProviderKind::Fcm => const { &[req("service_account")] },
            ProviderKind::Sandbox => &[],
        }
    }

    /// Checks `config` and `credentials` for this kind. The error names the first bad field.
    pub fn validate(
        self,
        config: &Map<String, Value>,
        credentials: &Map<String, Value>,
    ) -> Result<(), String> {
        check_known("config", config, self.config_settings())?;
        check_known("credentials", credentials, self.credential_settings())?;
        for (section, map, settings) in [
            ("config", config, self.config_settings()),
            ("credentials", credentials, self.credential_settings()),
        ] {
            for setting in settings.iter().filter(|s| s.need == Need::Required) {
                if !map.contains_key(setting.name) {
                    return Err(format!(
                        "{section}.{} is required for {}",
                        setting.name, self
                    ));
                }
            }
        }
        if self == ProviderKind::Twilio
            && !config.contains_key("from")
            && !config.contains_key("messaging_service_sid")
        {
            return Err(
                "config.from or config.messaging_service_sid is required for TWILIO".into(),
            );
        }
        for (key, value) in config {
            check_config_value(self, key, value)?;
        }
        for (key, value) in credentials {
            check_credential_value(self, key, value)?;
        }
        Ok(())
    }
}

/// `config` settings every kind takes.
pub const COMMON_CONFIG: [&str; 4] = [ON_AMBIGUOUS, MAX_PER_SECOND, COUNTRIES, SMART_ENCODING];

/// `config.countries`: the ISO 3166 codes of the countries whose phone numbers the provider is
/// routed to; unset: every country.
pub const COUNTRIES: &str = "countries";
/// `config.smart_encoding`: SMS bodies sent through the provider have their look-alike
/// characters (curly quotes, long dashes) replaced so they stay GSM-7.
pub const SMART_ENCODING: &str = "smart_encoding";

/// Whether a provider with `config` is routed to a message on `channel` whose recipient's
/// number is of `country` (`None`: a number of no single country). `config.countries` limits
/// the channels that take phone numbers only.
pub fn serves_country(config: &Value, channel: super::Channel, country: Option<&str>) -> bool {
    if !channel.takes_phone_numbers() {
        return true;
    }
    match (config.get(COUNTRIES).and_then(Value::as_array), country) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(list), Some(country)) => list.iter().any(|c| c.as_str() == Some(country)),
    }
}

/// Whether a provider with `config` serves only some countries (the recipient's country is
/// needed to route to it).
pub fn limits_countries(config: &Value) -> bool {
    config.get(COUNTRIES).is_some_and(Value::is_array)
}

/// `config.max_per_second`: the most requests a second made to this provider, by all the
/// replicas together (its account's throughput limit); unset: no pacing.
pub const MAX_PER_SECOND: &str = "max_per_second";
/// The largest `max_per_second` taken.
pub const MAX_PER_SECOND_LIMIT: u64 = 100_000;

/// `config.on_ambiguous`: after an ambiguous outcome (a timeout once the request was sent), on
/// a provider that cannot be asked whether it took the message: `resend` (the default) or
/// `fail`.
pub const ON_AMBIGUOUS: &str = "on_ambiguous";

fn check_known(
    section: &str,
    map: &Map<String, Value>,
    settings: &[Setting],
) -> Result<(), String> {
    let common: &[&str] = if section == "config" {
        &COMMON_CONFIG
    } else {
        &[]
    };
    for key in map.keys() {
        if !settings.iter().any(|s| s.name == key) && !common.contains(&key.as_str()) {
            let known: Vec<&str> = settings
                .iter()
                .map(|s| s.name)
                .chain(common.iter().copied())
                .collect();
            return Err(format!(
                "{section}.{key} is not a setting of this kind (known: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ));
        }
    }
    Ok(())
}

fn non_empty_string<'a>(field: &str, value: &'a Value) -> Result<&'a str, String> {
    match value.as_str().map(str::trim) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(format!("{field} must be a non-empty string")),
    }
}

fn check_config_value(kind: ProviderKind, key: &str, value: &Value) -> Result<(), String> {
    let field = format!("config.{key}");
    match (kind, key) {
        (_, ON_AMBIGUOUS) => match value.as_str() {
            Some("resend" | "fail") => Ok(()),
            _ => Err(format!("{field} must be \"resend\" or \"fail\"")),
        },
        (_, COUNTRIES) => match value.as_array() {
            Some(list)
                if !list.is_empty()
                    && list.iter().all(|c| {
                        c.as_str()
                            .is_some_and(|c| c.len() == 2 && super::recipient::is_country_code(c))
                    }) =>
            {
                Ok(())
            }
            _ => Err(format!(
                "{field} must be a non-empty list of ISO 3166 country codes, such as [\"US\", \"CA\"]"
            )),
        },
        (_, SMART_ENCODING) => match value {
            Value::Bool(_) => Ok(()),
            _ => Err(format!("{field} must be true or false")),
        },
        (ProviderKind::Vonage, "currency") => match value.as_str() {
            Some(c) if c.len() == 3 && c.chars().all(|c| c.is_ascii_uppercase()) => Ok(()),
            _ => Err(format!(
                "{field} must be an ISO 4217 currency code, such as \"EUR\""
            )),
        },
        (_, MAX_PER_SECOND) => match value.as_u64() {
            Some(n) if (1..=MAX_PER_SECOND_LIMIT).contains(&n) => Ok(()),
            _ => Err(format!(
                "{field} must be an integer between 1 and {MAX_PER_SECOND_LIMIT}"
            )),
        },
        (_, "base_url") | (ProviderKind::AwsSns | ProviderKind::AwsSes, "sns_cert_base_url") => {
            let s = non_empty_string(&field, value)?;
            match url::Url::parse(s) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
                _ => Err(format!("{field} must be an absolute http(s) URL")),
            }
        }
        (ProviderKind::Sandbox, "delivery_delay_ms") => match value.as_u64() {
            Some(ms) if ms <= 3_600_000 => Ok(()),
            _ => Err(format!("{field} must be an integer between 0 and 3600000")),
        },
        (ProviderKind::Sandbox, "failure_rate" | "undelivered_rate") => match value.as_f64() {
            Some(r) if (0.0..=1.0).contains(&r) => Ok(()),
            _ => Err(format!("{field} must be a number between 0 and 1")),
        },
        (ProviderKind::Sendgrid | ProviderKind::AwsSes, "from_email") => {
            let s = non_empty_string(&field, value)?;
            if s.contains('@') && !s.starts_with('@') && !s.ends_with('@') {
                Ok(())
            } else {
                Err(format!("{field} must be an e-mail address"))
            }
        }
        _ => non_empty_string(&field, value).map(|_| ()),
    }
}

fn check_credential_value(kind: ProviderKind, key: &str, value: &Value) -> Result<(), String> {
    let field = format!("credentials.{key}");
    if kind == ProviderKind::Fcm && key == "service_account" {
        let account = match value {
            Value::Object(map) => map.clone(),
            Value::String(s) => match serde_json::from_str::<Map<String, Value>>(s) {
                Ok(map) => map,
                Err(_) => return Err(format!("{field} must be the service account JSON key")),
            },
            _ => return Err(format!("{field} must be the service account JSON key")),
        };
        for required in ["client_email", "private_key", "token_uri"] {
            non_empty_string(
                &format!("{field}.{required}"),
                account.get(required).unwrap_or(&Value::Null),
            )?;
        }
        return Ok(());
    }
    non_empty_string(&field, value).map(|_| ())
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown provider kind {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn twilio_needs_a_sender_and_both_credentials() {
        let creds = map(json!({"account_sid": "AC1", "auth_token": "t"}));
        assert!(
            ProviderKind::Twilio
                .validate(&map(json!({"from": "+15005550006"})), &creds)
                .is_ok()
        );
        let err = ProviderKind::Twilio
            .validate(&map(json!({})), &creds)
            .unwrap_err();
        assert!(err.contains("from"), "{err}");
        let err = ProviderKind::Twilio
            .validate(
                &map(json!({"from": "+1"})),
                &map(json!({"account_sid": "AC1"})),
            )
            .unwrap_err();
        assert_eq!(err, "credentials.auth_token is required for TWILIO");
    }

    #[test]
    fn unknown_settings_and_bad_urls_are_named() {
        let err = ProviderKind::Sandbox
            .validate(&map(json!({"colour": "red"})), &Map::new())
            .unwrap_err();
        assert!(err.starts_with("config.colour"), "{err}");
        let err = ProviderKind::Sandbox
            .validate(&map(json!({"base_url": "ftp://x"})), &Map::new())
            .unwrap_err();
        assert!(err.starts_with("config.base_url"), "{err}");
    }

    #[test]
    fn aws_kinds_take_an_sns_topic_and_an_sns_certificate_base_url() {
        let creds = map(json!({"access_key_id": "AK", "secret_access_key": "s"}));
        let config = map(json!({
            "region": "eu-west-1", "from_email": "a@example.com",
            "sns_topic_arn": "arn:aws:sns:eu-west-1:123456789012:ses",
            "sns_cert_base_url": "http://127.0.0.1:9000"
        }));
        assert!(ProviderKind::AwsSes.validate(&config, &creds).is_ok());
        let bad = map(json!({"region": "eu-west-1", "sns_cert_base_url": "sns"}));
        let err = ProviderKind::AwsSns.validate(&bad, &creds).unwrap_err();
        assert!(err.starts_with("config.sns_cert_base_url"), "{err}");
        let twilio = map(json!({"from": "+1", "sns_topic_arn": "arn"}));
        let creds = map(json!({"account_sid": "AC1", "auth_token": "t"}));
        assert!(ProviderKind::Twilio.validate(&twilio, &creds).is_err());
    }

    #[test]
    fn fcm_service_account_must_carry_its_keys() {
        let config = map(json!({"project_id": "p"}));
        let ok = map(
            json!({"service_account": {"client_email": "a@b", "private_key": "k", "token_uri": "https://t"}}),
        );
        assert!(ProviderKind::Fcm.validate(&config, &ok).is_ok());
        let bad = map(json!({"service_account": {"client_email": "a@b"}}));
        let err = ProviderKind::Fcm.validate(&config, &bad).unwrap_err();
        assert_eq!(
            err,
            "credentials.service_account.private_key must be a non-empty string"
        );
    }
}
