//! Where each provider kind may be reached outside development: its own public API hosts
//! (any subdomain of the domains below, so regional endpoints pass), plus hosts the operator
//! adds with `PROVIDER_EXTRA_HOSTS`. A tenant's `config.base_url` (and FCM's
//! `service_account.token_uri`) must be an `https://` URL on one of them, so no tenant can point
//! this service's calls at an internal address. AWS_SNS and AWS_SES providers must also pin
//! the SNS topic their notifications come from.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::domain::ProviderKind;

/// The domains each kind's API lives under.
pub fn default_domains(kind: ProviderKind) -> &'static [&'static str] {
    match kind {
        ProviderKind::Twilio => &["twilio.com"],
        ProviderKind::MetaWhatsapp => &["graph.facebook.com"],
        ProviderKind::Vonage => &["nexmo.com", "vonage.com"],
        ProviderKind::AwsSns | ProviderKind::AwsSes => &["amazonaws.com"],
        ProviderKind::Sendgrid => &["sendgrid.com"],
        ProviderKind::Fcm => &["googleapis.com"],
        ProviderKind::Sandbox => &[],
    }
}

/// The allowed hosts of every kind: the defaults and the operator's additions.
#[derive(Clone, Debug, Default)]
pub struct ProviderHosts {
    extra: HashMap<ProviderKind, Vec<String>>,
}

impl ProviderHosts {
    /// Parses `PROVIDER_EXTRA_HOSTS`: `KIND=host` pairs separated by commas
    /// (`TWILIO=api.twilio.example.net,FCM=fcm.eu.example.net`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut extra: HashMap<ProviderKind, Vec<String>> = HashMap::new();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, host) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not KIND=host"))?;
            let kind: ProviderKind = kind.trim().parse()?;
            let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
            if host.is_empty() || host.contains(['/', ':', '@', ' ']) {
                return Err(format!("{host:?} is not a host name"));
            }
            extra.entry(kind).or_default().push(host);
        }
        Ok(Self { extra })
    }

    /// Whether `host` is one of the kind's hosts (or a subdomain of one).
    pub fn allows(&self, kind: ProviderKind, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let extra = self
            .extra
            .get(&kind)
            .into_iter()
            .flatten()
            .map(String::as_str);
        default_domains(kind)
            .iter()
            .copied()
            .chain(extra)
            .any(|domain| host == domain || host.ends_with(&format!(".{domain}")))
    }

    /// Checks every URL a provider's settings name; the error names the field.
    pub fn check(
        &self,
        kind: ProviderKind,
        config: &Map<String, Value>,
        credentials: &Map<String, Value>,
    ) -> Result<(), String> {
        if let Some(url) = config.get("base_url").and_then(Value::as_str) {
            self.check_url(kind, "config.base_url", url)?;
        }
        if matches!(kind, ProviderKind::AwsSns | ProviderKind::AwsSes)
            && config
                .get("sns_topic_arn")
                .and_then(Value::as_str)
                .is_none_or(|t| !t.starts_with("arn:aws:sns:"))
        {
            return Err(format!(
                "config.sns_topic_arn is required for {kind} outside development: the ARN of \
                 the topic its notifications come from"
            ));
        }
        if kind == ProviderKind::Fcm
            && let Some(url) = token_uri(credentials.get("service_account"))
        {
            self.check_url(kind, "credentials.service_account.token_uri", &url)?;
        }
        Ok(())
    }

    fn check_url(&self, kind: ProviderKind, field: &str, raw: &str) -> Result<(), String> {
        let url = url::Url::parse(raw).map_err(|_| format!("{field} must be an absolute URL"))?;
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            _ => {
                return Err(format!(
                    "{field} must name a host of {kind}, not an address"
                ));
            }
        };
        if url.scheme() != "https" {
            return Err(format!("{field} must use https://"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("{field} must not carry credentials"));
        }
        if !self.allows(kind, &host) {
            let mut known: Vec<String> = default_domains(kind)
                .iter()
                .map(|d| (*d).to_owned())
                .collect();
            known.extend(self.extra.get(&kind).into_iter().flatten().cloned());
            return Err(if known.is_empty() {
                format!("{field} cannot be set for {kind} outside development")
            } else {
                format!("{field} must be a host of {kind} ({})", known.join(", "))
            });
        }
        Ok(())
    }
}

/// The `token_uri` of a service account given as an object or as its JSON text.
fn token_uri(account: Option<&Value>) -> Option<String> {
    match account? {
        Value::Object(map) => map.get("token_uri")?.as_str().map(str::to_owned),
        Value::String(text) => serde_json::from_str::<Value>(text)
            .ok()?
            .get("token_uri")?
            .as_str()
            .map(str::to_owned),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn only_the_providers_own_https_hosts_pass() {
        let hosts = ProviderHosts::default();
        let check =
            |kind, url: &str| hosts.check(kind, &map(json!({ "base_url": url })), &Map::new());
        assert!(check(ProviderKind::Twilio, "https://api.twilio.com").is_ok());
        assert!(check(ProviderKind::Twilio, "https://api.dublin.ie1.twilio.com").is_ok());
        let ses = |config: Value| hosts.check(ProviderKind::AwsSes, &map(config), &Map::new());
        let topic = "arn:aws:sns:eu-west-1:123456789012:ses-events";
        let region = "https://email.eu-west-1.amazonaws.com";
        assert!(ses(json!({ "base_url": region, "sns_topic_arn": topic })).is_ok());
        assert!(ses(json!({ "base_url": region })).is_err());
        for bad in [
            "http://api.twilio.com",
            "https://127.0.0.1:8080",
            "https://[::1]/",
            "https://twilio.com.evil.example",
            "https://eviltwilio.com",
            "https://user:pw@api.twilio.com",
            "https://metadata.google.internal",
        ] {
            assert!(check(ProviderKind::Twilio, bad).is_err(), "{bad}");
        }
        assert!(check(ProviderKind::Sandbox, "https://example.com").is_err());
    }

    #[test]
    fn fcm_token_uri_is_checked_and_extra_hosts_extend_a_kind() {
        let hosts = ProviderHosts::parse("FCM=fcm.relay.example.net").unwrap();
        let creds = |uri: &str| map(json!({ "service_account": { "token_uri": uri } }));
        assert!(
            hosts
                .check(
                    ProviderKind::Fcm,
                    &Map::new(),
                    &creds("https://oauth2.googleapis.com/token")
                )
                .is_ok()
        );
        assert!(
            hosts
                .check(
                    ProviderKind::Fcm,
                    &Map::new(),
                    &creds("https://169.254.169.254/token")
                )
                .is_err()
        );
        assert!(
            hosts
                .check(
                    ProviderKind::Fcm,
                    &map(json!({ "base_url": "https://fcm.relay.example.net" })),
                    &Map::new()
                )
                .is_ok()
        );
        assert!(ProviderHosts::parse("TWILIO").is_err());
        assert!(ProviderHosts::parse("NOPE=a.example").is_err());
    }
}
