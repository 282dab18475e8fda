//! The recommender's configuration: flags with `--help`, each also read from
//! an env var, parsed once into [`Config`]. Tests build the struct directly
//! (start from [`Config::default`]).

use std::time::Duration;

use crate::store::Backoff;
use crate::trending::TrendingConfig;

/// Kafka bootstrap servers of the local stack.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:19092";
/// Consumer group.
pub const DEFAULT_GROUP: &str = "recommender";
/// What the enricher produces.
pub const DEFAULT_SOURCE_TOPIC: &str = "reviews.enriched";
/// The recommender's own cache (local zone first), separate from the enricher's.
pub const DEFAULT_CACHE_URLS: &str = "memcached://127.0.0.1:11311,memcached://127.0.0.1:11312";
/// The recommender's cache namespace.
pub const DEFAULT_CACHE_NAMESPACE: &str = "recommender";
/// How long a claim holds an event: one batch's writes with their retries.
/// A `kill -9` leaves claims behind; a restart waits at most twice this for
/// them (then proceeds: the model is idempotent by version anyway).
pub const DEFAULT_IN_FLIGHT_TTL_MS: u64 = 10_000;
/// How long a done event is remembered: longer than any redelivery window.
pub const DEFAULT_DONE_TTL_SECS: u64 = 86_400;
/// Cassandra/ScyllaDB contact points of the local stack.
pub const DEFAULT_CQL_NODES: &str = "127.0.0.1:19042";
/// Keyspace of the recommender's tables.
pub const DEFAULT_KEYSPACE: &str = "recommender";
/// Replication of the keyspace: one replica locally; a
/// `NetworkTopologyStrategy` map in production.
pub const DEFAULT_REPLICATION: &str = "{'class': 'SimpleStrategy', 'replication_factor': 1}";
/// Events collected into one batch at most.
pub const DEFAULT_BATCH_SIZE: usize = 1_000;
/// Longest wait for more events once a batch has its first.
pub const DEFAULT_BATCH_LINGER_MS: u64 = 5;
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
/// One Cassandra request's client-side timeout.
pub const DEFAULT_CQL_TIMEOUT_MS: u64 = 5_000;
/// Trending window.
pub const DEFAULT_TRENDING_WINDOW_SECS: u64 = 3_600;
/// Trending slide (bucket width).
pub const DEFAULT_TRENDING_SLIDE_SECS: u64 = 300;
/// Trending allowed lateness (watermark = newest event − this).
pub const DEFAULT_TRENDING_LATENESS_SECS: u64 = 120;
/// Admin port (/healthz, /readyz, /metrics).
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9085";

/// Where the recommender's tables live.
#[derive(Debug, Clone, clap::Args)]
pub struct CqlConfig {
    /// Cassandra/ScyllaDB contact points, comma-separated `host:port`.
    #[arg(long, env = "CINEREC_CQL_NODES", default_value = DEFAULT_CQL_NODES, value_delimiter = ',')]
    pub cql_nodes: Vec<String>,
    /// Keyspace of the recommender's tables.
    #[arg(long, env = "RECOMMENDER_KEYSPACE", default_value = DEFAULT_KEYSPACE)]
    pub keyspace: String,
    /// Replication map the keyspace is created with (CQL literal).
    #[arg(long, env = "RECOMMENDER_REPLICATION", default_value = DEFAULT_REPLICATION)]
    pub replication: String,
    /// One request's client-side timeout (ms).
    #[arg(long, env = "RECOMMENDER_CQL_TIMEOUT_MS", default_value_t = DEFAULT_CQL_TIMEOUT_MS)]
    pub cql_timeout_ms: u64,
}

impl Default for CqlConfig {
    fn default() -> CqlConfig {
        CqlConfig {
            cql_nodes: vec![DEFAULT_CQL_NODES.into()],
            keyspace: DEFAULT_KEYSPACE.into(),
            replication: DEFAULT_REPLICATION.into(),
            cql_timeout_ms: DEFAULT_CQL_TIMEOUT_MS,
        }
    }
}

/// The recommender's settings (`recommender run`).
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Kafka bootstrap servers.
    #[arg(long, env = "RECOMMENDER_KAFKA_BROKERS", default_value = DEFAULT_BROKERS)]
    pub brokers: String,
    /// Consumer group id.
    #[arg(long, env = "RECOMMENDER_GROUP", default_value = DEFAULT_GROUP)]
    pub group: String,
    /// Topic of EnrichedReview events.
    #[arg(long, env = "RECOMMENDER_SOURCE_TOPIC", default_value = DEFAULT_SOURCE_TOPIC)]
    pub source_topic: String,
    /// Dead-letter topic; `<source topic>.dlq` when unset.
    #[arg(long, env = "RECOMMENDER_DLQ_TOPIC")]
    pub dlq_topic: Option<String>,
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
    /// Idempotency cache zones, local first (`memcached://h:p` or `redis://h:p`, comma-separated).
    #[arg(long, env = "RECOMMENDER_CACHE_URLS", default_value = DEFAULT_CACHE_URLS)]
    pub cache_urls: String,
    /// Key namespace in the cache.
    #[arg(long, env = "RECOMMENDER_CACHE_NAMESPACE", default_value = DEFAULT_CACHE_NAMESPACE)]
    pub cache_namespace: String,
    /// In-flight claim TTL (ms).
    #[arg(long, env = "RECOMMENDER_IN_FLIGHT_TTL_MS", default_value_t = DEFAULT_IN_FLIGHT_TTL_MS)]
    pub in_flight_ttl_ms: u64,
    /// Done marker TTL (s).
    #[arg(long, env = "RECOMMENDER_DONE_TTL_SECS", default_value_t = DEFAULT_DONE_TTL_SECS)]
    pub done_ttl_secs: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cql: CqlConfig,
    /// Events per batch at most.
    #[arg(long, env = "RECOMMENDER_BATCH_SIZE", default_value_t = DEFAULT_BATCH_SIZE,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub batch_size: usize,
    /// Wait for more events after a batch's first (ms).
    #[arg(long, env = "RECOMMENDER_BATCH_LINGER_MS", default_value_t = DEFAULT_BATCH_LINGER_MS)]
    pub batch_linger_ms: u64,
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
            brokers: DEFAULT_BROKERS.into(),
            group: DEFAULT_GROUP.into(),
            source_topic: DEFAULT_SOURCE_TOPIC.into(),
            dlq_topic: None,
            changelog_topic: None,
            instance: None,
            drain_timeout_ms: DEFAULT_DRAIN_TIMEOUT_MS,
            cache_urls: DEFAULT_CACHE_URLS.into(),
            cache_namespace: DEFAULT_CACHE_NAMESPACE.into(),
            in_flight_ttl_ms: DEFAULT_IN_FLIGHT_TTL_MS,
            done_ttl_secs: DEFAULT_DONE_TTL_SECS,
            cql: CqlConfig::default(),
            batch_size: DEFAULT_BATCH_SIZE,
            batch_linger_ms: DEFAULT_BATCH_LINGER_MS,
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
    /// The DLQ topic: configured, or `<source topic>.dlq`.
    pub fn dlq_topic(&self) -> String {
        self.dlq_topic
            .clone()
            .unwrap_or_else(|| format!("{}.dlq", self.source_topic))
    }

    /// The changelog topic: configured, or `<group>-review-states-changelog`
    /// (Kafka Streams' naming: one per application id).
    pub fn changelog_topic(&self) -> String {
        self.changelog_topic
            .clone()
            .unwrap_or_else(|| format!("{}-review-states-changelog", self.group))
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

    /// Refresh period.
    pub fn refresh_interval(&self) -> Duration {
        Duration::from_millis(self.refresh_interval_ms.max(10))
    }

    /// Backoff of failed writes.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: Duration::from_millis(self.retry_base_ms.max(1)),
            max: Duration::from_millis(self.retry_max_ms),
        }
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
