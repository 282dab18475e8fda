//! The sink's Kafka plumbing beside the runtime's consumer
//! ([`cinerec_stream`]): a broker probe for `/readyz`.

use rdkafka::error::KafkaError;

pub use cinerec_service_kit::kafka::BrokerProbe;

use crate::config::Config;

/// A probe of the broker for `/readyz`: the topic's metadata answers.
pub fn broker_probe(config: &Config) -> Result<BrokerProbe, KafkaError> {
    BrokerProbe::new(&config.kafka.brokers, &config.kafka.source_topic)
}
