//! Kafka: topic = the event's type (after `KAFKA_TOPIC_PREFIX`), key = the tenant id (so a
//! tenant's events, hence each message's, stay in order on one partition), the CloudEvent in
//! the Kafka protocol binding's structured mode.
//!
//! Structured mode (`content-type: application/cloudevents+json`, the whole envelope as the
//! record's value) because the value is then exactly what JetStream carries and what the outbox
//! stores: a consumer reads one JSON document on either bus, and an event copied between topics,
//! dumped or replayed keeps its attributes with it. Records that arrive in binary mode (`ce_*`
//! headers) are read as well (`consumers::kafka`).
//!
//! The producer is idempotent (`enable.idempotence`, `acks=all`): the brokers drop the
//! producer's own retries, and the outbox completes an event only once its delivery report
//! says the brokers acknowledged it. Topics are created at start, and again whenever they are
//! found missing, when the brokers allow it; readiness reports any that are missing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::future::join_all;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::sync::Notify;

use super::Publication;
use crate::config::KafkaSettings;
use crate::outbox::topics;

/// The `content-type` of a structured-mode record.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json; charset=UTF-8";

/// How long a metadata request may take before the brokers count as not answering.
const METADATA_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the topics are checked while they are all there, and while some are missing.
const TOPICS_CHECK: Duration = Duration::from_secs(30);
const TOPICS_RETRY: Duration = Duration::from_secs(2);

/// The client settings every Kafka client of the service shares: brokers, client id, security.
pub fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", &settings.client_id)
        .set("security.protocol", settings.security.as_str());
    if let Some(sasl) = &settings.sasl {
        config
            .set("sasl.mechanism", sasl.mechanism)
            .set("sasl.username", &sasl.username)
            .set("sasl.password", sasl.password.expose_secret());
    }
    if let Some(ca) = &settings.ssl_ca_location {
        config.set("ssl.ca.location", ca);
    }
    config
}

/// Every topic the service publishes or consumes, with the prefix.
pub fn all_topics(settings: &KafkaSettings) -> Vec<String> {
    let mut all: Vec<&str> = topics::PUBLISHED.to_vec();
    all.push(topics::NOTIFY_TRANSACTIONAL_REQUESTED);
    all.iter()
        .map(|t| format!("{}{t}", settings.topic_prefix))
        .collect()
}

/// The producer and what keeps the topics in place.
pub struct KafkaBus {
    producer: RwLock<Arc<FutureProducer>>,
    settings: KafkaSettings,
    topics: Vec<String>,
    /// Why the last attempt to create missing topics failed, if it did.
    topics_error: Arc<Mutex<Option<String>>>,
    /// Wakes the topic keeper early (a publish found a topic missing).
    recheck: Arc<Notify>,
}

impl KafkaBus {
    /// Builds the producer, creates the missing topics (waiting a few seconds at most) and
    /// keeps them in place. Brokers that do not answer yet do not stop the process:
    /// publications fail and wait in the outbox, readiness says so.
    pub async fn connect(settings: &KafkaSettings) -> anyhow::Result<Self> {
        let producer = Arc::new(producer(settings)?);
        let admin: AdminClient<DefaultClientContext> = client_config(settings)
            .create()
            .map_err(|e| anyhow::anyhow!("cannot create the Kafka admin client: {e}"))?;
        let bus = KafkaBus {
            producer: RwLock::new(producer),
            settings: settings.clone(),
            topics: all_topics(settings),
            topics_error: Arc::new(Mutex::new(None)),
            recheck: Arc::new(Notify::new()),
        };
        let keeper = TopicKeeper {
            admin: Arc::new(admin),
            topics: bus.topics.clone(),
            partitions: settings.topic_partitions,
            replication: settings.topic_replication,
            error: bus.topics_error.clone(),
            recheck: bus.recheck.clone(),
        };
        let failing = match tokio::time::timeout(METADATA_TIMEOUT * 2, keeper.attempt(false)).await
        {
            Ok(failing) => failing,
            Err(_) => {
                tracing::warn!("the Kafka brokers do not answer; serving degraded until they do");
                keeper.set_error(Some("timed out".into()));
                true
            }
        };
        crate::db::connection_runtime()?.spawn(keeper.keep(failing));
        Ok(bus)
    }

    pub fn settings(&self) -> &KafkaSettings {
        &self.settings
    }

    fn producer(&self) -> Arc<FutureProducer> {
        match self.producer.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether the brokers answer and every topic exists (for readiness).
    pub async fn check(&self) -> Result<(), String> {
        let producer = self.producer();
        if let Some((code, reason)) = producer.client().fatal_error() {
            return Err(format!("the producer failed ({code}): {reason}"));
        }
        let present = present_topics(producer, producer_metadata).await?;
        let missing: Vec<&str> = self
            .topics
            .iter()
            .filter(|t| !present.contains(t.as_str()))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        self.recheck.notify_one();
        let why = self
            .topics_error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .map(|e| format!(" (creating them failed: {e})"))
            .unwrap_or_default();
        Err(format!("topics missing: {}{why}", missing.join(", ")))
    }

    /// Publishes every event, in order; one result per event, each `Ok` only once the brokers
    /// acknowledged it.
    pub async fn publish(&self, events: &[Publication<'_>]) -> Vec<Result<(), String>> {
        let producer = self.producer();
        let mut pending = Vec::with_capacity(events.len());
        for e in events {
            let topic = format!("{}{}", self.settings.topic_prefix, e.topic);
            let body = serde_json::to_vec(e.payload).unwrap_or_default();
            let key = tenant_key(e.payload);
            pending.push(enqueue(&producer, &topic, key.as_deref(), &body).await);
        }
        let results = join_all(pending.into_iter().map(|queued| async move {
            match queued?.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(e),
                Err(_) => Err(KafkaError::Canceled),
            }
        }))
        .await;
        if results
            .iter()
            .any(|r| matches!(r, Err(e) if is_unknown_topic(e)))
        {
            self.recheck.notify_one();
        }
        let timed_out = |r: &Result<(), KafkaError>| matches!(r, Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageTimedOut));
        if results.iter().any(Result::is_err) {
            let stalled = !results.is_empty() && results.iter().all(timed_out);
            self.renew_if_broken(producer, stalled).await;
        }
        results
            .into_iter()
            .map(|r| r.map_err(|e| format!("not acknowledged: {e}")))
            .collect()
    }

    /// Replaces a producer that can no longer deliver: one that hit a fatal error (an
    /// idempotent producer whose sequence the brokers cannot trust), or one whose whole batch
    /// timed out (`stalled`) although the brokers answer, as after a broker that lost its state
    /// restarts and no longer knows the producer's id.
    async fn renew_if_broken(&self, failed: Arc<FutureProducer>, stalled: bool) {
        let why = match failed.client().fatal_error() {
            Some((code, reason)) => format!("it failed ({code}): {reason}"),
            None if stalled
                && present_topics(failed.clone(), producer_metadata)
                    .await
                    .is_ok() =>
            {
                "it delivered nothing while the brokers answer".to_owned()
            }
            None => return,
        };
        let fresh = match producer(&self.settings) {
            Ok(fresh) => Arc::new(fresh),
            Err(e) => {
                tracing::warn!(error = %e, "cannot create a new Kafka producer");
                return;
            }
        };
        let replaced = match self.producer.write() {
            Ok(mut current) if Arc::ptr_eq(&current, &failed) => {
                *current = fresh;
                true
            }
            _ => false,
        };
        if replaced {
            tracing::warn!(reason = %why, "the Kafka producer was replaced");
            // Dropping a producer purges its queue and waits for it briefly.
            tokio::task::spawn_blocking(move || drop(failed));
        }
    }
}

fn producer(settings: &KafkaSettings) -> anyhow::Result<FutureProducer> {
    let timeout = settings.delivery_timeout.as_millis().to_string();
    let request_timeout = settings.delivery_timeout.min(Duration::from_secs(5));
    client_config(settings)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", &timeout)
        .set(
            "request.timeout.ms",
            request_timeout.as_millis().to_string(),
        )
        .create()
        .map_err(|e| anyhow::anyhow!("cannot create the Kafka producer: {e}"))
}

/// The record key: the tenant the event is about (`data.tenantId`, else `subject`).
fn tenant_key(payload: &Value) -> Option<String> {
    payload["data"]["tenantId"]
        .as_str()
        .or_else(|| payload["subject"].as_str())
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
}

fn is_unknown_topic(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic)
    )
}

/// Hands one record to the producer's queue, waiting while the queue is full.
async fn enqueue(
    producer: &FutureProducer,
    topic: &str,
    key: Option<&str>,
    body: &[u8],
) -> Result<DeliveryFuture, KafkaError> {
    let headers = OwnedHeaders::new().insert(Header {
        key: "content-type",
        value: Some(STRUCTURED_CONTENT_TYPE),
    });
    let mut record: FutureRecord<'_, str, [u8]> =
        FutureRecord::to(topic).payload(body).headers(headers);
    if let Some(key) = key {
        record = record.key(key);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                if tokio::time::Instant::now() < deadline =>
            {
                record = back;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// The names of the topics the brokers have, from a client's metadata request (a blocking
/// call, so on a blocking thread).
async fn present_topics<T: Send + Sync + 'static>(
    client: Arc<T>,
    metadata: fn(&T) -> rdkafka::error::KafkaResult<rdkafka::metadata::Metadata>,
) -> Result<HashSet<String>, String> {
    tokio::task::spawn_blocking(move || {
        metadata(&client)
            .map(|m| {
                m.topics()
                    .iter()
                    .filter(|t| t.error().is_none())
                    .map(|t| t.name().to_owned())
                    .collect()
            })
            .map_err(|e| format!("the brokers do not answer: {e}"))
    })
    .await
    .map_err(|e| e.to_string())?
}

fn producer_metadata(
    p: &FutureProducer,
) -> rdkafka::error::KafkaResult<rdkafka::metadata::Metadata> {
    p.client()
        .fetch_metadata(None, Timeout::After(METADATA_TIMEOUT))
}

fn admin_metadata(
    a: &AdminClient<DefaultClientContext>,
) -> rdkafka::error::KafkaResult<rdkafka::metadata::Metadata> {
    a.inner()
        .fetch_metadata(None, Timeout::After(METADATA_TIMEOUT))
}

/// Creates the topics that are missing, at start and whenever they go missing.
struct TopicKeeper {
    admin: Arc<AdminClient<DefaultClientContext>>,
    topics: Vec<String>,
    partitions: i32,
    replication: i32,
    error: Arc<Mutex<Option<String>>>,
    recheck: Arc<Notify>,
}

impl TopicKeeper {
    /// Checks the topics once and creates those missing; whether that failed. Logs only the
    /// changes from `was_failing`.
    async fn attempt(&self, was_failing: bool) -> bool {
        match self.ensure().await {
            Ok(created) => {
                if !created.is_empty() {
                    tracing::info!(topics = %created.join(", "), "Kafka topics created");
                }
                if was_failing {
                    tracing::info!("the Kafka brokers answer and every topic exists");
                }
                self.set_error(None);
                false
            }
            Err(e) => {
                if !was_failing {
                    tracing::warn!(error = %e, "Kafka topics are missing; serving degraded until they exist");
                }
                self.set_error(Some(e));
                true
            }
        }
    }

    /// Checks again now and then, soon while something is wrong, and when asked to.
    async fn keep(self, mut failing: bool) {
        loop {
            let wait = if failing { TOPICS_RETRY } else { TOPICS_CHECK };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.recheck.notified() => {}
            }
            failing = self.attempt(failing).await;
        }
    }

    fn set_error(&self, error: Option<String>) {
        if let Ok(mut e) = self.error.lock() {
            *e = error;
        }
    }

    /// The topics it created; an error when the brokers do not answer or refuse one.
    async fn ensure(&self) -> Result<Vec<String>, String> {
        let present = present_topics(self.admin.clone(), admin_metadata).await?;
        let missing: Vec<&String> = self
            .topics
            .iter()
            .filter(|t| !present.contains(t.as_str()))
            .collect();
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        let new: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|t| {
                NewTopic::new(
                    t,
                    self.partitions,
                    TopicReplication::Fixed(self.replication),
                )
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Timeout::After(METADATA_TIMEOUT)));
        let results = self
            .admin
            .create_topics(&new, &options)
            .await
            .map_err(|e| format!("cannot create topics: {e}"))?;
        let (mut created, mut refused) = (Vec::new(), Vec::new());
        for result in results {
            match result {
                Ok(topic) => created.push(topic),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => refused.push(format!("{topic}: {code}")),
            }
        }
        if refused.is_empty() {
            Ok(created)
        } else {
            Err(format!(
                "the brokers refused to create {}",
                refused.join("; ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_clients_carry_the_security_settings() {
        let get = |name: &str| {
            match name {
                "EVENT_BUS" => Some("kafka"),
                "KAFKA_BROKERS" => Some("k1:9093,k2:9093"),
                "KAFKA_SECURITY_PROTOCOL" => Some("sasl_ssl"),
                "KAFKA_SASL_MECHANISM" => Some("SCRAM-SHA-256"),
                "KAFKA_SASL_USERNAME" => Some("cpaas"),
                "KAFKA_SASL_PASSWORD" => Some("s3cret"),
                "KAFKA_SSL_CA_LOCATION" => Some("/etc/kafka/ca.pem"),
                "DATABASE_URL" => Some("postgres://x/y"),
                _ => None,
            }
            .map(str::to_owned)
        };
        let settings = crate::config::Settings::from_lookup(get).unwrap();
        let config = client_config(settings.kafka.as_ref().unwrap());
        assert_eq!(config.get("bootstrap.servers"), Some("k1:9093,k2:9093"));
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-256"));
        assert_eq!(config.get("sasl.username"), Some("cpaas"));
        assert_eq!(config.get("sasl.password"), Some("s3cret"));
        assert_eq!(config.get("ssl.ca.location"), Some("/etc/kafka/ca.pem"));
        assert!(
            format!("{:?}", settings.kafka).contains("[REDACTED]")
                && !format!("{:?}", settings.kafka).contains("s3cret"),
            "the password never prints"
        );
        // librdkafka accepts the combination (it was built with SSL and SCRAM); the CA file
        // is left out, as it would be read at once.
        let mut config = config;
        let producer: Result<FutureProducer, _> = config.remove("ssl.ca.location").create();
        assert!(producer.is_ok(), "{:?}", producer.err());
    }

    #[test]
    fn records_are_keyed_by_the_tenant() {
        let tenant = "0193a3c4-0000-7000-8000-000000000001";
        assert_eq!(
            tenant_key(&json!({"subject": "other", "data": {"tenantId": tenant}})).as_deref(),
            Some(tenant)
        );
        assert_eq!(
            tenant_key(&json!({"subject": tenant, "data": {}})).as_deref(),
            Some(tenant)
        );
        assert_eq!(tenant_key(&json!({"subject": "", "data": {}})), None);
    }
}
