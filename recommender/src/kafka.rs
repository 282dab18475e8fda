//! The recommender's Kafka clients: the consumer (at-least-once: auto-commit
//! of *stored* offsets only, stored after the effect; cooperative-sticky
//! rebalancing that commits what is done before partitions move; consumer
//! lag per partition from librdkafka's statistics), the DLQ producer, and
//! the DLQ topic's creation.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;

use crate::config::Config;
use crate::telemetry;

/// Commits stored offsets before partitions are taken away and publishes
/// consumer lag from the statistics callback.
#[derive(Debug, Default)]
pub struct RecommenderContext {
    topic: String,
}

impl ClientContext for RecommenderContext {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        for (id, p) in &topic.partitions {
            // -1 is librdkafka's "internal UA partition" and unknown lags.
            if *id >= 0 && p.consumer_lag >= 0 {
                telemetry::consumer_lag(*id, p.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for RecommenderContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Batches run to completion between polls and store their offsets
            // only once their effects are written, so what is stored is done.
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

/// The consumer the recommender polls.
pub type RecommenderConsumer = rdkafka::consumer::StreamConsumer<RecommenderContext>;

/// The consumer of `config.source_topic`, subscribed.
pub fn consumer(config: &Config) -> Result<RecommenderConsumer, KafkaError> {
    let consumer: RecommenderConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group)
        // At-least-once: librdkafka auto-commits only offsets we stored, and
        // we store an offset only after its event's effects are written.
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "1000")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "10000")
        // Consumer lag per partition, published by the context.
        .set("statistics.interval.ms", "1000")
        .create_with_context(RecommenderContext {
            topic: config.source_topic.clone(),
        })?;
    consumer.subscribe(&[&config.source_topic])?;
    Ok(consumer)
}

/// The idempotent producer of DLQ records.
pub fn producer(config: &Config) -> Result<FutureProducer, KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create()
}

/// Creates the DLQ topic if it does not exist.
pub async fn ensure_dlq(config: &Config) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .create()?;
    let results = admin
        .create_topics(
            &[NewTopic::new(
                &config.dlq_topic(),
                1,
                TopicReplication::Fixed(1),
            )],
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
    client: std::sync::Arc<BaseConsumer>,
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
