//! Webhook subscriptions: which URLs may receive events, which topics can be subscribed to,
//! and the signing secrets.

use std::net::{Ipv4Addr, Ipv6Addr};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use url::{Host, Url};

/// Topics a webhook can subscribe to (SPEC section 7).
pub const WEBHOOK_TOPICS: [&str; 9] = [
    "eventzr.cpaas.communication.requested.v1",
    "eventzr.cpaas.communication.sent.v1",
    "eventzr.cpaas.communication.delivered.v1",
    "eventzr.cpaas.communication.failed.v1",
    "eventzr.cpaas.provider.failover.v1",
    "eventzr.cpaas.sms.inbound.v1",
    "eventzr.cpaas.communication.cancelled.v1",
    "eventzr.cpaas.communication.fallback.v1",
    "eventzr.cpaas.webhook.disabled.v1",
];

/// Subscribes to every topic; only valid on its own.
pub const ALL_EVENTS: &str = "*";

/// Longest accepted URL.
pub const MAX_URL_LEN: usize = 2048;

/// Prefix of a shown secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Checks a webhook URL: absolute, `https://` (or `http://` when `allow_http`), with a host
/// and no credentials. Without `allow_internal`, a host that is not a public address (see
/// [`is_internal_ip`]) or `localhost` is refused too. Returns the URL in its normalised form.
pub fn check_webhook_url(
    raw: &str,
    allow_http: bool,
    allow_internal: bool,
) -> Result<String, String> {
    let raw = raw.trim();
    if raw.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let url = Url::parse(raw).map_err(|e| format!("must be an absolute https:// URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err("must use https:// (plain http is allowed only in development)".into());
        }
        other => return Err(format!("must use https://, not {other}:")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    let host = url.host().ok_or("must name a host")?;
    if !allow_internal && is_internal(&host) {
        return Err("must point to a public host, not a loopback, private or local address".into());
    }
    Ok(url.to_string())
}

/// Whether an address is not a public host, deny by default: an IPv4 address is public unless
/// it is in one of the special-purpose ranges (this network, private, shared, loopback,
/// link-local, IETF protocol assignments `192.0.0.0/24`, the documentation nets, the 6to4 relay
/// anycast, benchmarking `198.18.0.0/15`, multicast, reserved `240.0.0.0/4`); an IPv6 address is
/// public only inside global unicast `2000::/3` and outside its special blocks (documentation,
/// 6to4 `2002::/16`, Teredo, ORCHID, benchmarking), so NAT64 `64:ff9b::/96`, IPv4-compatible
/// addresses, site-local `fec0::/10`, unique local, link-local and multicast are all refused.
/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
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

/// IPv4 special-purpose blocks (RFC 6890 and its updates), as (network, prefix length).
const V4_SPECIAL: &[([u8; 4], u32)] = &[
    ([0, 0, 0, 0], 8),
    ([10, 0, 0, 0], 8),
    ([100, 64, 0, 0], 10),
    ([127, 0, 0, 0], 8),
    ([169, 254, 0, 0], 16),
    ([172, 16, 0, 0], 12),
    ([192, 0, 0, 0], 24),
    ([192, 0, 2, 0], 24),
    ([192, 88, 99, 0], 24),
    ([192, 168, 0, 0], 16),
    ([198, 18, 0, 0], 15),
    ([198, 51, 100, 0], 24),
    ([203, 0, 113, 0], 24),
    ([224, 0, 0, 0], 4),
    ([240, 0, 0, 0], 4),
];

/// Special blocks inside global unicast `2000::/3`, as (first segments, prefix length).
const V6_SPECIAL: &[([u16; 2], u32)] = &[
    ([0x2001, 0x0000], 32), // Teredo
    ([0x2001, 0x0002], 48), // benchmarking
    ([0x2001, 0x0010], 28), // ORCHID
    ([0x2001, 0x0020], 28), // ORCHIDv2
    ([0x2001, 0x0db8], 32), // documentation
    ([0x2002, 0x0000], 16), // 6to4
    ([0x3fff, 0x0000], 20), // documentation
];

fn internal_v4(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    V4_SPECIAL.iter().any(|(net, len)| {
        let mask = u32::MAX << (32 - len);
        bits & mask == u32::from(Ipv4Addr::from(*net)) & mask
    })
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    if bits >> 125 != 0b001 {
        return true; // outside global unicast 2000::/3
    }
    V6_SPECIAL.iter().any(|(first, len)| {
        let net = (u128::from(first[0]) << 112) | (u128::from(first[1]) << 96);
        let mask = u128::MAX << (128 - len);
        bits & mask == net & mask
    })
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
            check_webhook_url(" https://hooks.example.com/cpaas?x=1 ", false, false).unwrap(),
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
            assert!(check_webhook_url(bad, false, false).is_err(), "{bad}");
        }
        assert!(
            check_webhook_url(
                &format!("https://a.example/{}", "x".repeat(2048)),
                false,
                false
            )
            .is_err()
        );
        assert!(check_webhook_url("http://127.0.0.1:9000/hook", true, true).is_ok());
        assert!(check_webhook_url("http://u:p@127.0.0.1/hook", true, true).is_err());
        assert!(check_webhook_url("http://hooks.example.com/x", true, false).is_ok());
        assert!(check_webhook_url("https://127.0.0.1/x", true, false).is_err());
        assert!(check_webhook_url("http://127.0.0.1/x", false, true).is_err());
    }

    #[test]
    fn the_address_filter_denies_every_special_purpose_block() {
        for internal in [
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.1",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "239.1.1.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2001::1",
            "2001:db8::1",
            "fec0::1",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "100::1",
        ] {
            let ip: std::net::IpAddr = internal.parse().unwrap();
            assert!(is_internal_ip(ip), "{internal} must be refused");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "::ffff:8.8.8.8",
            "2606:4700::1111",
        ] {
            let ip: std::net::IpAddr = public.parse().unwrap();
            assert!(!is_internal_ip(ip), "{public} is public");
        }
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
