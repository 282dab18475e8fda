//! Kafka consumer lag per partition, from librdkafka's statistics: a
//! consumer's `ClientContext::stats` calls [`record_consumer_lag`] with each
//! report (set `statistics.interval.ms`, e.g. 1000, to get them).
//!
//! librdkafka computes the lag as the partition's high watermark minus the
//! consumer's position (or its committed offset before the first fetch), so
//! the gauge needs no extra broker round trips.

use rdkafka::statistics::Statistics;

/// Sets the gauge `family{partition}` to the lag of every partition of
/// `topic` this consumer has assigned and whose lag librdkafka knows
/// (it reports -1 before the first fetch, and for its internal `-1`
/// partition).
pub fn record_consumer_lag(family: &'static str, topic: &str, statistics: &Statistics) {
    let Some(topic) = statistics.topics.get(topic) else {
        return;
    };
    for (&partition, p) in &topic.partitions {
        if partition >= 0 && p.consumer_lag >= 0 {
            metrics::gauge!(family, "partition" => partition.to_string())
                .set(p.consumer_lag as f64);
        }
    }
}
