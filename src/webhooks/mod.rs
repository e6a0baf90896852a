//! Delivery of events to tenant webhooks.
//!
//! The outbox's `webhooks` handler ([`WebhookFanOut`]) turns each lifecycle event into one
//! delivery row per subscribed webhook, idempotently. The `deliver-webhooks` job
//! ([`WebhookSender::run`]) leases due deliveries, POSTs each CloudEvent signed with the
//! webhook's secret, and records every attempt. A 2xx answer delivers it; anything else
//! (another status, a timeout, a refused connection) retries with capped exponential backoff and
//! jitter until the retry window (24 hours by default) has passed since the event, then the
//! delivery is FAILED. Deliveries to one webhook are not ordered: receivers order by the
//! event's `time` and de-duplicate by `x-cpaas-event-id`.
//!
//! Fairness: a run keeps `concurrency` POSTs in flight and records each as it ends; a claim
//! gives no webhook more than `per_webhook` in flight and lets tenants take turns. Each webhook
//! has a breaker: failures in a row hold its deliveries back, and failing for `disable_after`
//! disables it with a `webhook.disabled` event.

mod fan_out;
pub mod signature;

pub use fan_out::WebhookFanOut;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rand::Rng;
use uuid::Uuid;

use crate::config::Settings;
use crate::crypto::CredentialCipher;
use crate::db::webhook_deliveries::{self as store, AttemptRecord, ClaimedDelivery, Fate};
use crate::db::webhooks::open_webhook_secret;
use crate::db::webhooks::{Breaker, DisabledWebhook};
use crate::db::{DbError, DbPool};
use crate::domain::ids::WebhookDeliveryId;
use crate::domain::ids::WebhookId;
use crate::lifecycle::Lifecycle;
use crate::outbox::{CloudEvent, OutboxEvent, topics};

/// Header carrying `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "x-cpaas-signature";
/// Header carrying the CloudEvent id.
pub const EVENT_ID_HEADER: &str = "x-cpaas-event-id";
/// Header carrying the delivery id (the same on every retry of one delivery).
pub const DELIVERY_ID_HEADER: &str = "x-cpaas-delivery-id";
/// Content type of a structured-mode CloudEvent.
pub const CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";

/// Most of an error or answer kept on an attempt.
const MAX_ERROR_CHARS: usize = 500;

/// How deliveries are retried.
#[derive(Clone, Debug)]
pub struct WebhookPolicy {
    pub timeout: Duration,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Retries go on until this long after the event, then the delivery fails.
    pub retry_window: Duration,
    pub concurrency: usize,
    /// Deliveries in flight to one webhook at most, across runs and replicas.
    pub per_webhook: i64,
    /// When a failing webhook is held back, and when it is disabled.
    pub breaker: Breaker,
    pub batch_size: i64,
    pub lease: Duration,
    /// Connect to loopback and private addresses (development); otherwise host names are
    /// resolved to public addresses only.
    pub allow_internal_hosts: bool,
}

impl WebhookPolicy {
    pub fn from_settings(s: &Settings) -> Self {
        const BATCH: usize = 100;
        let concurrency = s.webhook_concurrency.max(1);
        // Long enough for a whole batch of receivers that all time out.
        let rounds = BATCH.div_ceil(concurrency) as u32;
        Self {
            timeout: s.webhook_timeout,
            backoff_base: s.webhook_backoff_base,
            backoff_cap: s.webhook_backoff_cap,
            retry_window: s.webhook_retry_window,
            concurrency,
            per_webhook: s.webhook_max_in_flight.max(1),
            breaker: Breaker {
                threshold: s.webhook_breaker_threshold.max(1),
                base: s.webhook_backoff_base,
                cap: s.webhook_backoff_cap,
                disable_after: s.webhook_disable_after,
            },
            batch_size: BATCH as i64,
            lease: s.webhook_timeout * rounds + Duration::from_secs(30),
            allow_internal_hosts: s.webhook_allow_internal_hosts,
        }
    }

    /// Capped exponential backoff after `attempts` failed POSTs, with jitter (half to all of
    /// the step).
    pub fn backoff(&self, attempts: i32) -> Duration {
        let exp = 2f64.powi((attempts - 1).clamp(0, 30));
        let step = (self.backoff_base.as_secs_f64() * exp).min(self.backoff_cap.as_secs_f64());
        Duration::from_secs_f64(step * rand::thread_rng().gen_range(0.5..=1.0))
    }

    /// Where a failed delivery goes: retried, unless the window since the event has passed.
    fn after_failure(&self, created_at: DateTime<Utc>, attempts: i32, now: DateTime<Utc>) -> Fate {
        let window = chrono::Duration::from_std(self.retry_window).unwrap_or(chrono::Duration::MAX);
        if now - created_at >= window {
            return Fate::Failed;
        }
        let delay = chrono::Duration::from_std(self.backoff(attempts)).unwrap_or_default();
        Fate::RetryAt(now + delay)
    }
}

/// `webhook.disabled`: the breaker disabled a webhook that kept failing.
fn disabled_event(webhook: &DisabledWebhook, last: &AttemptRecord) -> OutboxEvent {
    OutboxEvent {
        aggregate_type: "webhook",
        aggregate_id: webhook.id,
        tenant_id: Some(webhook.tenant_id),
        lane: crate::domain::Priority::Normal.lane(),
        event: CloudEvent::new(
            topics::WEBHOOK_DISABLED,
            webhook.tenant_id,
            serde_json::json!({
                "tenantId": webhook.tenant_id,
                "webhookId": WebhookId::from_uuid(webhook.id).to_string(),
                "url": webhook.url,
                "failingSince": crate::domain::time::format(&webhook.failing_since),
                "consecutiveFailures": webhook.consecutive_failures,
                "lastStatusCode": last.status_code,
                "lastError": last.error,
            }),
        ),
    }
}

/// Sends due deliveries; shared by the scheduler and `POST /cpaas/v1/jobs/deliver-webhooks`.
pub struct WebhookSender {
    pool: DbPool,
    cipher: CredentialCipher,
    client: reqwest::Client,
    policy: WebhookPolicy,
    owner: String,
    metrics: Arc<crate::metrics::Metrics>,
    /// Wakes the drainers after a commit that wrote an event (a webhook disabled).
    wakeup: Option<Arc<crate::outbox::Wakeup>>,
}

impl WebhookSender {
    pub fn new(
        pool: DbPool,
        cipher: CredentialCipher,
        policy: WebhookPolicy,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> anyhow::Result<Self> {
        // Tenants' receivers are reached directly, never through a proxy the environment names.
        let mut client = crate::providers::http::client_builder(policy.timeout).no_proxy();
        if !policy.allow_internal_hosts {
            client = client.dns_resolver(Arc::new(crate::providers::resolver::PublicOnlyResolver));
        }
        Ok(Self {
            pool,
            cipher,
            client: client.build()?,
            policy,
            owner: format!("{}-{}", std::process::id(), Uuid::new_v4().simple()),
            metrics,
            wakeup: None,
        })
    }

    /// Wakes the drainers after each commit that wrote an event.
    pub fn with_wakeup(mut self, wakeup: Arc<crate::outbox::Wakeup>) -> Self {
        self.wakeup = Some(wakeup);
        self
    }

    /// Sends every due delivery, batch after batch (none more once the process is stopping),
    /// and reports what happened.
    pub async fn run(&self, lifecycle: &Lifecycle) -> Result<BTreeMap<String, i64>, DbError> {
        let mut counts: BTreeMap<String, i64> = ["claimed", "delivered", "retrying", "failed"]
            .into_iter()
            .map(|key| (key.to_owned(), 0))
            .collect();
        // Work-conserving: up to `concurrency` attempts in flight, and each one that ends
        // (recorded at once, its lease released) frees a slot that the next claim fills, so a
        // receiver that hangs holds its `per_webhook` slots and no more. Bounded in count and
        // in time (no claim after one receiver timeout), so one run cannot go on for ever
        // while receivers keep failing; the next run goes on.
        let started = Instant::now();
        let started_at = Utc::now();
        let budget = self.policy.batch_size * 20;
        let mut claimed_total = 0i64;
        let mut in_flight = FuturesUnordered::new();
        // The last claim found nothing: wait for an attempt to end before claiming again.
        let mut dry = false;
        let mut failure: Option<DbError> = None;
        loop {
            let free = self.policy.concurrency.saturating_sub(in_flight.len()) as i64;
            if !dry
                && failure.is_none()
                && free > 0
                && claimed_total < budget
                && started.elapsed() < self.policy.timeout
                && !lifecycle.is_stopping()
            {
                let claimed = {
                    let mut conn = self.pool.get().await?;
                    store::claim(
                        &mut conn,
                        &self.owner,
                        self.policy.lease,
                        free.min(budget - claimed_total),
                        self.policy.per_webhook,
                        started_at,
                    )
                    .await?
                };
                dry = claimed.is_empty();
                claimed_total += claimed.len() as i64;
                for delivery in claimed {
                    in_flight.push(async move {
                        let record = self.attempt(&delivery).await;
                        let result = self.record(&record).await;
                        (record, result)
                    });
                }
                if !dry {
                    continue;
                }
            }
            let Some((record, result)) = in_flight.next().await else {
                break;
            };
            dry = false;
            if let Err(e) = result {
                failure.get_or_insert(e);
                continue;
            }
            let key = match record.fate {
                Fate::Delivered => "delivered",
                Fate::RetryAt(_) => "retrying",
                Fate::Failed => "failed",
            };
            *counts.entry(key.into()).or_default() += 1;
            self.metrics.record_webhook_attempt(key);
        }
        counts.insert("claimed".into(), claimed_total);
        match failure {
            Some(e) => Err(e),
            None => Ok(counts),
        }
    }

    /// Records one attempt, moves its delivery on and, when a POST was made, the webhook's
    /// breaker; a webhook this disables gets its `webhook.disabled` event in the same
    /// transaction.
    async fn record(&self, record: &AttemptRecord) -> Result<(), DbError> {
        let mut conn = self.pool.get().await?;
        let breaker = self.policy.breaker;
        crate::db::tx::run(&mut conn, async |conn: &mut AsyncPgConnection| {
            store::record(conn, &self.owner, std::slice::from_ref(record)).await?;
            if record.attempt.is_none() {
                return Ok::<_, DbError>(false);
            }
            let delivered = record.fate == Fate::Delivered;
            let disabled = crate::db::webhooks::record_outcome(
                conn,
                record.webhook_id,
                delivered,
                record.error.as_deref(),
                &breaker,
            )
            .await?;
            if let Some(webhook) = &disabled {
                tracing::warn!(webhook_id = %webhook.id, url = %webhook.url, failures = webhook.consecutive_failures, "webhook disabled after failing too long");
                crate::outbox::enqueue(conn, &[disabled_event(webhook, record)]).await?;
            }
            Ok(disabled.is_some())
        })
        .await
        .map(|wrote_event| {
            if wrote_event && let Some(wakeup) = &self.wakeup {
                wakeup.committed();
            }
        })
    }

    /// Gives up this process's leases on deliveries not yet made (graceful shutdown).
    pub async fn release(&self) -> Result<usize, DbError> {
        let mut conn = self.pool.get().await?;
        Ok(store::release(&mut conn, &self.owner).await?)
    }

    /// One POST of one delivery.
    async fn attempt(&self, d: &ClaimedDelivery) -> AttemptRecord {
        let started_at = Utc::now();
        let record = |attempt, status_code, error: Option<String>, fate| AttemptRecord {
            delivery_id: d.id,
            webhook_id: d.webhook_id,
            attempt,
            started_at,
            finished_at: Utc::now(),
            status_code,
            error,
            fate,
        };
        if !d.webhook_live {
            return record(
                None,
                None,
                Some("the webhook was deleted or deactivated".into()),
                Fate::Failed,
            );
        }
        let secret = match open_webhook_secret(
            &self.cipher,
            d.tenant_id,
            d.webhook_id,
            &d.secret_encrypted,
        ) {
            Ok(secret) => secret,
            Err(e) => {
                tracing::error!(delivery_id = %d.id, error = %e, "cannot open a webhook secret");
                return record(
                    None,
                    None,
                    Some("the webhook's secret cannot be read".into()),
                    Fate::Failed,
                );
            }
        };
        let body = match serde_json::to_vec(&d.payload) {
            Ok(body) => body,
            Err(e) => return record(None, None, Some(e.to_string()), Fate::Failed),
        };
        let attempt = d.attempts + 1;
        let timestamp = started_at.timestamp();
        let clock = Instant::now();
        let result = self
            .client
            .post(&d.url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(
                SIGNATURE_HEADER,
                signature::header_value(&secret, timestamp, &body),
            )
            .header(EVENT_ID_HEADER, &d.event_id)
            .header(
                DELIVERY_ID_HEADER,
                WebhookDeliveryId::from_uuid(d.id).to_string(),
            )
            .header("x-cpaas-event-type", &d.topic)
            .header("x-cpaas-attempt", attempt.to_string())
            .body(body)
            .send()
            .await;
        let elapsed = clock.elapsed();
        let now = Utc::now();
        let (status_code, error) = match result {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    (Some(i32::from(status.as_u16())), None)
                } else {
                    let body = crate::providers::http::read_capped(
                        response,
                        crate::providers::http::MAX_REPLY_BYTES,
                    )
                    .await
                    .unwrap_or_default();
                    let text: String = String::from_utf8_lossy(&body)
                        .chars()
                        .take(MAX_ERROR_CHARS)
                        .collect();
                    let error = if text.trim().is_empty() {
                        format!("the receiver answered {status}")
                    } else {
                        format!("the receiver answered {status}: {}", text.trim())
                    };
                    (Some(i32::from(status.as_u16())), Some(error))
                }
            }
            Err(e) if e.is_timeout() => (
                None,
                Some(format!(
                    "no answer within {} ms",
                    self.policy.timeout.as_millis()
                )),
            ),
            Err(e) => (
                None,
                Some(format!("the request failed: {}", error_chain(&e))),
            ),
        };
        let fate = if error.is_none() {
            Fate::Delivered
        } else {
            self.policy.after_failure(d.created_at, attempt, now)
        };
        tracing::debug!(delivery_id = %d.id, attempt, ?status_code, ?fate, elapsed_ms = elapsed.as_millis() as u64, "webhook attempt");
        AttemptRecord {
            delivery_id: d.id,
            webhook_id: d.webhook_id,
            attempt: Some(attempt),
            started_at,
            finished_at: started_at + chrono::Duration::from_std(elapsed).unwrap_or_default(),
            status_code,
            error,
            fate,
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.chars().take(MAX_ERROR_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> WebhookPolicy {
        WebhookPolicy {
            timeout: Duration::from_secs(10),
            backoff_base: Duration::from_secs(15),
            backoff_cap: Duration::from_secs(3600),
            retry_window: Duration::from_secs(24 * 3600),
            concurrency: 4,
            per_webhook: 2,
            breaker: Breaker {
                threshold: 5,
                base: Duration::from_secs(15),
                cap: Duration::from_secs(3600),
                disable_after: Duration::from_secs(3 * 86400),
            },
            batch_size: 100,
            lease: Duration::from_secs(60),
            allow_internal_hosts: false,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = policy();
        let first = p.backoff(1);
        assert!(first >= Duration::from_millis(7500) && first <= Duration::from_secs(15));
        let fourth = p.backoff(4);
        assert!(fourth >= Duration::from_secs(60) && fourth <= Duration::from_secs(120));
        assert!(p.backoff(40) <= Duration::from_secs(3600));
        assert!(p.backoff(40) >= Duration::from_secs(1800));
    }

    #[test]
    fn failures_retry_for_the_whole_window_then_fail() {
        let p = policy();
        let now = Utc::now();
        let young = now - chrono::Duration::hours(23);
        assert!(matches!(p.after_failure(young, 12, now), Fate::RetryAt(at) if at > now));
        let old = now - chrono::Duration::hours(24);
        assert_eq!(p.after_failure(old, 13, now), Fate::Failed);
    }

    #[test]
    fn enough_attempts_fit_in_the_window() {
        // With the default schedule, the attempts made within 24 hours: the backoff sum
        // reaches the window only after a dozen or more tries.
        let p = policy();
        let mut elapsed = Duration::ZERO;
        let mut attempts = 0;
        while elapsed < p.retry_window {
            attempts += 1;
            elapsed += p.backoff(attempts);
        }
        assert!(attempts >= 20, "{attempts}");
    }
}
