//! Why the runtime stops with an error (the caller exits; a restart
//! redelivers everything whose offset was not stored).

use rdkafka::error::KafkaError;

/// A runtime error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kafka client could not be built, or topics could not be created.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The cache's configuration is invalid.
    #[error("idempotency cache: {0}")]
    Cache(#[from] cinerec_cache::Error),
    /// A dead letter could not be written after every retry: nothing may be
    /// dropped and nothing may block, so the runtime stops.
    #[error("dead-letter queue: {0}")]
    DeadLetter(String),
    /// The operator broke [`Operator::process`](crate::Operator::process)'s
    /// contract (one outcome per event).
    #[error("operator {operator} returned {got} outcomes for {expected} events")]
    Outcomes {
        /// The operator's name.
        operator: &'static str,
        /// Events handed over.
        expected: usize,
        /// Outcomes returned.
        got: usize,
    },
}
