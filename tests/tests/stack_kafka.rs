//! The stack's Kafka broker takes a topic with 3 partitions and round-trips
//! keyed records through rdkafka's idempotent producer and a consumer group,
//! with offsets stored only after a record is handled (the pipeline's pattern).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cinerec_tests::{POLL_DEADLINE, Stack, unique_name, unreachable};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

const PARTITIONS: i32 = 3;
const RECORDS: usize = 300;

#[tokio::test]
async fn produce_and_consume_across_three_partitions() -> anyhow::Result<()> {
    let stack = Stack::from_env();
    let topic = unique_name("smoke");

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .create()?;
    let created = admin
        .create_topics(
            &[NewTopic::new(
                &topic,
                PARTITIONS,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .map_err(|e| unreachable("Kafka", &stack.kafka_brokers, e))?;
    for result in created {
        result.map_err(|(t, code)| anyhow::anyhow!("creating topic {t}: {code}"))?;
    }

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .create()?;
    let mut sent: BTreeMap<String, String> = BTreeMap::new();
    let mut partitions_used = std::collections::BTreeSet::new();
    for i in 0..RECORDS {
        let key = format!("review-{i}");
        let payload = format!("payload-{i}");
        let delivery = producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| unreachable("Kafka", &stack.kafka_brokers, e))?;
        partitions_used.insert(delivery.partition);
        sent.insert(key, payload);
    }
    assert_eq!(
        partitions_used.len(),
        PARTITIONS as usize,
        "keyed records should spread over every partition"
    );

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .set("group.id", unique_name("smoke_group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .create()?;
    consumer.subscribe(&[&topic])?;

    let mut received: BTreeMap<String, String> = BTreeMap::new();
    let deadline = Instant::now() + POLL_DEADLINE;
    while received.len() < RECORDS {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            bail!(
                "received {} of {RECORDS} records before the deadline",
                received.len()
            );
        }
        let msg = tokio::time::timeout(remaining, consumer.recv())
            .await
            .context("waiting for records")??;
        let key = String::from_utf8(msg.key().context("record without key")?.to_vec())?;
        let payload = String::from_utf8(msg.payload().context("record without payload")?.to_vec())?;
        consumer.store_offset_from_message(&msg)?;
        received.insert(key, payload);
    }
    assert_eq!(
        received, sent,
        "every record comes back once with its payload"
    );

    admin
        .delete_topics(&[&topic], &AdminOptions::new())
        .await
        .context("deleting the test topic")?;
    Ok(())
}
