//! The sink's Kafka consumer (at-least-once: librdkafka auto-commits only the
//! offsets we store, and we store them after the batch's transaction) and a
//! broker probe for `/readyz`.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::Config;

/// Commits what is stored before partitions move, so the next owner resumes
/// right after the last committed batch (instead of redoing up to a second
/// of them, which would be harmless: skipped as duplicates).
#[derive(Debug, Default)]
pub struct CommitOnRevoke;

impl ClientContext for CommitOnRevoke {}

impl ConsumerContext for CommitOnRevoke {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => tracing::warn!(error = %e, "revoked: committing stored offsets failed"),
            }
        }
    }
}

/// The subscribed consumer.
pub fn consumer(config: &Config) -> Result<StreamConsumer<CommitOnRevoke>, KafkaError> {
    let consumer: StreamConsumer<CommitOnRevoke> = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "1000")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .create_with_context(CommitOnRevoke)?;
    consumer.subscribe(&[&config.topic])?;
    Ok(consumer)
}

/// Metadata-only client answering "does the broker list the topic".
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
    /// A client of `config.brokers` that joins no group.
    pub fn new(config: &Config) -> Result<BrokerProbe, KafkaError> {
        Ok(BrokerProbe {
            client: Arc::new(
                ClientConfig::new()
                    .set("bootstrap.servers", &config.brokers)
                    .create()?,
            ),
            topic: config.topic.clone(),
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
