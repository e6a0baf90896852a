//! Firebase Cloud Messaging HTTP v1: push notifications to one device token.
//!
//! - Auth: an OAuth2 access token for the service account, obtained with a signed RS256 JWT
//!   assertion (`iss` = `client_email`, scope `firebase.messaging`, `aud` = `token_uri`, one
//!   hour) exchanged at `token_uri`. The token is cached inside the client until 60 s before
//!   it expires; concurrent sends wait for one exchange instead of starting their own.
//! - `POST {base}/v1/projects/{project_id}/messages:send` (base `https://fcm.googleapis.com`)
//!   with `{message: {token, notification: {title?, body}, data: {message_id, tenant_id}}}`.
//! - Echo field: `data.message_id` (with `data.tenant_id`). FCM has no delivery webhook, so the
//!   echo reaches only the device; correlation on our side uses the returned id.
//! - Id: `name` (`projects/{p}/messages/{id}`).
//! - Errors (Google RPC `{error: {code, message, status, details: [{errorCode}]}}`):
//!   `UNREGISTERED`, `INVALID_ARGUMENT`, `SENDER_ID_MISMATCH`, `THIRD_PARTY_AUTH_ERROR` are
//!   permanent; `QUOTA_EXCEEDED` is a rate limit (with `Retry-After`); `UNAVAILABLE` and
//!   `INTERNAL` are transient; `UNAUTHENTICATED` drops the cached token and is transient.
//! - Probe: a fresh token exchange (the service account's key and grant), which also renews
//!   the cached token.
//! - A failed token exchange sends nothing, so it is transient, except a refused grant
//!   (`invalid_grant`, `invalid_client`, `unauthorized_client`), which is permanent.

use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::http::{self, Hint, ProviderError, Reply};
use super::{CallError, OutboundMessage, ProviderClient, ProviderSettings, SendOutcome};
use crate::domain::{Channel, ProviderKind};

const DEFAULT_BASE: &str = "https://fcm.googleapis.com";
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// How long before its expiry a cached token is replaced.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    token_uri: String,
    #[serde(default)]
    private_key_id: Option<String>,
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

/// One Firebase project, sending as one service account.
pub struct FcmClient {
    http: reqwest::Client,
    url: String,
    client_email: String,
    token_uri: String,
    key: EncodingKey,
    key_id: Option<String>,
    token: Mutex<Option<(String, Instant)>>,
}

impl FcmClient {
    /// Needs `project_id` and a `service_account` key (an object or its JSON text) whose
    /// private key parses.
    pub fn new(settings: &ProviderSettings, http: reqwest::Client) -> anyhow::Result<Self> {
        let project_id = settings.require_config("project_id")?;
        let account = match settings.credentials.get("service_account") {
            Some(Value::String(text)) => serde_json::from_str(text),
            Some(value) => serde_json::from_value(value.clone()),
            None => anyhow::bail!("credentials.service_account is required for FCM"),
        };
        let account: ServiceAccount =
            account.context("credentials.service_account is not a service account key")?;
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .context("credentials.service_account.private_key is not an RSA private key")?;
        Ok(Self {
            url: format!(
                "{}/v1/projects/{project_id}/messages:send",
                settings.base_url(DEFAULT_BASE)
            ),
            client_email: account.client_email,
            token_uri: account.token_uri,
            key_id: account.private_key_id,
            key,
            token: Mutex::new(None),
            http,
        })
    }

    /// A valid access token, from the cache or a new exchange.
    async fn access_token(&self) -> Result<String, SendOutcome> {
        self.token_with(false).await
    }

    /// A token from the cache (unless `fresh`) or a new exchange, which then fills the cache.
    async fn token_with(&self, fresh: bool) -> Result<String, SendOutcome> {
        let mut cached = self.token.lock().await;
        if !fresh
            && let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let asked = Instant::now();
        let (token, lifetime) = self.exchange().await?;
        *cached = lifetime
            .checked_sub(REFRESH_MARGIN)
            .filter(|d| !d.is_zero())
            .map(|d| (token.clone(), asked + d));
        Ok(token)
    }

    async fn exchange(&self) -> Result<(String, Duration), SendOutcome> {
        let now = chrono::Utc::now().timestamp();
        let claims = Assertion {
            iss: &self.client_email,
            scope: SCOPE,
            aud: &self.token_uri,
            iat: now,
            exp: now + 3600,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&self.key_id);
        let assertion = jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| {
            SendOutcome::PermanentFailure {
                code: "TOKEN_SIGNING_FAILED".into(),
                message: format!("the token assertion could not be signed: {e}"),
            }
        })?;
        let request = self.http.post(&self.token_uri).form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
        ]);
        let reply = http::execute(request)
            .await
            .map_err(|outcome| token_failure(&outcome))?;
        let body = reply.json().unwrap_or(Value::Null);
        if reply.status.is_success() {
            let token = body.get("access_token").and_then(Value::as_str);
            let lifetime = body
                .get("expires_in")
                .and_then(Value::as_u64)
                .unwrap_or(3600);
            return match token {
                Some(token) => Ok((token.to_owned(), Duration::from_secs(lifetime))),
                None => Err(SendOutcome::TransientFailure {
                    code: "TOKEN_EXCHANGE_FAILED".into(),
                    message: "the token endpoint answered without an access_token".into(),
                }),
            };
        }
        let error = body.get("error").and_then(Value::as_str).unwrap_or("");
        let message = format!(
            "token exchange refused ({}): {}",
            reply.status,
            body.get("error_description")
                .and_then(Value::as_str)
                .unwrap_or(error)
        );
        let code = format!(
            "TOKEN_{}",
            if error.is_empty() {
                "EXCHANGE_FAILED"
            } else {
                error
            }
        )
        .to_uppercase();
        Err(match error {
            "invalid_grant" | "invalid_client" | "unauthorized_client" => {
                SendOutcome::PermanentFailure { code, message }
            }
            _ => SendOutcome::TransientFailure { code, message },
        })
    }
}

/// The token exchange failed in transport: no message was sent, whatever the failure.
fn token_failure(outcome: &SendOutcome) -> SendOutcome {
    let message = match outcome {
        SendOutcome::PermanentFailure { message, .. }
        | SendOutcome::TransientFailure { message, .. }
        | SendOutcome::RateLimited { message, .. }
        | SendOutcome::Ambiguous { message } => message.clone(),
        SendOutcome::Accepted { .. } => String::new(),
    };
    SendOutcome::TransientFailure {
        code: "TOKEN_EXCHANGE_FAILED".into(),
        message: format!("token exchange failed: {message}"),
    }
}

#[async_trait]
impl ProviderClient for FcmClient {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Fcm
    }

    async fn send(&self, message: &OutboundMessage) -> SendOutcome {
        if message.channel != Channel::Push {
            return super::unsupported_channel(ProviderKind::Fcm, message.channel);
        }
        let token = match self.access_token().await {
            Ok(token) => token,
            Err(outcome) => return outcome,
        };
        let mut notification = json!({"body": message.body});
        if let Some(title) = &message.subject {
            notification["title"] = json!(title);
        }
        if let Some(image) = message.media.first() {
            notification["image"] = json!(image.url);
        }
        let mut body = json!({"message": {
            "token": message.recipient,
            "notification": notification,
            "data": {
                "message_id": message.message_id,
                "tenant_id": message.tenant_id.to_string(),
            },
        }});
        if let Some(validity) = message.validity {
            // Android keeps it for `ttl`; APNs until `apns-expiration` (a UNIX time).
            let secs = validity.as_secs().max(1);
            let expires = chrono::Utc::now().timestamp() + secs as i64;
            body["message"]["android"] = json!({ "ttl": format!("{secs}s") });
            body["message"]["apns"] =
                json!({ "headers": { "apns-expiration": expires.to_string() } });
        }
        let request = self.http.post(&self.url).bearer_auth(token).json(&body);
        match http::execute(request).await {
            Ok(reply) if reply.status.is_success() => {
                let name = reply
                    .json()
                    .and_then(|b| b.get("name").and_then(Value::as_str).map(str::to_owned));
                http::accepted(name, None, &reply)
            }
            Ok(reply) => {
                let error = error(&reply);
                if error.code.as_deref() == Some("UNAUTHENTICATED") {
                    *self.token.lock().await = None;
                }
                http::classify_error(&reply, error)
            }
            Err(outcome) => outcome,
        }
    }

    async fn probe(&self) -> Result<(), CallError> {
        self.token_with(true)
            .await
            .map(drop)
            .map_err(CallError::from)
    }
}

fn error(reply: &Reply) -> ProviderError {
    let body = reply.json().unwrap_or(Value::Null);
    let error = body.get("error").unwrap_or(&Value::Null);
    let detail = error
        .get("details")
        .and_then(Value::as_array)
        .and_then(|d| {
            d.iter()
                .find_map(|d| d.get("errorCode").and_then(Value::as_str))
        });
    let code = detail
        .or_else(|| error.get("status").and_then(Value::as_str))
        .map(str::to_owned);
    ProviderError {
        hint: match code.as_deref() {
            Some("UNREGISTERED" | "INVALID_ARGUMENT" | "SENDER_ID_MISMATCH")
            | Some("THIRD_PARTY_AUTH_ERROR") => Some(Hint::Permanent),
            Some("QUOTA_EXCEEDED" | "RESOURCE_EXHAUSTED") => Some(Hint::RateLimited),
            Some("UNAVAILABLE" | "INTERNAL" | "UNAUTHENTICATED") => Some(Hint::Transient),
            _ => None,
        },
        code,
        message: error
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned),
        retry_after: None,
    }
}
