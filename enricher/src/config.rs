//! The enricher's configuration: flags with `--help`, each also read from an
//! env var, parsed once into [`Config`] with [`cinerec_stream::config::parse`]
//! (which installs the enricher's [`STREAM`] defaults on the runtime's
//! shared Kafka and cache flags). Tests build the struct directly (start from
//! [`Config::default`]).

use std::time::Duration;

use cinerec_backoff::ExponentialBackoff;
use cinerec_service_kit::defaults;
use cinerec_stream::{CacheArgs, CacheDefaults, Defaults, KafkaArgs};

use crate::rpc::{Endpoints, Retry};

/// The enricher's defaults of the runtime's shared Kafka and cache flags
/// (env vars `ENRICHER_KAFKA_BROKERS`, `ENRICHER_GROUP`, ...).
pub const STREAM: Defaults = Defaults {
    env_prefix: "ENRICHER",
    group: "enricher",
    // What review-svc's CDC relay publishes.
    source_topic: "reviews.changed",
    dlq_topic: None,
    batch_size: 500,
    batch_linger_ms: 5,
    cache: Some(CACHE),
};
/// The enricher's own cache (local zone first), separate from the
/// recommender's.
pub const CACHE: CacheDefaults = CacheDefaults {
    urls: cinerec_service_kit::defaults::DEFAULT_MEMCACHED_URLS,
    namespace: "enricher",
    // A claim holds an event for one batch with all its retries.
    in_flight_ttl_ms: 30_000,
    // Longer than any redelivery window (a group rewind or a relay replay
    // within a day).
    done_ttl_secs: 86_400,
};
/// What the recommender consumes.
pub const DEFAULT_SINK_TOPIC: &str = "reviews.enriched";
/// Partitions of the sink topic when the enricher creates it.
pub const DEFAULT_TOPIC_PARTITIONS: i32 = 6;
/// review-svc's ReviewService (socket transport).
pub const DEFAULT_REVIEW_RPC: &str = defaults::DEFAULT_REVIEW_RPC_ADDR;
/// movie-svc's MovieService (socket transport).
pub const DEFAULT_MOVIE_RPC: &str = defaults::DEFAULT_MOVIE_RPC_ADDR;
/// user-svc's UserService (socket transport).
pub const DEFAULT_USER_RPC: &str = defaults::DEFAULT_USER_RPC_ADDR;
/// Attempts per RPC or produce before the events go to the DLQ.
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 5;
/// First backoff; doubles per failure.
pub const DEFAULT_RETRY_BASE_MS: u64 = 100;
/// Longest backoff.
pub const DEFAULT_RETRY_MAX_MS: u64 = 5_000;
/// Longest one RPC attempt may take.
pub const DEFAULT_RPC_TIMEOUT_MS: u64 = 2_000;

/// The enricher's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Brokers, group, source/DLQ topics, batching (the runtime's shared flags).
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The enricher's idempotency cache (the runtime's shared flags).
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Topic of EnrichedReview events.
    #[arg(long, env = "ENRICHER_SINK_TOPIC", default_value = DEFAULT_SINK_TOPIC)]
    pub sink_topic: String,
    /// Partitions of the sink topic if the enricher has to create it.
    #[arg(long, env = "ENRICHER_TOPIC_PARTITIONS", default_value_t = DEFAULT_TOPIC_PARTITIONS)]
    pub topic_partitions: i32,
    /// review-svc ReviewService socket address.
    #[arg(long, env = "ENRICHER_REVIEW_RPC", default_value = DEFAULT_REVIEW_RPC,
          value_parser = host_port)]
    pub review_rpc: String,
    /// movie-svc MovieService socket address.
    #[arg(long, env = "ENRICHER_MOVIE_RPC", default_value = DEFAULT_MOVIE_RPC,
          value_parser = host_port)]
    pub movie_rpc: String,
    /// user-svc UserService socket address.
    #[arg(long, env = "ENRICHER_USER_RPC", default_value = DEFAULT_USER_RPC,
          value_parser = host_port)]
    pub user_rpc: String,
    /// Attempts per RPC/produce before the DLQ.
    #[arg(long, env = "ENRICHER_RETRY_ATTEMPTS", default_value_t = DEFAULT_RETRY_ATTEMPTS,
          value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub retry_attempts: u32,
    /// First retry backoff (ms).
    #[arg(long, env = "ENRICHER_RETRY_BASE_MS", default_value_t = DEFAULT_RETRY_BASE_MS)]
    pub retry_base_ms: u64,
    /// Longest retry backoff (ms).
    #[arg(long, env = "ENRICHER_RETRY_MAX_MS", default_value_t = DEFAULT_RETRY_MAX_MS)]
    pub retry_max_ms: u64,
    /// One RPC attempt's deadline (ms).
    #[arg(long, env = "ENRICHER_RPC_TIMEOUT_MS", default_value_t = DEFAULT_RPC_TIMEOUT_MS)]
    pub rpc_timeout_ms: u64,
}

/// A `host:port` address: an IP or a DNS name (a Kubernetes Service name),
/// resolved at each connect so a Service that moves is followed.
fn host_port(s: &str) -> Result<String, String> {
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(s.to_owned()),
        _ => Err(format!("{s:?} is not host:port")),
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            kafka: STREAM.kafka(),
            cache: CACHE.args(),
            sink_topic: DEFAULT_SINK_TOPIC.into(),
            topic_partitions: DEFAULT_TOPIC_PARTITIONS,
            review_rpc: DEFAULT_REVIEW_RPC.into(),
            movie_rpc: DEFAULT_MOVIE_RPC.into(),
            user_rpc: DEFAULT_USER_RPC.into(),
            retry_attempts: DEFAULT_RETRY_ATTEMPTS,
            retry_base_ms: DEFAULT_RETRY_BASE_MS,
            retry_max_ms: DEFAULT_RETRY_MAX_MS,
            rpc_timeout_ms: DEFAULT_RPC_TIMEOUT_MS,
        }
    }
}

impl Config {
    /// The RPC endpoints.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            review: self.review_rpc.clone(),
            movie: self.movie_rpc.clone(),
            user: self.user_rpc.clone(),
        }
    }

    /// The retry policy of RPCs and produces.
    pub fn retry(&self) -> Retry {
        Retry {
            attempts: self.retry_attempts.max(1),
            backoff: ExponentialBackoff::new(
                Duration::from_millis(self.retry_base_ms),
                Duration::from_millis(self.retry_max_ms),
            ),
            attempt_timeout: Duration::from_millis(self.rpc_timeout_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Args {
        #[command(flatten)]
        config: Config,
    }

    #[test]
    fn no_flags_give_the_default_config() {
        let args: Args =
            cinerec_stream::config::try_parse_from(&STREAM, ["enricher"]).expect("defaults parse");
        let (parsed, default) = (args.config, Config::default());
        assert_eq!(parsed.kafka, default.kafka);
        assert_eq!(parsed.cache, default.cache);
        assert_eq!(parsed.sink_topic, default.sink_topic);
        assert_eq!(parsed.kafka.dlq_topic(), "reviews.changed.dlq");
    }
}
