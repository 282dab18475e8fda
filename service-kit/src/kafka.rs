//! The Kafka plumbing cinerec's services share (the consumers' loop and
//! their consumer are the operator runtime's, in `stream/`):
//!
//! * [`idempotent_producer`]: retries inside the producer neither duplicate
//!   nor reorder within a partition (librdkafka does not enable it by default);
//! * [`ensure_topics`]: creates what is missing, tolerating what exists;
//!   [`delete_topics`]: a run's cleanup, tolerating what is gone;
//! * [`BrokerProbe`]: a metadata round trip for `/readyz`;
//! * [`dlq`]: dead letters — a poison record copied with headers that say why
//!   and where from.

pub mod dlq;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;

/// How often librdkafka reports statistics (the source of consumers' lag gauges).
pub const STATISTICS_INTERVAL_MS: &str = "1000";

/// How long a produce may stay unacknowledged inside the producer (its own
/// retries included) before the delivery future fails.
pub const MESSAGE_TIMEOUT_MS: &str = "30000";

/// An idempotent producer (`acks=all`) to `brokers`; `extra` adds settings
/// (e.g. `linger.ms`, `compression.type`).
pub fn idempotent_producer(
    brokers: &str,
    extra: &[(&str, &str)],
) -> Result<FutureProducer, KafkaError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", MESSAGE_TIMEOUT_MS);
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create()
}

/// Creates each `(topic, partitions)` that does not exist yet (replication
/// factor 1: the local stack; production creates topics out of band).
pub async fn ensure_topics(brokers: &str, topics: &[(&str, i32)]) -> Result<(), KafkaError> {
    ensure_topics_with_config(brokers, topics, &[]).await
}

/// [`ensure_topics`] with topic-level settings (e.g. `cleanup.policy`) on
/// every topic it creates; a topic that exists keeps the settings it has.
pub async fn ensure_topics_with_config(
    brokers: &str,
    topics: &[(&str, i32)],
    config: &[(&str, &str)],
) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| {
            config.iter().fold(
                NewTopic::new(name, *partitions, TopicReplication::Fixed(1)),
                |topic, (k, v)| topic.set(k, v),
            )
        })
        .collect();
    let results = admin
        .create_topics(
            &new,
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

/// Deletes `topics` (a run's or a test's own, when it cleans up). The
/// request fails as a whole only when the broker cannot be asked; a topic
/// that does not exist (nobody wrote to that DLQ) is not an error.
pub async fn delete_topics(brokers: &str, topics: &[&str]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let results = admin
        .delete_topics(
            topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((_, code)) => return Err(KafkaError::AdminOp(code)),
        }
    }
    Ok(())
}

/// A probe of the broker for `/readyz`: the topic's metadata answers.
#[derive(Clone)]
pub struct BrokerProbe {
    client: Arc<BaseConsumer>,
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
    /// A metadata-only client of `brokers` (joins no group).
    pub fn new(brokers: &str, topic: &str) -> Result<BrokerProbe, KafkaError> {
        Ok(BrokerProbe {
            client: Arc::new(
                ClientConfig::new()
                    .set("bootstrap.servers", brokers)
                    .create()?,
            ),
            topic: topic.to_owned(),
        })
    }

    /// Ok when the broker lists the topic within a second.
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
