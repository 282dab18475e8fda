//! The replay fault against the stack's Kafka: a replayed range appears in
//! the topic twice — same key, value, headers, partition and timestamp — and
//! nothing outside the range is copied.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cinerec_tests::{POLL_DEADLINE, Stack, unique_name, unreachable};
use loadgen::replay::{self, ReplayConfig, ReplayStart};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const PARTITIONS: i32 = 3;
const RECORDS: usize = 60;

/// A record's identity: partition, key, value, headers, timestamp.
type Record = (i32, Vec<u8>, Vec<u8>, Vec<(String, Vec<u8>)>, Option<i64>);

async fn topic_with_records(stack: &Stack) -> anyhow::Result<(String, Vec<Record>)> {
    let topic = unique_name("replay");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .create()?;
    for r in admin
        .create_topics(
            &[NewTopic::new(
                &topic,
                PARTITIONS,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .map_err(|e| unreachable("Kafka", &stack.kafka_brokers, e))?
    {
        r.map_err(|(t, code)| anyhow::anyhow!("creating {t}: {code}"))?;
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .set("enable.idempotence", "true")
        .create()?;
    let mut sent = Vec::new();
    for i in 0..RECORDS {
        let key = format!("key-{}", i % 7).into_bytes();
        let value = format!("value-{i}").into_bytes();
        let partition = (i % PARTITIONS as usize) as i32;
        let timestamp = 1_700_000_000_000 + i as i64;
        let headers = vec![
            ("traceparent".to_owned(), format!("tp-{i}").into_bytes()),
            ("n".to_owned(), vec![i as u8]),
        ];
        let mut h = OwnedHeaders::new();
        for (k, v) in &headers {
            h = h.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        producer
            .send(
                FutureRecord::to(&topic)
                    .partition(partition)
                    .key(&key)
                    .payload(&value)
                    .headers(h)
                    .timestamp(timestamp),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)?;
        sent.push((partition, key, value, headers, Some(timestamp)));
    }
    Ok((topic, sent))
}

/// Every record of the topic, read from the beginning until `expected` arrived
/// (then a short quiet wait shows nothing more is there).
async fn read_all(stack: &Stack, topic: &str, expected: usize) -> anyhow::Result<Vec<Record>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .set("group.id", unique_name("replay_reader"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut out = Vec::new();
    let deadline = Instant::now() + POLL_DEADLINE;
    loop {
        let wait = if out.len() >= expected {
            Duration::from_secs(2)
        } else {
            Duration::from_millis(500)
        };
        match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(msg) => {
                let msg = msg?;
                let headers = msg
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((
                    msg.partition(),
                    msg.key().unwrap_or_default().to_vec(),
                    msg.payload().unwrap_or_default().to_vec(),
                    headers,
                    msg.timestamp().to_millis(),
                ));
            }
            Err(_) if out.len() >= expected => return Ok(out),
            Err(_) => anyhow::ensure!(
                Instant::now() < deadline,
                "{topic}: {} of {expected} records within {POLL_DEADLINE:?}",
                out.len()
            ),
        }
    }
}

fn counts(records: &[Record]) -> BTreeMap<Record, usize> {
    let mut m = BTreeMap::new();
    for r in records {
        *m.entry(r.clone()).or_insert(0) += 1;
    }
    m
}

#[tokio::test]
async fn whole_topic_replayed_holds_every_record_twice() -> anyhow::Result<()> {
    let stack = Stack::from_env();
    let (topic, sent) = topic_with_records(&stack).await?;
    let report = replay::replay(&ReplayConfig {
        brokers: stack.kafka_brokers.clone(),
        topic: topic.clone(),
        partitions: None,
        start: ReplayStart::Offset(0),
        count: u64::MAX,
    })
    .await?;
    assert_eq!(report.replayed, RECORDS as u64);
    assert_eq!(report.ranges.len(), PARTITIONS as usize);

    let read = read_all(&stack, &topic, 2 * RECORDS).await?;
    assert_eq!(read.len(), 2 * RECORDS, "nothing beyond the copies");
    let counts = counts(&read);
    assert_eq!(counts.len(), RECORDS, "the copies are unchanged");
    for r in &sent {
        assert_eq!(counts.get(r), Some(&2), "{r:?} twice");
    }
    Ok(())
}

#[tokio::test]
async fn a_range_of_chosen_partitions_is_replayed_once_and_nothing_else() -> anyhow::Result<()> {
    let stack = Stack::from_env();
    let (topic, sent) = topic_with_records(&stack).await?;
    // Partitions 0 and 2 hold 20 records each (offsets 0..20): replay the
    // 3 records starting 5 before the end, i.e. offsets 15, 16, 17.
    let report = replay::replay(&ReplayConfig {
        brokers: stack.kafka_brokers.clone(),
        topic: topic.clone(),
        partitions: Some(vec![0, 2]),
        start: ReplayStart::Last(5),
        count: 3,
    })
    .await?;
    assert_eq!(
        report.ranges,
        BTreeMap::from([(0, (15, 18)), (2, (15, 18))])
    );
    assert_eq!(report.replayed, 6);

    let read = read_all(&stack, &topic, RECORDS + 6).await?;
    assert_eq!(read.len(), RECORDS + 6);
    let counts = counts(&read);
    for (p, offsets) in [(0, 15..18), (2, 15..18)] {
        let in_partition: Vec<&Record> = sent.iter().filter(|r| r.0 == p).collect();
        for (offset, r) in in_partition.iter().enumerate() {
            let expected = if offsets.contains(&(offset as i64)) {
                2
            } else {
                1
            };
            assert_eq!(
                counts.get(*r),
                Some(&expected),
                "partition {p} offset {offset}"
            );
        }
    }
    for r in sent.iter().filter(|r| r.0 == 1) {
        assert_eq!(counts.get(r), Some(&1), "partition 1 untouched");
    }
    // Asking for a partition the topic lacks is an error, not a silent no-op.
    let err = replay::replay(&ReplayConfig {
        brokers: stack.kafka_brokers.clone(),
        topic,
        partitions: Some(vec![9]),
        start: ReplayStart::Offset(0),
        count: 1,
    })
    .await
    .expect_err("partition 9 does not exist");
    assert!(err.to_string().contains("no partition 9"), "{err}");
    Ok(())
}
