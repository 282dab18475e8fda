//! The enricher's configuration: flags with `--help`, each also read from an
//! env var, parsed once into [`Config`]. Tests build the struct directly
//! (start from [`Config::default`]).

use std::time::Duration;

use crate::rpc::{Endpoints, Retry};

/// Kafka bootstrap servers of the local stack.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:19092";
/// Consumer group.
pub const DEFAULT_GROUP: &str = "enricher";
/// What review-svc's CDC relay publishes.
pub const DEFAULT_SOURCE_TOPIC: &str = "reviews.changed";
/// What the recommender consumes.
pub const DEFAULT_SINK_TOPIC: &str = "reviews.enriched";
/// Partitions of the sink and DLQ topics when the enricher creates them.
pub const DEFAULT_TOPIC_PARTITIONS: i32 = 6;
/// The enricher's own cache (local zone first).
pub const DEFAULT_CACHE_URLS: &str = "memcached://127.0.0.1:11311,memcached://127.0.0.1:11312";
/// The enricher's cache namespace (separate from the recommender's).
pub const DEFAULT_CACHE_NAMESPACE: &str = "enricher";
/// How long a claim holds an event before another consumer may take it over
/// (covers one batch with all its retries).
pub const DEFAULT_IN_FLIGHT_TTL_MS: u64 = 30_000;
/// How long a done event is remembered: longer than any redelivery window
/// (a consumer-group rewind or a relay replay within a day).
pub const DEFAULT_DONE_TTL_SECS: u64 = 86_400;
/// review-svc's ReviewService (socket transport).
pub const DEFAULT_REVIEW_RPC: &str = "127.0.0.1:7301";
/// movie-svc's MovieService (socket transport).
pub const DEFAULT_MOVIE_RPC: &str = "127.0.0.1:7101";
/// user-svc's UserService (socket transport).
pub const DEFAULT_USER_RPC: &str = "127.0.0.1:7201";
/// Events collected into one batch at most.
pub const DEFAULT_BATCH_SIZE: usize = 500;
/// Longest wait for more events once a batch has its first.
pub const DEFAULT_BATCH_LINGER_MS: u64 = 5;
/// Attempts per RPC or produce before the events go to the DLQ.
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 5;
/// First backoff; doubles per failure.
pub const DEFAULT_RETRY_BASE_MS: u64 = 100;
/// Longest backoff.
pub const DEFAULT_RETRY_MAX_MS: u64 = 5_000;
/// Longest one RPC attempt may take.
pub const DEFAULT_RPC_TIMEOUT_MS: u64 = 2_000;
/// Admin port (/healthz, /readyz, /metrics).
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9084";

/// The enricher's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Kafka bootstrap servers.
    #[arg(long, env = "ENRICHER_KAFKA_BROKERS", default_value = DEFAULT_BROKERS)]
    pub brokers: String,
    /// Consumer group id.
    #[arg(long, env = "ENRICHER_GROUP", default_value = DEFAULT_GROUP)]
    pub group: String,
    /// Topic of ReviewChanged events.
    #[arg(long, env = "ENRICHER_SOURCE_TOPIC", default_value = DEFAULT_SOURCE_TOPIC)]
    pub source_topic: String,
    /// Topic of EnrichedReview events.
    #[arg(long, env = "ENRICHER_SINK_TOPIC", default_value = DEFAULT_SINK_TOPIC)]
    pub sink_topic: String,
    /// Dead-letter topic; `<source topic>.dlq` when unset.
    #[arg(long, env = "ENRICHER_DLQ_TOPIC")]
    pub dlq_topic: Option<String>,
    /// Partitions of the sink and DLQ topics if the enricher has to create them.
    #[arg(long, env = "ENRICHER_TOPIC_PARTITIONS", default_value_t = DEFAULT_TOPIC_PARTITIONS)]
    pub topic_partitions: i32,
    /// Idempotency cache zones, local first (`memcached://h:p` or `redis://h:p`, comma-separated).
    #[arg(long, env = "ENRICHER_CACHE_URLS", default_value = DEFAULT_CACHE_URLS)]
    pub cache_urls: String,
    /// Key namespace in the cache.
    #[arg(long, env = "ENRICHER_CACHE_NAMESPACE", default_value = DEFAULT_CACHE_NAMESPACE)]
    pub cache_namespace: String,
    /// In-flight claim TTL (ms).
    #[arg(long, env = "ENRICHER_IN_FLIGHT_TTL_MS", default_value_t = DEFAULT_IN_FLIGHT_TTL_MS)]
    pub in_flight_ttl_ms: u64,
    /// Done marker TTL (s).
    #[arg(long, env = "ENRICHER_DONE_TTL_SECS", default_value_t = DEFAULT_DONE_TTL_SECS)]
    pub done_ttl_secs: u64,
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
    /// Events per batch at most.
    #[arg(long, env = "ENRICHER_BATCH_SIZE", default_value_t = DEFAULT_BATCH_SIZE,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub batch_size: usize,
    /// Wait for more events after a batch's first (ms).
    #[arg(long, env = "ENRICHER_BATCH_LINGER_MS", default_value_t = DEFAULT_BATCH_LINGER_MS)]
    pub batch_linger_ms: u64,
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
            brokers: DEFAULT_BROKERS.into(),
            group: DEFAULT_GROUP.into(),
            source_topic: DEFAULT_SOURCE_TOPIC.into(),
            sink_topic: DEFAULT_SINK_TOPIC.into(),
            dlq_topic: None,
            topic_partitions: DEFAULT_TOPIC_PARTITIONS,
            cache_urls: DEFAULT_CACHE_URLS.into(),
            cache_namespace: DEFAULT_CACHE_NAMESPACE.into(),
            in_flight_ttl_ms: DEFAULT_IN_FLIGHT_TTL_MS,
            done_ttl_secs: DEFAULT_DONE_TTL_SECS,
            review_rpc: DEFAULT_REVIEW_RPC.into(),
            movie_rpc: DEFAULT_MOVIE_RPC.into(),
            user_rpc: DEFAULT_USER_RPC.into(),
            batch_size: DEFAULT_BATCH_SIZE,
            batch_linger_ms: DEFAULT_BATCH_LINGER_MS,
            retry_attempts: DEFAULT_RETRY_ATTEMPTS,
            retry_base_ms: DEFAULT_RETRY_BASE_MS,
            retry_max_ms: DEFAULT_RETRY_MAX_MS,
            rpc_timeout_ms: DEFAULT_RPC_TIMEOUT_MS,
        }
    }
}

impl Config {
    /// The DLQ topic: configured, or `<source topic>.dlq`.
    pub fn dlq_topic(&self) -> String {
        self.dlq_topic
            .clone()
            .unwrap_or_else(|| format!("{}.dlq", self.source_topic))
    }

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
            base: Duration::from_millis(self.retry_base_ms),
            max: Duration::from_millis(self.retry_max_ms),
            attempt_timeout: Duration::from_millis(self.rpc_timeout_ms),
        }
    }

    /// TTL of a claim.
    pub fn in_flight_ttl(&self) -> Duration {
        Duration::from_millis(self.in_flight_ttl_ms)
    }

    /// TTL of a done marker.
    pub fn done_ttl(&self) -> Duration {
        Duration::from_secs(self.done_ttl_secs)
    }

    /// Batch linger.
    pub fn batch_linger(&self) -> Duration {
        Duration::from_millis(self.batch_linger_ms)
    }
}
