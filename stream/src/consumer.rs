//! The runtime's Kafka consumer: at-least-once (librdkafka auto-commits only
//! the offsets the runtime *stored*, and it stores them after the effect),
//! cooperative-sticky rebalancing, the operator's rebalance hooks, a commit
//! of what is stored before partitions move, and consumer lag per partition.

use std::sync::Arc;

use cinerec_service_kit::kafka::STATISTICS_INTERVAL_MS;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;

use crate::config::KafkaArgs;
use crate::operator::Operator;
use crate::telemetry::CONSUMER_LAG;

/// The operator's rebalance hooks, without its event type.
trait Hooks: Send + Sync {
    fn on_assign(&self, partitions: &[i32]);
    fn on_revoke(&self, partitions: &[i32]);
}

impl<O: Operator> Hooks for O {
    fn on_assign(&self, partitions: &[i32]) {
        Operator::on_assign(self, partitions);
    }
    fn on_revoke(&self, partitions: &[i32]) {
        Operator::on_revoke(self, partitions);
    }
}

/// The consumer context: hooks, commit-on-revoke, lag.
pub struct Context {
    topic: String,
    operator: &'static str,
    hooks: Arc<dyn Hooks>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("topic", &self.topic)
            .field("operator", &self.operator)
            .finish_non_exhaustive()
    }
}

impl Context {
    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect()
    }
}

impl ClientContext for Context {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        // librdkafka reports -1 before the first fetch and for its internal
        // -1 partition.
        for (&partition, p) in &topic.partitions {
            if partition >= 0 && p.consumer_lag >= 0 {
                metrics::gauge!(CONSUMER_LAG, "operator" => self.operator, "partition" => partition.to_string())
                    .set(p.consumer_lag as f64);
            }
        }
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.hooks.on_revoke(&self.partitions(tpl));
            // The runtime runs a batch to completion between polls and
            // stores its offsets before the next poll, so everything stored
            // here is done: the next owner resumes right after it.
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => tracing::info!(
                    operator = self.operator,
                    partitions = tpl.count(),
                    "revoked: stored offsets committed"
                ),
                Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => {
                    tracing::warn!(operator = self.operator, error = %e, "revoked: committing stored offsets failed")
                }
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(
                    operator = self.operator,
                    partitions = tpl.count(),
                    "assigned"
                );
                self.hooks.on_assign(&self.partitions(tpl));
            }
            Rebalance::Revoke(tpl) => {
                tracing::info!(
                    operator = self.operator,
                    partitions = tpl.count(),
                    "revoked"
                )
            }
            Rebalance::Error(e) => {
                tracing::warn!(operator = self.operator, error = %e, "rebalance error")
            }
        }
    }
}

/// The runtime's consumer.
pub type RuntimeConsumer = StreamConsumer<Context>;

/// A consumer of `kafka.source_topic` in `kafka.group`, subscribed, that
/// starts from the earliest offset when the group has none and commits
/// (every second, and before partitions move) only stored offsets.
pub fn consumer<O: Operator>(
    kafka: &KafkaArgs,
    operator: Arc<O>,
) -> Result<RuntimeConsumer, KafkaError> {
    let consumer: RuntimeConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .set("group.id", &kafka.group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "1000")
        .set("auto.offset.reset", "earliest")
        // Incremental rebalancing: a new member takes partitions without the
        // others stopping theirs.
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "10000")
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
        .create_with_context(Context {
            topic: kafka.source_topic.clone(),
            operator: O::NAME,
            hooks: operator,
        })?;
    consumer.subscribe(&[&kafka.source_topic])?;
    Ok(consumer)
}
