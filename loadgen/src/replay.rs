//! Kafka-level fault injection: replay a range of a topic.
//!
//! At-least-once delivery means a consumer may see a record again — after a
//! rebalance, a crash before its offset was stored, a producer retry, or an
//! operator rewinding a group. [`replay`] makes that happen on demand: it
//! reads the records of a range of each partition and produces each one
//! again **unchanged** (same key, value, headers and timestamp, into the same
//! partition), so the topic then holds every record of the range twice and
//! every consumer group reads both copies.
//!
//! The range of each partition is fixed when the replay starts (never past
//! that moment's end of the partition), so the copies it appends are never
//! replayed again.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// How long a metadata or watermark request may take.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the replay waits for the next record of an unfinished range
/// before it gives up (the broker is down or the range was deleted).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Deliveries awaited at most at once before more records are read.
const MAX_IN_FLIGHT: usize = 10_000;

/// Where each partition's range starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayStart {
    /// At this offset (clamped to the partition's first retained record).
    Offset(i64),
    /// This many records before the partition's current end (its most
    /// recent records).
    Last(u64),
}

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// The topic to read and write back into.
    pub topic: String,
    /// Partitions to replay; `None`: every partition of the topic.
    pub partitions: Option<Vec<i32>>,
    /// Where each partition's range starts.
    pub start: ReplayStart,
    /// Records per partition at most (the range's length).
    pub count: u64,
}

/// The ranges replayed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Per partition, the replayed offsets `[from, to)` (empty ranges left out).
    pub ranges: BTreeMap<i32, (i64, i64)>,
    /// Records produced again.
    pub replayed: u64,
}

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Kafka refused or failed a request.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The topic does not exist (or has none of the requested partitions).
    #[error("topic {topic:?} has no partition {partition}")]
    NoSuchPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
    },
    /// The topic does not exist.
    #[error("topic {0:?} does not exist")]
    NoSuchTopic(String),
    /// A range did not finish within [`IDLE_TIMEOUT`] of its last record.
    #[error(
        "no record of partition {partition} arrived for {IDLE_TIMEOUT:?} (reached offset {reached} of {end})"
    )]
    Stalled {
        /// The partition.
        partition: i32,
        /// The next offset the replay waited for.
        reached: i64,
        /// The range's end.
        end: i64,
    },
    /// A record could not be written again.
    #[error("producing a replayed record failed: {0}")]
    Produce(KafkaError),
}

/// Reads the configured range of every partition and produces each record
/// again unchanged. Returns once every copy is acknowledged by the broker
/// (idempotent producer, `acks=all`).
pub async fn replay(config: &ReplayConfig) -> Result<ReplayReport, ReplayError> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        // Assigned partitions, no group membership: the id is never used
        // for commits (auto-commit off), but librdkafka wants one.
        .set("group.id", format!("loadgen-replay-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        // Read what was committed, as the pipeline's consumers do.
        .set("isolation.level", "read_committed")
        .create()?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()?;

    let ranges = ranges(&consumer, config).await?;
    let mut report = ReplayReport {
        ranges: ranges.clone(),
        replayed: 0,
    };
    if ranges.is_empty() {
        return Ok(report);
    }
    let mut assignment = TopicPartitionList::new();
    for (&p, &(from, _)) in &ranges {
        assignment.add_partition_offset(&config.topic, p, Offset::Offset(from))?;
    }
    consumer.assign(&assignment)?;

    // Per partition, the next offset still to replay.
    let mut next: BTreeMap<i32, i64> = ranges.iter().map(|(&p, &(from, _))| (p, from)).collect();
    let mut deliveries: FuturesUnordered<DeliveryFuture> = FuturesUnordered::new();
    while !next.is_empty() {
        let msg = match tokio::time::timeout(IDLE_TIMEOUT, consumer.recv()).await {
            Ok(msg) => msg?,
            Err(_) => {
                let (&partition, &reached) = next.iter().next().unwrap_or((&0, &0));
                return Err(ReplayError::Stalled {
                    partition,
                    reached,
                    end: ranges.get(&partition).map_or(0, |r| r.1),
                });
            }
        };
        let (p, offset) = (msg.partition(), msg.offset());
        let Some(&(_, end)) = ranges.get(&p) else {
            continue;
        };
        if !next.contains_key(&p) || offset >= end {
            continue;
        }
        let mut headers = OwnedHeaders::new();
        if let Some(h) = msg.headers() {
            for header in h.iter() {
                headers = headers.insert(Header {
                    key: header.key,
                    value: header.value,
                });
            }
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&config.topic)
            .partition(p)
            .headers(headers);
        if let Some(key) = msg.key() {
            record = record.key(key);
        }
        if let Some(payload) = msg.payload() {
            record = record.payload(payload);
        }
        if let Some(ms) = msg.timestamp().to_millis() {
            record = record.timestamp(ms);
        }
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    // The local queue is full: wait for a delivery to make room.
                    if let Some(d) = deliveries.next().await {
                        delivered(d)?;
                        report.replayed += 1;
                    }
                }
                Err((e, _)) => return Err(ReplayError::Produce(e)),
            }
        }
        // Offsets may skip (compaction, transaction markers): done at the end.
        if offset + 1 >= end {
            next.remove(&p);
        } else {
            next.insert(p, offset + 1);
        }
        while deliveries.len() >= MAX_IN_FLIGHT {
            if let Some(d) = deliveries.next().await {
                delivered(d)?;
                report.replayed += 1;
            }
        }
    }
    while let Some(d) = deliveries.next().await {
        delivered(d)?;
        report.replayed += 1;
    }
    Ok(report)
}

fn delivered(
    d: Result<
        rdkafka::producer::future_producer::OwnedDeliveryResult,
        futures::channel::oneshot::Canceled,
    >,
) -> Result<(), ReplayError> {
    match d {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(ReplayError::Produce(e)),
        Err(_) => Err(ReplayError::Produce(KafkaError::Canceled)),
    }
}

/// How long a metadata or watermark request is retried while the broker
/// answers with a transient error (a partition without a leader right after
/// a broker restart: `NotLeaderForPartition`, `LeaderNotAvailable`).
const TRANSIENT_DEADLINE: Duration = Duration::from_secs(60);

/// `f` again every 500 ms while it fails, for up to [`TRANSIENT_DEADLINE`];
/// then its last error.
async fn transient<T>(mut f: impl FnMut() -> KafkaResult<T>) -> KafkaResult<T> {
    let until = tokio::time::Instant::now() + TRANSIENT_DEADLINE;
    loop {
        match f() {
            Ok(t) => return Ok(t),
            Err(e) if tokio::time::Instant::now() < until => {
                tracing::warn!(error = %e, "replay: broker not ready, retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Each partition's `[from, to)`, fixed now: never past the current end.
async fn ranges(
    consumer: &StreamConsumer,
    config: &ReplayConfig,
) -> Result<BTreeMap<i32, (i64, i64)>, ReplayError> {
    let metadata =
        transient(|| consumer.fetch_metadata(Some(&config.topic), METADATA_TIMEOUT)).await?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == config.topic)
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .ok_or_else(|| ReplayError::NoSuchTopic(config.topic.clone()))?;
    let existing: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
    let wanted = match &config.partitions {
        Some(ps) => {
            if let Some(&missing) = ps.iter().find(|p| !existing.contains(p)) {
                return Err(ReplayError::NoSuchPartition {
                    topic: config.topic.clone(),
                    partition: missing,
                });
            }
            ps.clone()
        }
        None => existing,
    };
    let mut out = BTreeMap::new();
    for p in wanted {
        let (low, high) =
            transient(|| consumer.fetch_watermarks(&config.topic, p, METADATA_TIMEOUT)).await?;
        let from = match config.start {
            ReplayStart::Offset(o) => o.max(low),
            ReplayStart::Last(n) => high
                .saturating_sub(i64::try_from(n).unwrap_or(i64::MAX))
                .max(low),
        };
        let to = from
            .saturating_add(i64::try_from(config.count).unwrap_or(i64::MAX))
            .min(high);
        if from < to {
            out.insert(p, (from, to));
        }
    }
    Ok(out)
}
