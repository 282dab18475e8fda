//! The Kafka plumbing every at-least-once consumer of cinerec shares (through
//! the operator runtime in `stream/`, and the recommender's own loop until it
//! moves onto it):
//!
//! * [`at_least_once_consumer`]: librdkafka auto-commits only the offsets the
//!   caller *stored*, and the caller stores an offset only after its event's
//!   effects are written; cooperative-sticky rebalancing, and a context that
//!   commits what is stored before partitions move away (the next owner then
//!   resumes right after the finished work instead of redoing up to one
//!   auto-commit interval of it — harmless, since effects are idempotent, but
//!   needless) and publishes consumer lag per partition;
//! * [`idempotent_producer`]: retries inside the producer neither duplicate
//!   nor reorder within a partition (librdkafka does not enable it by default);
//! * [`ensure_topics`]: creates what is missing, tolerating what exists;
//! * [`BrokerProbe`]: a metadata round trip for `/readyz`;
//! * [`dlq`]: dead letters — a poison record copied with headers that say why
//!   and where from.

pub mod dlq;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;

use crate::consumer_lag::record_consumer_lag;

/// How often librdkafka reports statistics (the source of the lag gauge).
pub const STATISTICS_INTERVAL_MS: &str = "1000";

/// How long a produce may stay unacknowledged inside the producer (its own
/// retries included) before the delivery future fails.
pub const MESSAGE_TIMEOUT_MS: &str = "30000";

/// The consumer context of [`at_least_once_consumer`]: commit-on-revoke,
/// rebalance logging, consumer lag per partition of the source topic.
#[derive(Debug)]
pub struct AtLeastOnceContext {
    topic: String,
    lag_gauge: Option<&'static str>,
}

impl ClientContext for AtLeastOnceContext {
    fn stats(&self, statistics: Statistics) {
        if let Some(gauge) = self.lag_gauge {
            record_consumer_lag(gauge, &self.topic, &statistics);
        }
    }
}

impl AtLeastOnceContext {
    /// A context for `topic`, publishing its lag to `lag_gauge` (if any):
    /// for consumers that wrap it in a context of their own.
    pub fn new(topic: &str, lag_gauge: Option<&'static str>) -> AtLeastOnceContext {
        AtLeastOnceContext {
            topic: topic.to_owned(),
            lag_gauge,
        }
    }
}

/// Before partitions move away, commits what is stored. Callers run a batch
/// to completion between polls and store its offsets before the next poll,
/// so everything stored here is done.
pub fn commit_stored_on_revoke<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    rebalance: &Rebalance<'_>,
) {
    if let Rebalance::Revoke(tpl) = rebalance {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => tracing::info!(
                partitions = tpl.count(),
                "revoked: stored offsets committed"
            ),
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!(error = %e, "revoked: committing stored offsets failed"),
        }
    }
}

/// Logs a finished rebalance.
pub fn log_rebalance(rebalance: &Rebalance<'_>) {
    match rebalance {
        Rebalance::Assign(tpl) => tracing::info!(partitions = tpl.count(), "assigned"),
        Rebalance::Revoke(tpl) => tracing::info!(partitions = tpl.count(), "revoked"),
        Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
    }
}

impl ConsumerContext for AtLeastOnceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        commit_stored_on_revoke(consumer, rebalance);
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        log_rebalance(rebalance);
    }
}

/// A consumer built by [`at_least_once_consumer`].
pub type AtLeastOnceConsumer = StreamConsumer<AtLeastOnceContext>;

/// What [`at_least_once_consumer`] needs.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerSettings<'a> {
    /// Bootstrap servers (`host:port,...`).
    pub brokers: &'a str,
    /// Consumer group id.
    pub group: &'a str,
    /// The one topic consumed.
    pub topic: &'a str,
    /// Gauge family set to the lag of each assigned partition (`None`: none).
    pub lag_gauge: Option<&'static str>,
}

/// A consumer of `settings.topic` in `settings.group`, subscribed, that starts
/// from the earliest offset when the group has none and commits (every second,
/// and before partitions move) only the offsets the caller stored with
/// `store_offset*` after the effects.
pub fn at_least_once_consumer(
    settings: &ConsumerSettings<'_>,
) -> Result<AtLeastOnceConsumer, KafkaError> {
    let mut config = ClientConfig::new();
    at_least_once_settings(&mut config, settings.brokers, settings.group);
    let consumer: AtLeastOnceConsumer =
        config.create_with_context(AtLeastOnceContext::new(settings.topic, settings.lag_gauge))?;
    consumer.subscribe(&[settings.topic])?;
    Ok(consumer)
}

/// The settings of [`at_least_once_consumer`], for consumers built with a
/// context of their own.
pub fn at_least_once_settings(config: &mut ClientConfig, brokers: &str, group: &str) {
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "1000")
        .set("auto.offset.reset", "earliest")
        // Incremental rebalancing: a new member takes partitions without the
        // others stopping theirs.
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "10000")
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
}

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
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
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
