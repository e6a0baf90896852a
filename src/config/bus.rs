//! Which event bus the service uses, and how it reaches Kafka.

use std::time::Duration;

use secrecy::SecretString;

use super::{ConfigError, parse};

/// `EVENT_BUS`: where events are published and consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusKind {
    /// NATS JetStream at `NATS_URL`.
    Nats,
    /// Kafka at `KAFKA_BROKERS`.
    Kafka,
    /// Each event written to the log as one JSON line; nothing is consumed.
    Log,
}

impl BusKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BusKind::Nats => "nats",
            BusKind::Kafka => "kafka",
            BusKind::Log => "log",
        }
    }
}

/// `KAFKA_SECURITY_PROTOCOL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KafkaSecurity {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl KafkaSecurity {
    /// librdkafka's `security.protocol`.
    pub fn as_str(self) -> &'static str {
        match self {
            KafkaSecurity::Plaintext => "plaintext",
            KafkaSecurity::Ssl => "ssl",
            KafkaSecurity::SaslPlaintext => "sasl_plaintext",
            KafkaSecurity::SaslSsl => "sasl_ssl",
        }
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, KafkaSecurity::SaslPlaintext | KafkaSecurity::SaslSsl)
    }
}

/// The SASL credentials: `KAFKA_SASL_MECHANISM` (`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`),
/// `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`.
#[derive(Clone, Debug)]
pub struct KafkaSasl {
    pub mechanism: &'static str,
    pub username: String,
    pub password: SecretString,
}

/// How the service reaches Kafka.
#[derive(Clone, Debug)]
pub struct KafkaSettings {
    /// `KAFKA_BROKERS`: `host:port` pairs separated by commas.
    pub brokers: String,
    /// `KAFKA_CLIENT_ID` (default `cpaas-orchestrator`).
    pub client_id: String,
    /// `KAFKA_CONSUMER_GROUP` (default `cpaas-orchestrator`): the group the replicas consume
    /// the consumed topics in.
    pub consumer_group: String,
    pub security: KafkaSecurity,
    pub sasl: Option<KafkaSasl>,
    /// `KAFKA_SSL_CA_LOCATION`: a PEM file of the CAs the brokers' certificates chain to
    /// (the system's by default).
    pub ssl_ca_location: Option<String>,
    /// `KAFKA_TOPIC_PREFIX`: put before every topic name (empty by default).
    pub topic_prefix: String,
    /// `KAFKA_TOPIC_PARTITIONS` (default 6) and `KAFKA_TOPIC_REPLICATION` (default 1): for
    /// the topics the service creates at start.
    pub topic_partitions: i32,
    pub topic_replication: i32,
    /// `KAFKA_DELIVERY_TIMEOUT_MS` (default 10 s): how long the producer tries to hand an
    /// event to the brokers before the outbox keeps it for a later drain.
    pub delivery_timeout: Duration,
    /// `KAFKA_COMMIT_INTERVAL_MS` (default 1 s): how often the consumer commits the offsets of
    /// the records it is done with (and once more when the process stops).
    pub commit_interval: Duration,
}

/// Reads `EVENT_BUS` and, when it is Kafka, the `KAFKA_*` settings.
pub(super) fn read(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<(BusKind, Option<KafkaSettings>), ConfigError> {
    let invalid = |name, reason: String| ConfigError { name, reason };
    let kind = match get("EVENT_BUS")
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None if get("NATS_URL").is_some() => BusKind::Nats,
        None => BusKind::Log,
        Some("nats") => BusKind::Nats,
        Some("kafka") => BusKind::Kafka,
        Some("log") => BusKind::Log,
        Some(other) => {
            return Err(invalid(
                "EVENT_BUS",
                format!("expected nats, kafka or log, got {other:?}"),
            ));
        }
    };
    if kind == BusKind::Nats && get("NATS_URL").is_none() {
        return Err(invalid(
            "NATS_URL",
            "is required with EVENT_BUS=nats".into(),
        ));
    }
    if kind != BusKind::Kafka {
        return Ok((kind, None));
    }
    let brokers = get("KAFKA_BROKERS")
        .ok_or_else(|| invalid("KAFKA_BROKERS", "is required with EVENT_BUS=kafka".into()))?;
    let security = match get("KAFKA_SECURITY_PROTOCOL")
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("plaintext") => KafkaSecurity::Plaintext,
        Some("ssl") => KafkaSecurity::Ssl,
        Some("sasl_plaintext") => KafkaSecurity::SaslPlaintext,
        Some("sasl_ssl") => KafkaSecurity::SaslSsl,
        Some(other) => {
            return Err(invalid(
                "KAFKA_SECURITY_PROTOCOL",
                format!("expected plaintext, ssl, sasl_plaintext or sasl_ssl, got {other:?}"),
            ));
        }
    };
    let sasl = if security.uses_sasl() {
        let mechanism = match get("KAFKA_SASL_MECHANISM")
            .map(|v| v.trim().to_ascii_uppercase())
            .as_deref()
        {
            None | Some("PLAIN") => "PLAIN",
            Some("SCRAM-SHA-256") => "SCRAM-SHA-256",
            Some("SCRAM-SHA-512") => "SCRAM-SHA-512",
            Some(other) => {
                return Err(invalid(
                    "KAFKA_SASL_MECHANISM",
                    format!("expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got {other:?}"),
                ));
            }
        };
        let required = |name| {
            get(name).ok_or_else(|| {
                invalid(
                    name,
                    format!(
                        "is required with KAFKA_SECURITY_PROTOCOL={}",
                        security.as_str()
                    ),
                )
            })
        };
        Some(KafkaSasl {
            mechanism,
            username: required("KAFKA_SASL_USERNAME")?,
            password: SecretString::from(required("KAFKA_SASL_PASSWORD")?),
        })
    } else {
        for name in ["KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"] {
            if get(name).is_some() {
                return Err(invalid(
                    name,
                    "needs KAFKA_SECURITY_PROTOCOL=sasl_plaintext or sasl_ssl".into(),
                ));
            }
        }
        None
    };
    let topic_prefix = get("KAFKA_TOPIC_PREFIX").unwrap_or_default();
    if !topic_prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(invalid(
            "KAFKA_TOPIC_PREFIX",
            "may hold only ASCII letters, digits, '.', '_' and '-'".into(),
        ));
    }
    let topic_partitions: i32 = parse(get, "KAFKA_TOPIC_PARTITIONS", 6)?;
    let topic_replication: i32 = parse(get, "KAFKA_TOPIC_REPLICATION", 1)?;
    for (name, n) in [
        ("KAFKA_TOPIC_PARTITIONS", topic_partitions),
        ("KAFKA_TOPIC_REPLICATION", topic_replication),
    ] {
        if n < 1 {
            return Err(invalid(name, "must be at least 1".into()));
        }
    }
    let delivery_timeout: u64 = parse(get, "KAFKA_DELIVERY_TIMEOUT_MS", 10_000)?;
    let commit_interval: u64 = parse(get, "KAFKA_COMMIT_INTERVAL_MS", 1_000)?;
    Ok((
        kind,
        Some(KafkaSettings {
            brokers,
            client_id: get("KAFKA_CLIENT_ID").unwrap_or_else(|| "cpaas-orchestrator".into()),
            consumer_group: get("KAFKA_CONSUMER_GROUP")
                .unwrap_or_else(|| "cpaas-orchestrator".into()),
            security,
            sasl,
            ssl_ca_location: get("KAFKA_SSL_CA_LOCATION"),
            topic_prefix,
            topic_partitions,
            topic_replication,
            delivery_timeout: Duration::from_millis(delivery_timeout.max(1000)),
            commit_interval: Duration::from_millis(commit_interval.max(100)),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read_map(pairs: &[(&str, &str)]) -> Result<(BusKind, Option<KafkaSettings>), ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        read(&|name: &str| map.get(name).cloned())
    }

    #[test]
    fn the_bus_defaults_to_nats_with_a_url_else_the_log() {
        assert_eq!(read_map(&[]).unwrap().0, BusKind::Log);
        assert_eq!(
            read_map(&[("NATS_URL", "nats://x:4222")]).unwrap().0,
            BusKind::Nats
        );
        assert_eq!(
            read_map(&[("NATS_URL", "nats://x:4222"), ("EVENT_BUS", "log")])
                .unwrap()
                .0,
            BusKind::Log
        );
        assert_eq!(
            read_map(&[("EVENT_BUS", "nats")]).unwrap_err().name,
            "NATS_URL"
        );
        assert_eq!(
            read_map(&[("EVENT_BUS", "rabbit")]).unwrap_err().name,
            "EVENT_BUS"
        );
    }

    #[test]
    fn kafka_needs_brokers_and_complete_sasl_credentials() {
        assert_eq!(
            read_map(&[("EVENT_BUS", "kafka")]).unwrap_err().name,
            "KAFKA_BROKERS"
        );
        let (kind, kafka) =
            read_map(&[("EVENT_BUS", "kafka"), ("KAFKA_BROKERS", "k:9092")]).unwrap();
        let kafka = kafka.unwrap();
        assert_eq!(kind, BusKind::Kafka);
        assert_eq!(kafka.security, KafkaSecurity::Plaintext);
        assert!(kafka.sasl.is_none());
        assert_eq!(kafka.consumer_group, "cpaas-orchestrator");
        let sasl = [
            ("EVENT_BUS", "kafka"),
            ("KAFKA_BROKERS", "k:9093"),
            ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_SASL_MECHANISM", "scram-sha-512"),
            ("KAFKA_SASL_USERNAME", "cpaas"),
        ];
        assert_eq!(read_map(&sasl).unwrap_err().name, "KAFKA_SASL_PASSWORD");
        let mut full = sasl.to_vec();
        full.push(("KAFKA_SASL_PASSWORD", "s3cret"));
        let kafka = read_map(&full).unwrap().1.unwrap();
        assert_eq!(kafka.security, KafkaSecurity::SaslSsl);
        assert_eq!(kafka.sasl.unwrap().mechanism, "SCRAM-SHA-512");
        let mut wrong = full.clone();
        wrong[3] = ("KAFKA_SASL_MECHANISM", "GSSAPI");
        assert_eq!(read_map(&wrong).unwrap_err().name, "KAFKA_SASL_MECHANISM");
        assert_eq!(
            read_map(&[
                ("EVENT_BUS", "kafka"),
                ("KAFKA_BROKERS", "k:9092"),
                ("KAFKA_SASL_USERNAME", "cpaas"),
            ])
            .unwrap_err()
            .name,
            "KAFKA_SASL_USERNAME",
            "credentials without a SASL protocol would be ignored"
        );
        assert_eq!(
            read_map(&[
                ("EVENT_BUS", "kafka"),
                ("KAFKA_BROKERS", "k:9092"),
                ("KAFKA_TOPIC_PREFIX", "a b"),
            ])
            .unwrap_err()
            .name,
            "KAFKA_TOPIC_PREFIX"
        );
    }
}
