//! The recommender's own Kafka clients (its consumer, DLQ and claims are
//! the runtime's, [`cinerec_stream`]): the idempotent producer of changelog
//! records, and the broker probe of `/readyz`.

use cinerec_service_kit::kafka as kit;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;

pub use cinerec_service_kit::kafka::BrokerProbe;

use crate::config::Config;

/// The idempotent producer of changelog records (a batch's records are
/// produced together and awaited: let them share requests).
pub fn producer(config: &Config) -> Result<FutureProducer, KafkaError> {
    kit::idempotent_producer(
        &config.kafka.brokers,
        &[("linger.ms", "2"), ("compression.type", "lz4")],
    )
}

/// A probe of the broker for `/readyz`: the source topic's metadata answers.
pub fn broker_probe(config: &Config) -> Result<BrokerProbe, KafkaError> {
    BrokerProbe::new(&config.kafka.brokers, &config.kafka.source_topic)
}
