//! The consumed topics on Kafka: one consumer in `KAFKA_CONSUMER_GROUP` (every replica joins
//! it, so each partition is read by one of them), subscribed to both topics. A record's offset
//! is stored only once its work is committed (or it was recorded as poison), and the stored
//! offsets are committed every second and once more when the process stops (the stopping
//! process waits for that commit): a process that dies re-reads at most what it handled since
//! the last commit, and the event ids recorded in `consumed_events` make those redeliveries
//! no-ops. A failing record is tried again in place, with a growing pause, up to
//! `CONSUMER_MAX_ATTEMPTS` times, then recorded as poison and skipped; the records behind it on its
//! partition wait meanwhile, which keeps each tenant's requests in order.
//!
//! Records are read in either mode of the CloudEvents Kafka binding: structured (the envelope
//! as the value, `content-type: application/cloudevents+json`, or no `ce_*` headers at all) or
//! binary (`ce_id`, `ce_type`, … headers, the event's `data` as the value).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Headers;
use serde_json::Value;

use super::{ConsumerDeps, Settled, Topic, settle};
use crate::config::KafkaSettings;
use crate::outbox::CloudEvent;
use crate::outbox::bus::kafka::client_config;

/// The pause before the next attempt at a failed record: 0.5 s, doubling, at most 5 s.
fn pause(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.saturating_sub(1).min(4)))
        .min(Duration::from_secs(5))
}

/// Joins the consumer group and consumes on the background runtime.
pub fn start(settings: &KafkaSettings, deps: ConsumerDeps) -> anyhow::Result<()> {
    let consumer: StreamConsumer = client_config(settings)
        .set("group.id", &settings.consumer_group)
        .set("enable.auto.commit", "true")
        .set(
            "auto.commit.interval.ms",
            settings.commit_interval.as_millis().to_string(),
        )
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(|e| anyhow::anyhow!("cannot create the Kafka consumer: {e}"))?;
    let prefix = settings.topic_prefix.clone();
    let names: Vec<String> = Topic::ALL
        .iter()
        .map(|t| format!("{prefix}{}", t.topic()))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .map_err(|e| anyhow::anyhow!("cannot subscribe to {}: {e}", names.join(", ")))?;
    crate::db::connection_runtime()?.spawn(consume(consumer, prefix, Arc::new(deps)));
    Ok(())
}

/// How often a consumer waiting for a record checks whether the process is stopping.
const STOP_CHECK: Duration = Duration::from_millis(200);

async fn consume(consumer: StreamConsumer, prefix: String, deps: Arc<ConsumerDeps>) {
    // The consumer counts as work in flight until it committed its offsets, so a stopping
    // process waits for that commit before it exits.
    let Some(working) = deps.lifecycle.enter() else {
        return;
    };
    read(&consumer, &prefix, &deps).await;
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => tracing::info!("stopping: the Kafka consumer committed its offsets"),
        Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset) => {}
        Err(e) => {
            tracing::warn!(error = %e, "stopping: the Kafka consumer could not commit its offsets")
        }
    }
    drop(consumer);
    drop(working);
}

/// Reads and settles records until the process stops.
async fn read(consumer: &StreamConsumer, prefix: &str, deps: &ConsumerDeps) {
    let mut failing = false;
    while !deps.lifecycle.is_stopping() {
        let received = tokio::select! {
            received = consumer.recv() => received,
            () = tokio::time::sleep(STOP_CHECK) => continue,
        };
        let message = match received {
            Ok(message) => message,
            Err(e) => {
                // The brokers gone, a topic not created yet: librdkafka reconnects by itself.
                if !failing {
                    tracing::warn!(error = %e, "the Kafka consumer cannot read; retrying");
                }
                failing = true;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        failing = false;
        let topic = message.topic().strip_prefix(prefix).and_then(Topic::named);
        if let Some(topic) = topic {
            let raw = message.payload().unwrap_or_default();
            let headers: Vec<(&str, &[u8])> = message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key, h.value.unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            let event = decode(&headers, raw);
            let location = format!(
                "kafka:{}:{}:{}",
                message.topic(),
                message.partition(),
                message.offset()
            );
            let mut attempt = 1;
            while settle(
                deps,
                topic,
                event.clone(),
                raw,
                &location,
                attempt.min(deps.max_attempts),
            )
            .await
                == Settled::Retry
            {
                if deps.lifecycle.is_stopping() {
                    // Not done: its offset is not stored, so it is read again after the stop.
                    return;
                }
                tokio::time::sleep(pause(attempt)).await;
                attempt = attempt.saturating_add(1);
            }
        }
        if let Err(e) = consumer.store_offset_from_message(&message) {
            // The partition went to another member meanwhile; it reads the record again and
            // recognises it by its id.
            tracing::debug!(error = %e, "offset not stored");
        }
    }
}

/// The CloudEvent a record carries, in structured or binary mode.
fn decode(headers: &[(&str, &[u8])], value: &[u8]) -> Result<CloudEvent, String> {
    let header = |name: &str| {
        headers
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    };
    let content_type = header("content-type");
    let structured = content_type.is_some_and(|c| {
        c.trim_start()
            .to_ascii_lowercase()
            .starts_with("application/cloudevents")
    });
    if structured || header("ce_specversion").is_none() {
        return serde_json::from_slice(value).map_err(|e| e.to_string());
    }
    let required = |name: &str| {
        header(name)
            .map(str::to_owned)
            .ok_or_else(|| format!("a binary-mode record without {name}"))
    };
    let data = if value.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(value).map_err(|e| format!("its data is not JSON: {e}"))?
    };
    Ok(CloudEvent {
        specversion: required("ce_specversion")?,
        ty: required("ce_type")?,
        source: required("ce_source")?,
        id: required("ce_id")?,
        time: header("ce_time").unwrap_or_default().to_owned(),
        datacontenttype: content_type.unwrap_or("application/json").to_owned(),
        subject: header("ce_subject").unwrap_or_default().to_owned(),
        data,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_structured_record_is_the_envelope() {
        let envelope = json!({
            "specversion": "1.0", "type": "t", "source": "s", "id": "evt-1",
            "time": "2026-12-02T00:00:00Z", "datacontenttype": "application/json",
            "subject": "x", "data": {"a": 1}
        });
        let raw = serde_json::to_vec(&envelope).unwrap();
        let ct: &[u8] = b"application/cloudevents+json; charset=UTF-8";
        let event = decode(&[("content-type", ct)], &raw).unwrap();
        assert_eq!(event.id, "evt-1");
        assert_eq!(event.data["a"], 1);
        assert_eq!(
            decode(&[], &raw).unwrap(),
            event,
            "no headers: the envelope alone"
        );
        assert!(decode(&[("content-type", ct)], b"{not json").is_err());
    }

    #[test]
    fn a_binary_record_takes_its_attributes_from_the_headers() {
        let headers: Vec<(&str, &[u8])> = vec![
            ("ce_specversion", b"1.0"),
            ("ce_type", b"eventzr.notify.transactional.requested.v1"),
            ("ce_source", b"notify-svc"),
            ("ce_id", b"n-42"),
            ("ce_time", b"2026-12-02T00:00:00Z"),
            ("content-type", b"application/json"),
        ];
        let event = decode(&headers, br#"{"tenantId":"t","channel":"SMS"}"#).unwrap();
        assert_eq!(event.id, "n-42");
        assert_eq!(event.ty, "eventzr.notify.transactional.requested.v1");
        assert_eq!(event.source, "notify-svc");
        assert_eq!(event.subject, "");
        assert_eq!(event.data["channel"], "SMS");
        let without_id: Vec<_> = headers
            .iter()
            .filter(|(k, _)| *k != "ce_id")
            .cloned()
            .collect();
        assert!(decode(&without_id, b"{}").unwrap_err().contains("ce_id"));
        assert!(decode(&headers, b"plain text").is_err());
    }

    #[test]
    fn the_pause_grows_and_is_capped() {
        assert_eq!(pause(1), Duration::from_millis(500));
        assert_eq!(pause(2), Duration::from_secs(1));
        assert_eq!(pause(4), Duration::from_secs(4));
        assert_eq!(pause(9), Duration::from_secs(5));
    }
}
