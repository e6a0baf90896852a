//! The Kafka broker of the tests (`TEST_KAFKA_BROKERS`, started by `scripts/test.sh`), read and
//! written the way the platform's other services do: a librdkafka client.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use uuid::Uuid;

/// The brokers of the tests.
pub fn brokers() -> String {
    std::env::var("TEST_KAFKA_BROKERS").expect(
        "TEST_KAFKA_BROKERS names the Kafka broker of the tests (bash scripts/test.sh starts one)",
    )
}

/// Points the app at `brokers` with topics and a consumer group of its own; the topic prefix.
pub fn with_kafka_at(env: &mut HashMap<String, String>, brokers: &str) -> String {
    let id = Uuid::new_v4().simple().to_string();
    let prefix = format!("t{id}.");
    env.insert("EVENT_BUS".into(), "kafka".into());
    env.insert("KAFKA_BROKERS".into(), brokers.to_owned());
    env.insert("KAFKA_TOPIC_PREFIX".into(), prefix.clone());
    env.insert("KAFKA_CONSUMER_GROUP".into(), format!("g{id}"));
    env.insert("KAFKA_TOPIC_PARTITIONS".into(), "2".into());
    env.insert("KAFKA_DELIVERY_TIMEOUT_MS".into(), "3000".into());
    prefix
}

/// Points the app at the test broker; the topic prefix.
pub fn with_kafka(env: &mut HashMap<String, String>) -> String {
    with_kafka_at(env, &brokers())
}

/// One record as a consumer sees it.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<String>,
    pub headers: Vec<(String, String)>,
    pub value: serde_json::Value,
    pub partition: i32,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn client(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    config
}

/// Every record on `topic`, from the start of each partition to its end.
pub async fn records_at(brokers: &str, topic: &str) -> Vec<Record> {
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || read_all(&brokers, &topic))
        .await
        .unwrap()
}

pub async fn records(topic: &str) -> Vec<Record> {
    records_at(&brokers(), topic).await
}

/// Reads every partition from its start until nothing more arrives for a while. (The test
/// broker's high watermark is the last batch's first offset plus one, not the log's end, so it
/// cannot tell where a partition ends.)
fn read_all(brokers: &str, topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = client(brokers)
        .set("group.id", format!("reader-{}", Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len() as i32;
    assert!(partitions > 0, "topic {topic} exists");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_millis(1500) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last = Instant::now();
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                let value =
                                    h.value.map(String::from_utf8_lossy).unwrap_or_default();
                                (h.key.to_owned(), value.into_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Record {
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    headers,
                    value: serde_json::from_slice(m.payload().unwrap_or_default())
                        .unwrap_or(serde_json::Value::Null),
                    partition: m.partition(),
                });
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// The event ids on `topic`, in the order of each partition.
pub async fn ids_at(brokers: &str, topic: &str) -> Vec<String> {
    records_at(brokers, topic)
        .await
        .into_iter()
        .map(|r| r.value["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Writes one record as another service would.
pub async fn produce(topic: &str, key: &str, headers: &[(&str, &str)], value: &[u8]) {
    let producer: FutureProducer = client(&brokers())
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let mut owned = OwnedHeaders::new();
    for (k, v) in headers {
        owned = owned.insert(Header {
            key: k,
            value: Some(*v),
        });
    }
    producer
        .send(
            FutureRecord::to(topic)
                .key(key)
                .payload(value)
                .headers(owned),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// The offsets group `group` committed on `topic`, summed over its partitions (the records
/// the group is done with).
pub async fn committed(topic: &str, group: &str) -> i64 {
    let (brokers, topic, group) = (brokers(), topic.to_owned(), group.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client(&brokers).set("group.id", &group).create().unwrap();
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(5))
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..metadata.topics()[0].partitions().len() as i32 {
            tpl.add_partition(&topic, p);
        }
        let offsets = consumer
            .committed_offsets(tpl, Duration::from_secs(5))
            .unwrap();
        offsets
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(n) => n,
                _ => 0,
            })
            .sum()
    })
    .await
    .unwrap()
}

/// A broker of the test's own (for stopping and starting it), on `port`.
pub fn start_broker(port: u16) -> Child {
    let bin = std::env::var("TANSU_BIN").unwrap_or_else(|_| "tansu".into());
    Command::new(bin)
        .args(["broker", "--storage-engine", "memory://tansu/"])
        .args(["--listener-url", &format!("tcp://127.0.0.1:{port}")])
        .args([
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the Kafka broker starts (TANSU_BIN)")
}
