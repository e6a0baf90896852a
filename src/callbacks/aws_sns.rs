//! Amazon SNS HTTP(S) deliveries (SES events published to a topic this service subscribes).
//!
//! The body is the SNS envelope (`Content-Type: text/plain`, JSON). Verification, following
//! "Verifying the signatures of Amazon SNS messages":
//! - `SigningCertURL` must be `https://sns.<region>.amazonaws.com[.cn]/….pem`; the certificate
//!   is fetched over TLS (which proves the host) and cached by URL. Outside production a
//!   provider's `config.sns_cert_base_url` may name another base (a local test server) that
//!   certificate and subscription URLs must start with instead.
//! - The string to sign is `Key\nValue\n` for, in this order, `Message`, `MessageId`,
//!   `Subject` (when present), `Timestamp`, `TopicArn`, `Type` for notifications, and
//!   `Message`, `MessageId`, `SubscribeURL`, `Timestamp`, `Token`, `TopicArn`, `Type` for
//!   (un)subscription confirmations.
//! - `Signature` (base64) is RSA PKCS#1 v1.5 with SHA-1 (`SignatureVersion` 1) or SHA-256 (2),
//!   checked with the certificate's public key.
//! - With `config.sns_topic_arn` set, any other `TopicArn` is refused: anyone can point a topic
//!   of their own account at this URL, and SNS would sign its messages too. Outside development
//!   the pin is required: a provider without one is refused when saved, and its notifications
//!   are refused.
//!
//! `SubscriptionConfirmation` is confirmed by a GET of `SubscribeURL` (same host rule);
//! `Notification` carries an SES event (see `ses`); `UnsubscribeConfirmation` is stored and
//! ignored. The identity of a delivery is the envelope's `MessageId`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;

use super::signing::{base64_decode, json_body};
use super::{CallbackError, Parsed, RawCallback, Source, bad_signature, ses};

/// How many certificates are kept; SNS rotates them rarely.
const CACHE_LIMIT: usize = 64;

/// How long a certificate URL that could not be fetched is not tried again.
const FAILURE_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// Certificate fetches in flight at once, whatever arrives.
const CONCURRENT_FETCHES: usize = 4;

/// Public keys of signing certificates, by certificate URL; failed fetches are remembered for a
/// minute and at most four fetches run at once, so a flood of forged notifications naming
/// certificate URLs cannot make this process hammer them.
pub struct CertificateCache {
    keys: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    failures: Mutex<HashMap<String, std::time::Instant>>,
    fetches: tokio::sync::Semaphore,
}

impl Default for CertificateCache {
    fn default() -> Self {
        Self {
            keys: Mutex::default(),
            failures: Mutex::default(),
            fetches: tokio::sync::Semaphore::new(CONCURRENT_FETCHES),
        }
    }
}

impl CertificateCache {
    fn failed_recently(&self, url: &str) -> bool {
        self.failures
            .lock()
            .ok()
            .and_then(|f| f.get(url).map(|at| at.elapsed() < FAILURE_TTL))
            .unwrap_or(false)
    }

    fn remember_failure(&self, url: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.retain(|_, at| at.elapsed() < FAILURE_TTL);
            if failures.len() >= CACHE_LIMIT {
                failures.clear();
            }
            failures.insert(url.to_owned(), std::time::Instant::now());
        }
    }

    fn get(&self, url: &str) -> Option<Arc<Vec<u8>>> {
        self.keys.lock().ok()?.get(url).cloned()
    }

    fn put(&self, url: &str, key: Arc<Vec<u8>>) {
        if let Ok(mut keys) = self.keys.lock() {
            if keys.len() >= CACHE_LIMIT {
                keys.clear();
            }
            keys.insert(url.to_owned(), key);
        }
    }
}

/// Which URLs may be fetched for a provider.
pub struct Endpoints {
    test_base: Option<String>,
    topic_arn: Option<String>,
    /// Development: a provider without `sns_topic_arn` takes any topic.
    unpinned_allowed: bool,
}

impl Endpoints {
    pub fn for_source(source: &Source, allow_test_endpoints: bool) -> Self {
        Self {
            unpinned_allowed: allow_test_endpoints,
            test_base: source
                .settings
                .config_str("sns_cert_base_url")
                .filter(|_| allow_test_endpoints)
                .map(|b| b.trim_end_matches('/').to_owned()),
            topic_arn: source
                .settings
                .config_str("sns_topic_arn")
                .map(str::to_owned),
        }
    }

    /// Whether `url` is one SNS would use (or starts with the configured test base).
    pub fn allows(&self, url: &str) -> bool {
        if let Some(base) = &self.test_base {
            return url == base || url.starts_with(&format!("{base}/"));
        }
        is_sns_url(url)
    }
}

/// `https://sns.<region>.amazonaws.com` (or `.com.cn`), on the default port.
pub fn is_sns_url(raw: &str) -> bool {
    let Ok(url) = url::Url::parse(raw) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    let region = host
        .strip_prefix("sns.")
        .and_then(|h| {
            h.strip_suffix(".amazonaws.com")
                .or_else(|| h.strip_suffix(".amazonaws.com.cn"))
        })
        .unwrap_or_default();
    url.scheme() == "https"
        && url.port().is_none()
        && url.username().is_empty()
        && region.len() >= 3
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The string SNS signs for an envelope, or `None` when a field it needs is missing.
pub fn string_to_sign(envelope: &Value) -> Option<String> {
    let ty = envelope.get("Type")?.as_str()?;
    let fields: &[&str] = match ty {
        "Notification" => &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ],
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ],
        _ => return None,
    };
    let mut out = String::new();
    for field in fields {
        match envelope.get(*field).and_then(Value::as_str) {
            Some(value) => {
                out.push_str(field);
                out.push('\n');
                out.push_str(value);
                out.push('\n');
            }
            None if *field == "Subject" => {}
            None => return None,
        }
    }
    Some(out)
}

/// Checks the envelope's signature and reads it.
pub async fn parse(
    http: &reqwest::Client,
    certificates: &CertificateCache,
    endpoints: &Endpoints,
    raw: &RawCallback<'_>,
) -> Result<Parsed, CallbackError> {
    let envelope = json_body(raw.body)?;
    let field = |name: &str| envelope.get(name).and_then(Value::as_str);
    let signed = string_to_sign(&envelope)
        .ok_or_else(|| bad_signature("not an SNS message: a signed field is missing"))?;
    let cert_url = field("SigningCertURL")
        .filter(|u| endpoints.allows(u))
        .ok_or_else(|| bad_signature("SigningCertURL is missing or not an SNS URL"))?;
    let signature = field("Signature")
        .and_then(base64_decode)
        .ok_or_else(|| bad_signature("Signature is missing or not base64"))?;
    let key = public_key(http, certificates, cert_url).await?;
    let algorithm = match field("SignatureVersion") {
        Some("1") => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        Some("2") => &RSA_PKCS1_2048_8192_SHA256,
        _ => return Err(bad_signature("SignatureVersion must be 1 or 2")),
    };
    UnparsedPublicKey::new(algorithm, key.as_slice())
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| bad_signature("the SNS signature does not match"))?;
    let topic = field("TopicArn").unwrap_or_default();
    match &endpoints.topic_arn {
        Some(expected) if topic != expected => {
            return Err(bad_signature(format!("unexpected TopicArn {topic}")));
        }
        // Outside development a provider must pin its topic: any AWS account can point a topic
        // of its own at this URL, and SNS signs its messages as well as ours.
        None if !endpoints.unpinned_allowed => {
            return Err(bad_signature(
                "the provider pins no sns_topic_arn; notifications are refused until it does",
            ));
        }
        _ => {}
    }
    let id = field("MessageId").unwrap_or_default();
    let mut parsed = Parsed {
        dedupe_key: format!("sns:{id}"),
        ..Default::default()
    };
    match field("Type") {
        Some("SubscriptionConfirmation") => {
            let url = field("SubscribeURL")
                .filter(|u| endpoints.allows(u))
                .ok_or_else(|| bad_signature("SubscribeURL is not an SNS URL"))?;
            parsed.confirm_url = Some(url.to_owned());
        }
        Some("Notification") => {
            parsed.events = ses::event(id, field("Message").unwrap_or_default())
                .into_iter()
                .collect();
        }
        _ => {}
    }
    Ok(parsed)
}

/// The SubjectPublicKeyInfo of the certificate at `url`, from the cache or fetched.
async fn public_key(
    http: &reqwest::Client,
    certificates: &CertificateCache,
    url: &str,
) -> Result<Arc<Vec<u8>>, CallbackError> {
    if let Some(key) = certificates.get(url) {
        return Ok(key);
    }
    if certificates.failed_recently(url) {
        return Err(CallbackError::Upstream(format!(
            "SNS certificate {url}: it could not be fetched in the last minute"
        )));
    }
    let _permit = certificates
        .fetches
        .acquire()
        .await
        .map_err(|e| CallbackError::Internal(e.into()))?;
    if let Some(key) = certificates.get(url) {
        return Ok(key);
    }
    let fetched = fetch_public_key(http, url).await;
    match &fetched {
        Ok(key) => certificates.put(url, key.clone()),
        Err(_) => certificates.remember_failure(url),
    }
    fetched
}

async fn fetch_public_key(
    http: &reqwest::Client,
    url: &str,
) -> Result<Arc<Vec<u8>>, CallbackError> {
    let unavailable = |e: String| CallbackError::Upstream(format!("SNS certificate {url}: {e}"));
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(unavailable(format!("answered {}", response.status())));
    }
    let pem =
        crate::providers::http::read_capped(response, crate::providers::http::MAX_REPLY_BYTES)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
    let der = CertificateDer::from_pem_slice(&pem)
        .map_err(|e| bad_signature(format!("the signing certificate is not a PEM X.509: {e}")))?;
    let cert = webpki::EndEntityCert::try_from(&der)
        .map_err(|e| bad_signature(format!("the signing certificate does not parse: {e}")))?;
    Ok(Arc::new(cert.subject_public_key_info().as_ref().to_vec()))
}

/// Confirms a subscription by a GET of its `SubscribeURL`.
pub async fn confirm_subscription(http: &reqwest::Client, url: &str) -> Result<(), CallbackError> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| CallbackError::Upstream(format!("confirming the subscription: {e}")))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(CallbackError::Upstream(format!(
            "confirming the subscription: SNS answered {}",
            response.status()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_https_sns_hosts_may_serve_certificates() {
        assert!(is_sns_url(
            "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem"
        ));
        assert!(is_sns_url("https://sns.cn-north-1.amazonaws.com.cn/x.pem"));
        assert!(!is_sns_url("http://sns.eu-west-1.amazonaws.com/x.pem"));
        assert!(!is_sns_url(
            "https://sns.eu-west-1.amazonaws.com.evil.io/x.pem"
        ));
        assert!(!is_sns_url(
            "https://evil.io/sns.eu-west-1.amazonaws.com/x.pem"
        ));
        assert!(!is_sns_url(
            "https://sns.eu-west-1.amazonaws.com:8443/x.pem"
        ));
    }

    #[test]
    fn the_string_to_sign_follows_the_documented_order() {
        let n = json!({"Type": "Notification", "MessageId": "m", "TopicArn": "t",
            "Message": "hello", "Timestamp": "ts", "Signature": "x"});
        assert_eq!(
            string_to_sign(&n).unwrap(),
            "Message\nhello\nMessageId\nm\nTimestamp\nts\nTopicArn\nt\nType\nNotification\n"
        );
        let c = json!({"Type": "SubscriptionConfirmation", "MessageId": "m", "Token": "k",
            "TopicArn": "t", "Message": "c", "SubscribeURL": "u", "Timestamp": "ts"});
        assert_eq!(
            string_to_sign(&c).unwrap(),
            "Message\nc\nMessageId\nm\nSubscribeURL\nu\nTimestamp\nts\nToken\nk\nTopicArn\nt\nType\nSubscriptionConfirmation\n"
        );
    }
}
