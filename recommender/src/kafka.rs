//! The recommender's Kafka clients, built with service-kit's shared plumbing
//! ([`cinerec_service_kit::kafka`]): the at-least-once consumer of
//! `reviews.enriched` (auto-commit of *stored* offsets only, stored after the
//! effect; cooperative-sticky rebalancing; consumer lag per partition) whose
//! rebalances also reach the recommender's ownership ([`Rebalanced`]), the
//! idempotent producer of DLQ and changelog records, and topic creation.

use std::sync::Arc;

use cinerec_service_kit::kafka::{self as kit, AtLeastOnceContext};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;

pub use cinerec_service_kit::kafka::BrokerProbe;

use crate::config::Config;
use crate::telemetry;

/// What the recommender does when partitions move (called from inside the
/// consumer's poll, between batches).
pub trait Rebalanced: Send + Sync + 'static {
    /// These partitions are this instance's now.
    fn assigned(&self, partitions: &[i32]);
    /// These partitions are about to go: drain what is pending for them.
    fn revoked(&self, partitions: &[i32]);
}

/// service-kit's at-least-once context (commit-on-revoke, lag), plus the
/// recommender's rebalance hooks.
pub struct RecommenderContext {
    inner: AtLeastOnceContext,
    hooks: Arc<dyn Rebalanced>,
}

impl std::fmt::Debug for RecommenderContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecommenderContext").finish_non_exhaustive()
    }
}

fn partitions_of(rebalance: &Rebalance<'_>) -> Vec<i32> {
    match rebalance {
        Rebalance::Assign(tpl) | Rebalance::Revoke(tpl) => {
            tpl.elements().iter().map(|e| e.partition()).collect()
        }
        Rebalance::Error(_) => Vec::new(),
    }
}

impl ClientContext for RecommenderContext {
    fn stats(&self, statistics: Statistics) {
        self.inner.stats(statistics);
    }
}

impl ConsumerContext for RecommenderContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            // Drain first (the rows of what goes), then commit what is stored.
            self.hooks.revoked(&partitions_of(rebalance));
        }
        kit::commit_stored_on_revoke(consumer, rebalance);
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.hooks.assigned(&partitions_of(rebalance));
        }
        kit::log_rebalance(rebalance);
    }
}

/// The consumer the recommender polls.
pub type RecommenderConsumer = StreamConsumer<RecommenderContext>;

/// The consumer of `config.source_topic`, subscribed; rebalances reach `hooks`.
pub fn consumer(
    config: &Config,
    hooks: Arc<dyn Rebalanced>,
) -> Result<RecommenderConsumer, KafkaError> {
    let mut cc = ClientConfig::new();
    kit::at_least_once_settings(&mut cc, &config.brokers, &config.group);
    let consumer: RecommenderConsumer = cc.create_with_context(RecommenderContext {
        inner: AtLeastOnceContext::new(&config.source_topic, Some(telemetry::CONSUMER_LAG)),
        hooks,
    })?;
    consumer.subscribe(&[&config.source_topic])?;
    Ok(consumer)
}

/// The idempotent producer of DLQ and changelog records (changelog batches
/// are produced together and awaited: let them share requests).
pub fn producer(config: &Config) -> Result<FutureProducer, KafkaError> {
    kit::idempotent_producer(
        &config.brokers,
        &[("linger.ms", "2"), ("compression.type", "lz4")],
    )
}

/// Creates the DLQ topic if it does not exist.
pub async fn ensure_dlq(config: &Config) -> Result<(), KafkaError> {
    kit::ensure_topics(&config.brokers, &[(&config.dlq_topic(), 1)]).await
}

/// A probe of the broker for `/readyz`: the source topic's metadata answers.
pub fn broker_probe(config: &Config) -> Result<BrokerProbe, KafkaError> {
    BrokerProbe::new(&config.brokers, &config.source_topic)
}
