//! The enricher's Kafka clients: the consumer (at-least-once: auto-commit of
//! *stored* offsets only, stored after the effect; cooperative-sticky
//! rebalancing that commits what is done before partitions move; consumer
//! lag per partition from librdkafka's statistics), the idempotent producer,
//! and topic creation.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;

use crate::config::Config;

/// How long a produce may stay unacknowledged inside the producer (its own
/// retries included) before the delivery future fails.
pub const MESSAGE_TIMEOUT_MS: &str = "30000";

/// How often librdkafka reports statistics, whose consumer lag per partition
/// becomes [`crate::telemetry::CONSUMER_LAG`].
pub const STATISTICS_INTERVAL_MS: &str = "1000";

/// Commits stored offsets before partitions are taken away, so the next owner
/// resumes right after what this instance finished (not at the last periodic
/// auto-commit, which would redo — harmlessly but needlessly — more events),
/// and publishes the source topic's consumer lag from the statistics.
#[derive(Debug, Default)]
pub struct RebalanceContext {
    /// The source topic, whose partitions' lag is published.
    topic: String,
}

impl ClientContext for RebalanceContext {
    fn stats(&self, statistics: Statistics) {
        crate::telemetry::consumer_lag(&self.topic, &statistics);
    }
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Batches run to completion between polls and store their offsets
            // before the next poll, so everything stored here is done.
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => tracing::info!(
                    partitions = tpl.count(),
                    "revoked: stored offsets committed"
                ),
                Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => tracing::warn!(error = %e, "revoked: committing stored offsets failed"),
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => tracing::info!(partitions = tpl.count(), "assigned"),
            Rebalance::Revoke(tpl) => tracing::info!(partitions = tpl.count(), "revoked"),
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

/// The consumer the enricher polls.
pub type EnricherConsumer = rdkafka::consumer::StreamConsumer<RebalanceContext>;

/// The consumer of `config.source_topic`, subscribed.
pub fn consumer(config: &Config) -> Result<EnricherConsumer, KafkaError> {
    let consumer: EnricherConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group)
        // At-least-once: librdkafka auto-commits only offsets we stored, and
        // we store an offset only after its event's effect is acknowledged.
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "1000")
        .set("auto.offset.reset", "earliest")
        // Incremental rebalancing: a new member takes partitions without the
        // others stopping theirs.
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "10000")
        // Consumer lag per partition, published by the context.
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
        .create_with_context(RebalanceContext {
            topic: config.source_topic.clone(),
        })?;
    consumer.subscribe(&[&config.source_topic])?;
    Ok(consumer)
}

/// The idempotent producer of enriched events and DLQ records.
pub fn producer(config: &Config) -> Result<FutureProducer, KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        // The producer's own retries neither duplicate nor reorder within a partition.
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", MESSAGE_TIMEOUT_MS)
        .set("linger.ms", "2")
        .set("compression.type", "lz4")
        .create()
}

/// Creates the sink and DLQ topics if they do not exist.
pub async fn ensure_topics(config: &Config) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .create()?;
    let dlq = config.dlq_topic();
    let results = admin
        .create_topics(
            &[
                NewTopic::new(
                    &config.sink_topic,
                    config.topic_partitions,
                    TopicReplication::Fixed(1),
                ),
                NewTopic::new(&dlq, 1, TopicReplication::Fixed(1)),
            ],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(KafkaError::AdminOp(code)),
        }
    }
    Ok(())
}

/// A probe of the broker for `/readyz`: the source topic's metadata answers.
#[derive(Clone)]
pub struct BrokerProbe {
    client: std::sync::Arc<rdkafka::consumer::BaseConsumer>,
    topic: String,
}

impl std::fmt::Debug for BrokerProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerProbe")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl BrokerProbe {
    /// A metadata-only client of `config.brokers` (joins no group).
    pub fn new(config: &Config) -> Result<BrokerProbe, KafkaError> {
        Ok(BrokerProbe {
            client: std::sync::Arc::new(
                ClientConfig::new()
                    .set("bootstrap.servers", &config.brokers)
                    .create()?,
            ),
            topic: config.source_topic.clone(),
        })
    }

    /// Ok when the broker lists the source topic within a second.
    pub async fn check(&self) -> Result<(), String> {
        let (client, topic) = (self.client.clone(), self.topic.clone());
        tokio::task::spawn_blocking(move || {
            let md = client
                .fetch_metadata(Some(&topic), Duration::from_secs(1))
                .map_err(|e| e.to_string())?;
            match md.topics().first().and_then(|t| t.error()) {
                None => Ok(()),
                Some(e) => Err(format!("topic {topic}: {e:?}")),
            }
        })
        .await
        .map_err(|e| e.to_string())?
    }
}
