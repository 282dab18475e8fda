//! The recommender's keyed state made durable: a **compacted Kafka changelog
//! topic** of review states, as Kafka Streams backs a state store and Flink
//! checkpoints keyed state — not Cassandra rows per event.
//!
//! * **Record**: key = the review id (16 bytes, so compaction keeps one record
//!   per review), value = the [`EnrichedReview`] that advanced the model (Avro
//!   single-object encoding, the `reviews.enriched` contract: the changelog
//!   needs no schema of its own, and it carries the genres that trending and
//!   the cold-start fallback need).
//! * **Partition** = the source partition the event came from, so the topic
//!   has as many partitions as `reviews.enriched` and a partition's owner
//!   writes only "its" changelog partition.
//! * **Every instance reads every partition** ([`Reader`]): the model is a
//!   full replica on each instance. That is what makes the state correct
//!   whatever happens: the model is a function of the *set* of review states
//!   (latest version per review wins, [`Model::apply`](crate::model::Model::apply)),
//!   so records applied twice, out of order, echoed back to their writer, or
//!   written by a zombie that lost its partitions change nothing a later
//!   version does not override. No fencing of the state is needed; only the
//!   serving writes are fenced ([`crate::ownership`]).
//! * **Durability order**: the consumer stores a source offset only after
//!   the changelog records of its batch are acknowledged (`acks=all`,
//!   idempotent producer), and after the done markers: an event whose offset
//!   is committed, or that the cache calls done, is in the changelog.
//! * **Restore** ([`Reader::restore`]): every partition from the beginning up
//!   to the high watermarks read at start; then [`Reader::next`] follows.
//!
//! Known limit: compaction keeps the *last written* record of a key, not the
//! highest version. One instance writes only advanced states, so per
//! partition the log is version-ordered — except in a rebalance overlap where
//! a zombie and the new owner both write the same review; then a compacted
//! log may keep the lower version (Kafka has no version-aware compaction).
//! Until compaction runs, every reader still sees both and keeps the higher.

use std::collections::HashMap;
use std::time::Duration;

use cinerec_backoff::ExponentialBackoff;
use cinerec_events::EnrichedReview;
use cinerec_service_kit::{Shutdown, kafka};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use uuid::Uuid;

/// How long a metadata or watermark request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// The number of partitions of `topic` (it must exist).
pub async fn partitions(brokers: &str, topic: &str) -> Result<i32, KafkaError> {
    let client: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let md = client.fetch_metadata(Some(&topic), METADATA_TIMEOUT)?;
        let t = md
            .topics()
            .first()
            .ok_or(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopic))?;
        if let Some(e) = t.error() {
            return Err(KafkaError::MetadataFetch(e.into()));
        }
        match i32::try_from(t.partitions().len()) {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::UnknownTopicOrPartition,
            )),
        }
    })
    .await
    .map_err(|_| KafkaError::Canceled)?
}

/// Creates the compacted changelog topic with `partitions` partitions if it
/// does not exist (replication factor 1: the local stack; production creates
/// it out of band with the same `cleanup.policy`).
pub async fn ensure(brokers: &str, topic: &str, partitions: i32) -> Result<(), KafkaError> {
    let compacted = [
        ("cleanup.policy", "compact"),
        // Compact eagerly enough that a restore reads little more than one
        // record per review.
        ("min.cleanable.dirty.ratio", "0.2"),
        ("segment.ms", "600000"),
    ];
    kafka::ensure_topics_with_config(brokers, &[(topic, partitions)], &compacted).await?;
    let have = self::partitions(brokers, topic).await?;
    if have != partitions {
        tracing::warn!(
            topic,
            have,
            want = partitions,
            "changelog partitions differ from the source's: records still land (partition mod count)"
        );
    }
    Ok(())
}

/// The record key of a review.
pub fn key(review_id: Uuid) -> [u8; 16] {
    *review_id.as_bytes()
}

/// Writes a batch's advanced states to the changelog.
#[derive(Clone)]
pub struct Writer {
    producer: FutureProducer,
    topic: String,
    partitions: i32,
    /// This instance's name, in every record's [`HEADER_WRITER`].
    writer: String,
}

/// The header naming the instance that wrote a record: its own follower
/// skips it without decoding (it applied the state before writing it).
pub const HEADER_WRITER: &str = "cinerec.writer";

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// The changelog write did not complete: shutdown came while retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("changelog write abandoned at shutdown")]
pub struct Abandoned;

impl Writer {
    /// A writer over an idempotent producer (`acks=all`), as instance `writer`.
    pub fn new(producer: FutureProducer, topic: String, partitions: i32, writer: String) -> Writer {
        Writer {
            producer,
            topic,
            partitions: partitions.max(1),
            writer,
        }
    }

    /// Sends every `(source partition, state)` and waits until each is
    /// acknowledged, retrying failures with `backoff` until they land; gives
    /// up only when `shutdown` fires (then the batch must not be recorded).
    pub async fn write_all(
        &self,
        records: &[(i32, &EnrichedReview)],
        backoff: ExponentialBackoff,
        shutdown: &Shutdown,
    ) -> Result<usize, Abandoned> {
        let mut encoded = Vec::with_capacity(records.len());
        for (partition, ev) in records {
            match ev.encode() {
                Ok(bytes) => encoded.push((
                    partition.rem_euclid(self.partitions),
                    key(ev.review_id),
                    bytes,
                )),
                // Decoded from the same schema a moment ago: cannot fail in
                // practice; skipping would lose state, so say it loudly.
                Err(e) => {
                    tracing::error!(error = %e, review = %ev.review_id, "changelog record not encodable")
                }
            }
        }
        let mut pending: Vec<usize> = (0..encoded.len()).collect();
        let mut failures = 0u32;
        let mut bytes = 0usize;
        while !pending.is_empty() {
            let sends = pending.iter().map(|&i| {
                let (partition, key, payload) = &encoded[i];
                let headers =
                    rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
                        key: HEADER_WRITER,
                        value: Some(self.writer.as_bytes()),
                    });
                let record = FutureRecord::to(&self.topic)
                    .partition(*partition)
                    .key(&key[..])
                    .payload(payload)
                    .headers(headers);
                let fut = self.producer.send(record, Duration::from_secs(30));
                async move { (i, fut.await) }
            });
            let results = tokio::select! {
                r = futures::future::join_all(sends) => r,
                () = shutdown.wait() => return Err(Abandoned),
            };
            let mut again = Vec::new();
            for (i, r) in results {
                match r {
                    Ok(_) => bytes += encoded[i].2.len(),
                    Err((e, _)) => {
                        tracing::warn!(error = %e, "changelog write failed: retrying");
                        again.push(i);
                    }
                }
            }
            pending = again;
            if !pending.is_empty() {
                failures += 1;
                tokio::select! {
                    () = tokio::time::sleep(backoff.delay(failures)) => {}
                    () = shutdown.wait() => return Err(Abandoned),
                }
            }
        }
        Ok(bytes)
    }
}

/// One record read back: its partition and the state.
#[derive(Debug, Clone)]
pub struct Record {
    /// The changelog (= source) partition.
    pub partition: i32,
    /// The review's state as it advanced the writer's model.
    pub event: EnrichedReview,
}

/// Reads every partition of the changelog: [`restore`](Self::restore) to the
/// end seen at start, then [`next`](Self::next) as new records arrive.
pub struct Reader {
    consumer: StreamConsumer,
    topic: String,
    /// Records read that did not decode (counted, skipped: nothing else can
    /// be done with them, and the writer only writes what it decoded).
    pub corrupt: u64,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// A reader of every partition of `topic` from the beginning. It joins no
    /// consumer group and commits nothing: where it is lives in the model.
    pub async fn new(brokers: &str, topic: &str) -> Result<Reader, KafkaError> {
        let partitions = self::partitions(brokers, topic).await?;
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            // Required by librdkafka even for assign(); never used to commit.
            .set("group.id", format!("{topic}-reader-{}", Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.max.bytes", "52428800")
            .set("max.partition.fetch.bytes", "10485760")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        Ok(Reader {
            consumer,
            topic: topic.to_owned(),
            corrupt: 0,
        })
    }

    /// Reads every partition up to the high watermark it had when called,
    /// handing each record to `each`; returns how many were read.
    pub async fn restore(&mut self, mut each: impl FnMut(Record)) -> Result<u64, KafkaError> {
        let partitions = partitions_of(&self.consumer, &self.topic)?;
        let mut ends: HashMap<i32, i64> = HashMap::new();
        for p in 0..partitions {
            let (low, high) = self
                .consumer
                .fetch_watermarks(&self.topic, p, METADATA_TIMEOUT)?;
            if high > low {
                ends.insert(p, high);
            }
        }
        let mut n = 0u64;
        while !ends.is_empty() {
            let m = self.consumer.recv().await?;
            let (p, offset) = (m.partition(), m.offset());
            let decoded = decode(&m);
            if let Some(r) = self.counted(decoded) {
                each(r);
            }
            n += 1;
            if ends.get(&p).is_some_and(|end| offset + 1 >= *end) {
                ends.remove(&p);
            }
        }
        Ok(n)
    }

    /// The next record (waits for one); `None` for a record that did not
    /// decode, or that `own` (this instance) wrote: it is skipped undecoded.
    pub async fn next(&mut self, own: &str) -> Result<Option<Record>, KafkaError> {
        let m = self.consumer.recv().await?;
        if written_by(&m, own) {
            return Ok(None);
        }
        let decoded = decode(&m);
        Ok(self.counted(decoded))
    }

    fn counted(&mut self, decoded: Result<Record, (i32, i64, String)>) -> Option<Record> {
        match decoded {
            Ok(r) => Some(r),
            Err((partition, offset, error)) => {
                self.corrupt += 1;
                crate::telemetry::changelog_corrupt(partition, offset, &error);
                None
            }
        }
    }
}

fn written_by(m: &rdkafka::message::BorrowedMessage<'_>, writer: &str) -> bool {
    use rdkafka::message::Headers as _;
    m.headers().is_some_and(|h| {
        h.iter()
            .any(|h| h.key == HEADER_WRITER && h.value == Some(writer.as_bytes()))
    })
}

fn decode(m: &rdkafka::message::BorrowedMessage<'_>) -> Result<Record, (i32, i64, String)> {
    m.payload()
        .ok_or_else(|| "empty payload".to_owned())
        .and_then(|p| EnrichedReview::decode(p).map_err(|e| e.to_string()))
        .map(|event| Record {
            partition: m.partition(),
            event,
        })
        .map_err(|e| (m.partition(), m.offset(), e))
}

fn partitions_of(consumer: &StreamConsumer, topic: &str) -> Result<i32, KafkaError> {
    let md = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
    Ok(md
        .topics()
        .first()
        .map_or(0, |t| i32::try_from(t.partitions().len()).unwrap_or(0)))
}
