//! The sink's Kafka consumer, built with service-kit's shared plumbing
//! ([`cinerec_service_kit::kafka`]): at-least-once (librdkafka auto-commits
//! only the offsets we store, and we store them after the batch's
//! transaction), commit-on-revoke, consumer lag per partition; and a broker
//! probe for `/readyz`.

use cinerec_service_kit::kafka::{self as kit, ConsumerSettings};
use rdkafka::error::KafkaError;

pub use cinerec_service_kit::kafka::BrokerProbe;

use crate::config::Config;

/// The subscribed consumer.
pub fn consumer(config: &Config) -> Result<kit::AtLeastOnceConsumer, KafkaError> {
    kit::at_least_once_consumer(&ConsumerSettings {
        brokers: &config.brokers,
        group: &config.group,
        topic: &config.topic,
        lag_gauge: Some(crate::telemetry::CONSUMER_LAG),
    })
}

/// A probe of the broker for `/readyz`: the topic's metadata answers.
pub fn broker_probe(config: &Config) -> Result<BrokerProbe, KafkaError> {
    BrokerProbe::new(&config.brokers, &config.topic)
}
