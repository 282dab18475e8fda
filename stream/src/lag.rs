//! Consumer-group lag measured from the broker, outside the consumer.
//!
//! Every consumer exports its own lag (`cinerec_stream_consumer_lag`, from
//! librdkafka's statistics), but that gauge lives in the consumer: it
//! vanishes when the process stops and freezes while a batch is stuck (the
//! statistics arrive only when the consumer polls). A stopped consumer is
//! exactly when its lag matters, so [`GroupLag`] asks the broker instead —
//! the topic's high watermarks and the group's committed offsets — as
//! Burrow or kafka_exporter do, and the `stream-lag` binary exports it as
//! [`GROUP_LAG`] for the `ConsumerLagHigh` alert (dev/prometheus/rules.yml).
//!
//! Measuring joins no group: the client carries the group's id only to read
//! its committed offsets, and never subscribes.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// Records of `topic` that `group` has not committed past, per `group`,
/// `topic` and `partition`, measured from the broker by `stream-lag`.
pub const GROUP_LAG: &str = "cinerec_stream_group_lag";
/// Measurements of a group's lag that failed (broker unreachable, topic
/// unknown), per `group`; the gauges keep their last value meanwhile.
pub const GROUP_LAG_ERRORS_TOTAL: &str = "cinerec_stream_group_lag_errors_total";

/// One group and the topic it consumes, as `--group GROUP=TOPIC` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    /// The consumer group id.
    pub group: String,
    /// The topic the group consumes.
    pub topic: String,
}

impl std::str::FromStr for Watched {
    type Err = String;

    fn from_str(s: &str) -> Result<Watched, String> {
        match s.split_once('=') {
            Some((group, topic)) if !group.is_empty() && !topic.is_empty() => Ok(Watched {
                group: group.to_owned(),
                topic: topic.to_owned(),
            }),
            _ => Err(format!("{s:?} is not GROUP=TOPIC")),
        }
    }
}

/// The lag of one partition: the records after the group's committed offset
/// up to the high watermark. A partition the group never committed on counts
/// every record still retained (`high - low`): none of them was consumed.
/// Never negative (a committed offset past the watermark — a truncated topic
/// — counts as caught up).
pub fn partition_lag(low: i64, high: i64, committed: Option<i64>) -> i64 {
    let from = committed.unwrap_or(low).max(low);
    (high - from).max(0)
}

/// A broker client reading one group's lag on one topic.
pub struct GroupLag {
    watched: Watched,
    client: BaseConsumer,
    timeout: Duration,
}

impl std::fmt::Debug for GroupLag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupLag")
            .field("watched", &self.watched)
            .finish_non_exhaustive()
    }
}

impl GroupLag {
    /// A client of `brokers` for `watched`; each broker request may take
    /// `timeout`.
    pub fn new(brokers: &str, watched: Watched, timeout: Duration) -> Result<GroupLag, KafkaError> {
        let client = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", &watched.group)
            // Only reads the group's offsets: never commits any.
            .set("enable.auto.commit", "false")
            .create()?;
        Ok(GroupLag {
            watched,
            client,
            timeout,
        })
    }

    /// What this client measures.
    pub fn watched(&self) -> &Watched {
        &self.watched
    }

    /// The lag of every partition of the topic, in partition order
    /// (blocking: a few broker round trips).
    pub fn measure(&self) -> Result<Vec<(i32, i64)>, KafkaError> {
        let topic = &self.watched.topic;
        let md = self.client.fetch_metadata(Some(topic), self.timeout)?;
        let t = md
            .topics()
            .first()
            .ok_or(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopic))?;
        if let Some(e) = t.error() {
            return Err(KafkaError::MetadataFetch(RDKafkaErrorCode::from(e)));
        }
        let mut partitions: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
        partitions.sort_unstable();
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition(topic, *p);
        }
        let committed = self.client.committed_offsets(tpl, self.timeout)?;
        let mut lags = Vec::with_capacity(partitions.len());
        for p in partitions {
            let (low, high) = self.client.fetch_watermarks(topic, p, self.timeout)?;
            let at = committed
                .find_partition(topic, p)
                .and_then(|e| match e.offset() {
                    Offset::Offset(n) => Some(n),
                    _ => None,
                });
            lags.push((p, partition_lag(low, high, at)));
        }
        Ok(lags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_records_after_the_committed_offset() {
        assert_eq!(partition_lag(0, 100, Some(40)), 60);
        assert_eq!(partition_lag(0, 100, Some(100)), 0);
    }

    #[test]
    fn a_partition_never_committed_on_counts_every_retained_record() {
        assert_eq!(partition_lag(0, 100, None), 100);
        assert_eq!(partition_lag(30, 100, None), 70);
    }

    #[test]
    fn lag_is_never_negative_and_never_counts_deleted_records() {
        // Committed past the watermark (a recreated topic): caught up.
        assert_eq!(partition_lag(0, 10, Some(50)), 0);
        // Committed before the log start (retention deleted records): only
        // what is still there is unread.
        assert_eq!(partition_lag(60, 100, Some(20)), 40);
    }

    #[test]
    fn watched_parses_group_equals_topic() {
        assert_eq!(
            "g1=reviews.changed".parse::<Watched>(),
            Ok(Watched {
                group: "g1".into(),
                topic: "reviews.changed".into()
            })
        );
        for bad in ["g1", "=t", "g1=", ""] {
            assert!(bad.parse::<Watched>().is_err(), "{bad:?} accepted");
        }
    }
}
