//! Webhook subscriptions: which URLs may receive events, which topics can be subscribed to,
//! and the signing secrets.

use std::net::{Ipv4Addr, Ipv6Addr};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use url::{Host, Url};

/// Topics a webhook can subscribe to (SPEC section 7).
pub const WEBHOOK_TOPICS: [&str; 7] = [
    "eventzr.cpaas.communication.requested.v1",
    "eventzr.cpaas.communication.sent.v1",
    "eventzr.cpaas.communication.delivered.v1",
    "eventzr.cpaas.communication.failed.v1",
    "eventzr.cpaas.provider.failover.v1",
    "eventzr.cpaas.sms.inbound.v1",
    "eventzr.cpaas.communication.cancelled.v1",
];

/// Subscribes to every topic; only valid on its own.
pub const ALL_EVENTS: &str = "*";

/// Longest accepted URL.
pub const MAX_URL_LEN: usize = 2048;

/// Prefix of a shown secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Checks a webhook URL: absolute, `https://` (or `http://` when `allow_insecure`), with a
/// host and no credentials. Without `allow_insecure`, loopback, private and link-local
/// addresses and `localhost` are refused too. Returns the URL in its normalised form.
pub fn check_webhook_url(raw: &str, allow_insecure: bool) -> Result<String, String> {
    let raw = raw.trim();
    if raw.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let url = Url::parse(raw).map_err(|e| format!("must be an absolute https:// URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        "http" => {
            return Err("must use https:// (plain http is allowed only in development)".into());
        }
        other => return Err(format!("must use https://, not {other}:")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    let host = url.host().ok_or("must name a host")?;
    if !allow_insecure && is_internal(&host) {
        return Err("must point to a public host, not a loopback, private or local address".into());
    }
    Ok(url.to_string())
}

/// Whether an address is loopback, private, link-local, shared, unspecified or otherwise not a
/// public host: webhooks may not be sent there outside development.
pub fn is_internal_ip(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => internal_v4(v4),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => internal_v4(v4),
            None => internal_v6(v6),
        },
    }
}

fn is_internal(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Host::Ipv4(ip) => internal_v4(*ip),
        Host::Ipv6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => internal_v4(v4),
            None => internal_v6(*ip),
        },
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.octets()[0] == 0
        // 100.64.0.0/10, shared address space
        || (ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64)
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link local
}

/// Checks a subscription's topics: a non-empty list of published topics, or `["*"]`.
/// Duplicates are dropped; the error names the first bad entry.
pub fn check_events(events: &[String]) -> Result<Vec<String>, String> {
    if events.is_empty() {
        return Err("must list at least one event, or \"*\" for all".into());
    }
    if events.iter().any(|e| e == ALL_EVENTS) {
        return if events.iter().all(|e| e == ALL_EVENTS) {
            Ok(vec![ALL_EVENTS.to_owned()])
        } else {
            Err("\"*\" already covers every event and cannot be combined with others".into())
        };
    }
    let mut out: Vec<String> = Vec::with_capacity(events.len());
    for event in events {
        if !WEBHOOK_TOPICS.contains(&event.as_str()) {
            return Err(format!(
                "unknown event {event:?}; expected \"*\" or any of {}",
                WEBHOOK_TOPICS.join(", ")
            ));
        }
        if !out.contains(event) {
            out.push(event.clone());
        }
    }
    Ok(out)
}

/// Whether a subscription to `events` receives `topic`.
pub fn subscribes_to(events: &[String], topic: &str) -> bool {
    events.iter().any(|e| e == ALL_EVENTS || e == topic)
}

/// A new signing secret: `whsec_` and 32 random bytes in base64url. The HMAC key of the
/// signatures is this string exactly as shown.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_https_urls_without_credentials_pass() {
        assert_eq!(
            check_webhook_url(" https://hooks.example.com/cpaas?x=1 ", false).unwrap(),
            "https://hooks.example.com/cpaas?x=1"
        );
        for bad in [
            "http://hooks.example.com/x",
            "ftp://hooks.example.com/x",
            "/relative",
            "https://user:pw@hooks.example.com/x",
            "https://localhost/x",
            "https://127.0.0.1/x",
            "https://10.1.2.3/x",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://169.254.169.254/latest",
        ] {
            assert!(check_webhook_url(bad, false).is_err(), "{bad}");
        }
        assert!(
            check_webhook_url(&format!("https://a.example/{}", "x".repeat(2048)), false).is_err()
        );
        assert!(check_webhook_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(check_webhook_url("http://u:p@127.0.0.1/hook", true).is_err());
    }

    #[test]
    fn events_are_published_topics_or_the_wildcard() {
        let sent = "eventzr.cpaas.communication.sent.v1".to_owned();
        assert_eq!(
            check_events(&[sent.clone(), sent.clone()]).unwrap(),
            [sent.as_str()]
        );
        assert_eq!(check_events(&["*".into()]).unwrap(), ["*"]);
        assert!(check_events(&[]).is_err());
        assert!(check_events(&["*".into(), sent.clone()]).is_err());
        let err = check_events(&[sent.clone(), "eventzr.cpaas.nope.v1".into()]).unwrap_err();
        assert!(err.contains("eventzr.cpaas.nope.v1"), "{err}");
        assert!(subscribes_to(&["*".into()], &sent));
        assert!(!subscribes_to(
            std::slice::from_ref(&sent),
            WEBHOOK_TOPICS[5]
        ));
    }

    #[test]
    fn secrets_are_prefixed_random_and_long() {
        let a = generate_secret();
        assert!(a.starts_with("whsec_"));
        assert_eq!(a.len(), 6 + 43);
        assert_ne!(a, generate_secret());
    }
}
