//! The recommender's configuration: flags with `--help`, each also read from
//! an env var, parsed once into [`Config`] (the runtime's shared Kafka and
//! cache flags get the recommender's [`STREAM`] defaults from
//! [`cinerec_stream::config::with_defaults`]). Tests build the struct
//! directly (start from [`Config::default`]).

use std::time::Duration;

use cinerec_backoff::ExponentialBackoff;
use cinerec_stream::{CacheArgs, CacheDefaults, CqlArgs, Defaults, KafkaArgs};

use crate::trending::TrendingConfig;

/// The recommender's defaults of the runtime's shared Kafka and cache flags
/// (env vars `RECOMMENDER_KAFKA_BROKERS`, `RECOMMENDER_GROUP`, ...).
pub const STREAM: Defaults = Defaults {
    env_prefix: "RECOMMENDER",
    group: "recommender",
    // What the enricher produces.
    source_topic: "reviews.enriched",
    dlq_topic: None,
    batch_size: 1_000,
    batch_linger_ms: 5,
    cache: Some(CACHE),
};
/// The recommender's own cache (local zone first), separate from the enricher's.
pub const CACHE: CacheDefaults = CacheDefaults {
    urls: cinerec_service_kit::defaults::DEFAULT_MEMCACHED_URLS,
    namespace: "recommender",
    // A claim holds an event for one batch's changelog write with its
    // retries. A `kill -9` leaves claims behind; a restart waits at most
    // twice this for them (then proceeds: the model is idempotent by version).
    in_flight_ttl_ms: 10_000,
    // Longer than any redelivery window.
    done_ttl_secs: 86_400,
};
/// Replication of the keyspace: one replica locally; a
/// `NetworkTopologyStrategy` map in production.
pub const DEFAULT_REPLICATION: &str = "{'class': 'SimpleStrategy', 'replication_factor': 1}";
/// Period of the flush of serving rows: each dirty key this instance owns
/// is written at most once per period (coalesced), and only when its value
/// differs from the last one durably written. Bounds the latency from an
/// event to its user's recommendations row.
pub const DEFAULT_REFRESH_INTERVAL_MS: u64 = 100;
/// Most rows the background refresh recomputes per flush, for the whole
/// group (each instance takes its share of partitions' worth): movies whose
/// similarities moved, then users whose neighbours' did (the users whose
/// own events changed are flushed at once, all of them, by their own task).
/// The rest waits for the next tick: bounded per tick, complete over ticks.
/// At the default flush interval: 3 000 rows/s, a budget that keeps the
/// background refresh from crowding out the rows whose latency counts.
pub const DEFAULT_REFRESH_MAX_USERS: usize = 300;
/// Longest a revoke waits for the revoked partitions' pending rows to be
/// written before the partitions go (a late drain is still safe: fenced).
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 5_000;
/// Concurrent Cassandra writes in flight.
pub const DEFAULT_WRITE_CONCURRENCY: usize = 128;
/// First backoff of a failed Cassandra write; doubles per failure.
pub const DEFAULT_RETRY_BASE_MS: u64 = 100;
/// Longest backoff of a failed Cassandra write (it is retried forever: the
/// partition blocks rather than lose an effect).
pub const DEFAULT_RETRY_MAX_MS: u64 = 5_000;
/// Trending window.
pub const DEFAULT_TRENDING_WINDOW_SECS: u64 = 3_600;
/// Trending slide (bucket width).
pub const DEFAULT_TRENDING_SLIDE_SECS: u64 = 300;
/// Trending allowed lateness (watermark = newest event − this).
pub const DEFAULT_TRENDING_LATENESS_SECS: u64 = 120;

/// Where the recommender's tables live: the shared CQL flags (rollup reads
/// the same tables with them) and the replication `migrate` creates the
/// keyspace with. Reads through to [`CqlArgs`].
#[derive(Debug, Clone, clap::Args)]
pub struct CqlConfig {
    /// Contact points, keyspace, request timeout (shared with rollup).
    #[command(flatten)]
    pub shared: CqlArgs,
    /// Replication map the keyspace is created with (CQL literal).
    #[arg(long, env = "RECOMMENDER_REPLICATION", default_value = DEFAULT_REPLICATION)]
    pub replication: String,
}

impl std::ops::Deref for CqlConfig {
    type Target = CqlArgs;
    fn deref(&self) -> &CqlArgs {
        &self.shared
    }
}

impl Default for CqlConfig {
    fn default() -> CqlConfig {
        CqlConfig {
            shared: CqlArgs::default(),
            replication: DEFAULT_REPLICATION.into(),
        }
    }
}

/// The recommender's settings (`recommender run`).
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Brokers, group, source/DLQ topics, batching (the runtime's shared flags).
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The recommender's idempotency cache (the runtime's shared flags).
    #[command(flatten)]
    pub cache: CacheArgs,
    /// The compacted changelog topic of the model's review states (the
    /// durable state); `<group>-review-states-changelog` when unset.
    #[arg(long, env = "RECOMMENDER_CHANGELOG_TOPIC")]
    pub changelog_topic: Option<String>,
    /// This instance's name in the partition lease table and on its
    /// changelog records (default: host, pid and a random suffix); unique per
    /// running instance.
    #[arg(long, env = "RECOMMENDER_INSTANCE")]
    pub instance: Option<String>,
    /// Longest a revoke waits for the revoked partitions' rows (ms).
    #[arg(long, env = "RECOMMENDER_DRAIN_TIMEOUT_MS", default_value_t = DEFAULT_DRAIN_TIMEOUT_MS)]
    pub drain_timeout_ms: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cql: CqlConfig,
    /// Period of the flush of serving rows (ms).
    #[arg(long, env = "RECOMMENDER_REFRESH_INTERVAL_MS", default_value_t = DEFAULT_REFRESH_INTERVAL_MS,
          value_parser = clap::value_parser!(u64).range(10..))]
    pub refresh_interval_ms: u64,
    /// Most rows the background refresh recomputes per flush.
    #[arg(long, env = "RECOMMENDER_REFRESH_MAX_USERS", default_value_t = DEFAULT_REFRESH_MAX_USERS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub refresh_max_users: usize,
    /// Concurrent Cassandra writes in flight.
    #[arg(long, env = "RECOMMENDER_WRITE_CONCURRENCY", default_value_t = DEFAULT_WRITE_CONCURRENCY,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4_096))]
    pub write_concurrency: usize,
    /// First backoff of a failed Cassandra write (ms).
    #[arg(long, env = "RECOMMENDER_RETRY_BASE_MS", default_value_t = DEFAULT_RETRY_BASE_MS)]
    pub retry_base_ms: u64,
    /// Longest backoff of a failed Cassandra write (ms).
    #[arg(long, env = "RECOMMENDER_RETRY_MAX_MS", default_value_t = DEFAULT_RETRY_MAX_MS)]
    pub retry_max_ms: u64,
    /// Trending window (s).
    #[arg(long, env = "RECOMMENDER_TRENDING_WINDOW_SECS", default_value_t = DEFAULT_TRENDING_WINDOW_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub trending_window_secs: u64,
    /// Trending slide, the bucket width (s); divides the window.
    #[arg(long, env = "RECOMMENDER_TRENDING_SLIDE_SECS", default_value_t = DEFAULT_TRENDING_SLIDE_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub trending_slide_secs: u64,
    /// Trending allowed lateness (s).
    #[arg(long, env = "RECOMMENDER_TRENDING_LATENESS_SECS", default_value_t = DEFAULT_TRENDING_LATENESS_SECS)]
    pub trending_lateness_secs: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            kafka: STREAM.kafka(),
            cache: CACHE.args(),
            changelog_topic: None,
            instance: None,
            drain_timeout_ms: DEFAULT_DRAIN_TIMEOUT_MS,
            cql: CqlConfig::default(),
            refresh_interval_ms: DEFAULT_REFRESH_INTERVAL_MS,
            refresh_max_users: DEFAULT_REFRESH_MAX_USERS,
            write_concurrency: DEFAULT_WRITE_CONCURRENCY,
            retry_base_ms: DEFAULT_RETRY_BASE_MS,
            retry_max_ms: DEFAULT_RETRY_MAX_MS,
            trending_window_secs: DEFAULT_TRENDING_WINDOW_SECS,
            trending_slide_secs: DEFAULT_TRENDING_SLIDE_SECS,
            trending_lateness_secs: DEFAULT_TRENDING_LATENESS_SECS,
        }
    }
}

impl Config {
    /// What the runtime runs with: the shared Kafka and cache flags.
    pub fn runtime(&self) -> cinerec_stream::Config {
        cinerec_stream::Config {
            kafka: self.kafka.clone(),
            cache: Some(self.cache.clone()),
        }
    }

    /// The changelog topic: configured, or `<group>-review-states-changelog`
    /// (Kafka Streams' naming: one per application id).
    pub fn changelog_topic(&self) -> String {
        self.changelog_topic
            .clone()
            .unwrap_or_else(|| format!("{}-review-states-changelog", self.kafka.group))
    }

    /// This instance's name: configured, or `<host>-<pid>-<random>` (two
    /// instances must never share one: each skips its own changelog records).
    /// Call once per instance.
    pub fn instance(&self) -> String {
        self.instance.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "recommender".into());
            let nonce = uuid::Uuid::new_v4().simple().to_string();
            format!("{host}-{}-{}", std::process::id(), &nonce[..8])
        })
    }

    /// Refresh period.
    pub fn refresh_interval(&self) -> Duration {
        Duration::from_millis(self.refresh_interval_ms.max(10))
    }

    /// Backoff of failed writes.
    pub fn backoff(&self) -> ExponentialBackoff {
        ExponentialBackoff::new(
            Duration::from_millis(self.retry_base_ms.max(1)),
            Duration::from_millis(self.retry_max_ms),
        )
    }

    /// The trending windows' shape.
    pub fn trending(&self) -> TrendingConfig {
        TrendingConfig {
            window: Duration::from_secs(self.trending_window_secs.max(1)),
            slide: Duration::from_secs(self.trending_slide_secs.max(1)),
            allowed_lateness: Duration::from_secs(self.trending_lateness_secs),
        }
    }
}
