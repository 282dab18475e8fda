//! The recommender's Kafka clients, built with service-kit's shared plumbing
//! ([`cinerec_service_kit::kafka`]): the at-least-once consumer of
//! `reviews.enriched` (auto-commit of *stored* offsets only, stored after the
//! effect; cooperative-sticky rebalancing that commits what is done before
//! partitions move; consumer lag per partition), the DLQ producer, and the
//! DLQ topic's creation.

use cinerec_service_kit::kafka::{self as kit, ConsumerSettings};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;

pub use cinerec_service_kit::kafka::BrokerProbe;

use crate::config::Config;
use crate::telemetry;

/// The consumer the recommender polls.
pub type RecommenderConsumer = kit::AtLeastOnceConsumer;

/// The consumer of `config.source_topic`, subscribed.
pub fn consumer(config: &Config) -> Result<RecommenderConsumer, KafkaError> {
    kit::at_least_once_consumer(&ConsumerSettings {
        brokers: &config.brokers,
        group: &config.group,
        topic: &config.source_topic,
        lag_gauge: Some(telemetry::CONSUMER_LAG),
    })
}

/// The idempotent producer of DLQ records.
pub fn producer(config: &Config) -> Result<FutureProducer, KafkaError> {
    kit::idempotent_producer(&config.brokers, &[])
}

/// Creates the DLQ topic if it does not exist.
pub async fn ensure_dlq(config: &Config) -> Result<(), KafkaError> {
    kit::ensure_topics(&config.brokers, &[(&config.dlq_topic(), 1)]).await
}

/// A probe of the broker for `/readyz`: the source topic's metadata answers.
pub fn broker_probe(config: &Config) -> Result<BrokerProbe, KafkaError> {
    BrokerProbe::new(&config.brokers, &config.source_topic)
}
