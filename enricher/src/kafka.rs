//! The enricher's own Kafka plumbing, built with service-kit's helpers
//! ([`cinerec_service_kit::kafka`]): the idempotent producer of enriched
//! events, sink topic creation, and the broker probe for `/readyz`. The
//! consumer, the DLQ and its topic are the runtime's ([`cinerec_stream`]).

use cinerec_service_kit::kafka as kit;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;

pub use cinerec_service_kit::kafka::BrokerProbe;

use crate::config::Config;

/// The idempotent producer of enriched events (a short linger and lz4 batch
/// the records of one enrichment batch together).
pub fn producer(config: &Config) -> Result<FutureProducer, KafkaError> {
    kit::idempotent_producer(
        &config.kafka.brokers,
        &[("linger.ms", "2"), ("compression.type", "lz4")],
    )
}

/// Creates the sink topic if it does not exist.
pub async fn ensure_topics(config: &Config) -> Result<(), KafkaError> {
    kit::ensure_topics(
        &config.kafka.brokers,
        &[(&config.sink_topic, config.topic_partitions)],
    )
    .await
}

/// A probe of the broker for `/readyz`: the source topic's metadata answers.
pub fn broker_probe(config: &Config) -> Result<BrokerProbe, KafkaError> {
    BrokerProbe::new(&config.kafka.brokers, &config.kafka.source_topic)
}
