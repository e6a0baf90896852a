//! The HTTP plumbing every adapter shares: the one `reqwest::Client`, and how a call's result
//! becomes a [`SendOutcome`].
//!
//! Classification, the same for every provider:
//! - no connection (refused, unreachable, connect timeout): nothing was sent → transient;
//! - a timeout or lost connection once the request was written: the provider may have taken
//!   it → ambiguous, never retried blindly;
//! - 429 → rate-limited, with `Retry-After` (seconds or an HTTP date) when given;
//! - 408 and 5xx → transient; any other 4xx → permanent;
//! - a provider error code can override the status (a Graph 400 with code 130429 is a rate
//!   limit), which each adapter expresses as a [`Hint`].

use std::error::Error as _;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};

use super::SendOutcome;

/// The whole-call limit of the shared client.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
/// The connect limit of the shared client.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The client all adapters share: rustls, a 10 s total and 2 s connect timeout, no redirects.
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    http_client_with_timeout(TOTAL_TIMEOUT)
}

/// The same client with another total timeout per call (`PROVIDER_TIMEOUT_MS`).
pub fn http_client_with_timeout(timeout: std::time::Duration) -> reqwest::Result<reqwest::Client> {
    client_builder(timeout).build()
}

/// The settings every outgoing client shares, to build on.
pub fn client_builder(timeout: std::time::Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cpaas-orchestrator/", env!("CARGO_PKG_VERSION")))
}

/// The most of a reply body any outgoing call reads; the rest is dropped unread, so a hostile
/// or broken server cannot make this process buffer without bound.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Reads at most `limit` bytes of a response body; what follows is dropped with the response.
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> reqwest::Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(body)
}

/// A provider's answer, read up to [`MAX_REPLY_BYTES`].
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON, when it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends the request and reads the whole answer; a transport failure is already classified.
pub(crate) async fn execute(request: RequestBuilder) -> Result<Reply, SendOutcome> {
    let response = request.send().await.map_err(|e| transport_failure(&e))?;
    let status = response.status();
    let headers = response.headers().clone();
    // Losing the body after the status line arrived still means the provider saw the call.
    let body =
        read_capped(response, MAX_REPLY_BYTES)
            .await
            .map_err(|e| SendOutcome::Ambiguous {
                message: format!("the answer ({status}) could not be read: {}", chain(&e)),
            })?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// Sends a call that is not a send (a probe, a listing): the answer when it is a success,
/// else the failure as `error` reads it and the shared rules classify it.
pub(crate) async fn call(
    request: RequestBuilder,
    error: impl Fn(&Reply) -> ProviderError,
) -> Result<Reply, super::CallError> {
    match execute(request).await {
        Ok(reply) if reply.status.is_success() => Ok(reply),
        Ok(reply) => Err(classify_error(&reply, error(&reply)).into()),
        Err(outcome) => Err(outcome.into()),
    }
}

/// Classifies a request that produced no HTTP answer.
pub(crate) fn transport_failure(err: &reqwest::Error) -> SendOutcome {
    if err.is_builder() {
        SendOutcome::PermanentFailure {
            code: "INVALID_REQUEST".into(),
            message: format!("the request could not be built: {}", chain(err)),
        }
    } else if err.is_connect() || refused(err) {
        SendOutcome::TransientFailure {
            code: "CONNECT_FAILED".into(),
            message: format!("no connection to the provider: {}", chain(err)),
        }
    } else if err.is_timeout() {
        SendOutcome::Ambiguous {
            message: format!("timed out after the request was sent: {}", chain(err)),
        }
    } else {
        SendOutcome::Ambiguous {
            message: format!(
                "the connection failed after the request was sent: {}",
                chain(err)
            ),
        }
    }
}

fn refused(err: &reqwest::Error) -> bool {
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// An error and its causes on one line.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

/// What a provider's own error code says about retrying, when it says something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hint {
    Permanent,
    Transient,
    RateLimited,
}

/// A provider's error, as read from its answer.
#[derive(Debug, Default)]
pub(crate) struct ProviderError {
    pub code: Option<String>,
    pub message: Option<String>,
    pub hint: Option<Hint>,
    /// A wait the provider asked for by other means than `Retry-After`.
    pub retry_after: Option<Duration>,
}

/// Longest provider error message kept (it is shown to the tenant in attempts).
const MAX_ERROR_MESSAGE_CHARS: usize = 200;

/// Classifies an answer that was not a success.
pub(crate) fn classify_error(reply: &Reply, err: ProviderError) -> SendOutcome {
    let status = reply.status;
    let code = err
        .code
        .unwrap_or_else(|| format!("HTTP_{}", status.as_u16()));
    // The provider's own short explanation, bounded and printable; never the raw body.
    let message = err
        .message
        .map(|m| {
            m.chars()
                .filter(|c| !c.is_control())
                .take(MAX_ERROR_MESSAGE_CHARS)
                .collect::<String>()
        })
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .map_or_else(|| status.to_string(), str::to_owned)
        });
    let hint = err.hint.unwrap_or(match status.as_u16() {
        429 => Hint::RateLimited,
        408 | 500..=599 => Hint::Transient,
        _ => Hint::Permanent,
    });
    match hint {
        Hint::RateLimited => SendOutcome::RateLimited {
            retry_after: retry_after(&reply.headers).or(err.retry_after),
            code,
            message,
        },
        Hint::Transient => SendOutcome::TransientFailure { code, message },
        Hint::Permanent => SendOutcome::PermanentFailure { code, message },
    }
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// A success whose answer must name the provider's id; without one the message may have been
/// taken but cannot be correlated, so the outcome is ambiguous.
pub(crate) fn accepted(
    id: Option<String>,
    price: Option<crate::pricing::Price>,
    reply: &Reply,
) -> SendOutcome {
    match id.filter(|id| !id.is_empty()) {
        Some(provider_message_id) => SendOutcome::Accepted {
            provider_message_id,
            price,
        },
        None => SendOutcome::Ambiguous {
            message: format!(
                "the provider answered {} without a message id",
                reply.status
            ),
        },
    }
}

/// A decimal price (`"-0.00750"`, `"0.03330000"`) as whole micros of its currency, rounded
/// half up; the sign is dropped (Twilio reports charges as negative numbers).
pub(crate) fn price_micros(price: &str) -> Option<i64> {
    let price = price.trim().trim_start_matches(['-', '+']);
    let (whole, fraction) = price.split_once('.').unwrap_or((price, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut digits = fraction.bytes().map(|b| i64::from(b - b'0'));
    let mut micros = 0i64;
    for _ in 0..6 {
        micros = micros * 10 + digits.next().unwrap_or(0);
    }
    if digits.next().is_some_and(|d| d >= 5) {
        micros += 1;
    }
    whole.checked_mul(1_000_000)?.checked_add(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_become_micros() {
        assert_eq!(price_micros("-0.00750"), Some(7_500));
        assert_eq!(price_micros("0.03330000"), Some(33_300));
        assert_eq!(price_micros("1.2345675"), Some(1_234_568));
        assert_eq!(price_micros("2"), Some(2_000_000));
        assert_eq!(price_micros(""), None);
        assert_eq!(price_micros("n/a"), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
    }
}
