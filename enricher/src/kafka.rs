//! The enricher's Kafka clients, built with service-kit's shared plumbing
//! ([`cinerec_service_kit::kafka`]): the at-least-once consumer of
//! `reviews.changed` (auto-commit of *stored* offsets only, stored after the
//! effect; cooperative-sticky rebalancing that commits what is done before
//! partitions move; consumer lag per partition), the idempotent producer of
//! enriched events and DLQ records, and topic creation.

use cinerec_service_kit::kafka::{self as kit, ConsumerSettings};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;

pub use cinerec_service_kit::kafka::BrokerProbe;

use crate::config::Config;

/// The consumer the enricher polls.
pub type EnricherConsumer = kit::AtLeastOnceConsumer;

/// The consumer of `config.source_topic`, subscribed.
pub fn consumer(config: &Config) -> Result<EnricherConsumer, KafkaError> {
    kit::at_least_once_consumer(&ConsumerSettings {
        brokers: &config.brokers,
        group: &config.group,
        topic: &config.source_topic,
        lag_gauge: Some(crate::telemetry::CONSUMER_LAG),
    })
}

/// The idempotent producer of enriched events and DLQ records (a short linger
/// and lz4 batch the records of one enrichment batch together).
pub fn producer(config: &Config) -> Result<FutureProducer, KafkaError> {
    kit::idempotent_producer(
        &config.brokers,
        &[("linger.ms", "2"), ("compression.type", "lz4")],
    )
}

/// Creates the sink and DLQ topics if they do not exist.
pub async fn ensure_topics(config: &Config) -> Result<(), KafkaError> {
    let dlq = config.dlq_topic();
    kit::ensure_topics(
        &config.brokers,
        &[(&config.sink_topic, config.topic_partitions), (&dlq, 1)],
    )
    .await
}

/// A probe of the broker for `/readyz`: the source topic's metadata answers.
pub fn broker_probe(config: &Config) -> Result<BrokerProbe, KafkaError> {
    BrokerProbe::new(&config.brokers, &config.source_topic)
}
