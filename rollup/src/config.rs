//! The sink's configuration: flags with `--help`, each also read from an env
//! var, parsed once into [`Config`]. Tests build the struct (start from
//! [`Config::default`]).

use std::time::Duration;

use cinerec_service_kit::db::{DEFAULT_DATABASE_URL, DEFAULT_POOL_SIZE, DbArgs};

/// Kafka bootstrap servers of the local stack.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:19092";
/// The sink's own consumer group (beside the recommender's, not inside it).
pub const DEFAULT_GROUP: &str = "dashboard-rollup";
/// What the enricher publishes.
pub const DEFAULT_TOPIC: &str = "reviews.enriched";
/// The PostgreSQL/CockroachDB schema of the rollups (Superset's datasets name it).
pub const DEFAULT_SCHEMA: &str = "dashboard";
/// Cassandra/Scylla contact points of the local stack.
pub const DEFAULT_CQL_NODES: &str = "127.0.0.1:19042";
/// The recommender's keyspace (same env var as the recommender's).
pub const DEFAULT_KEYSPACE: &str = "recommender";
/// How often the recommender's tables are snapshotted.
pub const DEFAULT_SNAPSHOT_INTERVAL_MS: u64 = 60_000;
/// Events per database transaction at most.
pub const DEFAULT_BATCH_SIZE: usize = 2_000;
/// Longest wait for more events once a batch has its first.
pub const DEFAULT_BATCH_LINGER_MS: u64 = 200;
/// How long applied event ids are remembered: longer than any redelivery
/// (a group rewind or an enricher replay within a week).
pub const DEFAULT_DEDUP_RETENTION_HOURS: u64 = 168;
/// How long snapshot history (trending over time) is kept.
pub const DEFAULT_HISTORY_RETENTION_HOURS: u64 = 720;
/// Admin port (/healthz, /readyz, /metrics).
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9086";

/// The sink's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Kafka bootstrap servers.
    #[arg(long, env = "ROLLUP_KAFKA_BROKERS", default_value = DEFAULT_BROKERS)]
    pub brokers: String,
    /// Consumer group id.
    #[arg(long, env = "ROLLUP_GROUP", default_value = DEFAULT_GROUP)]
    pub group: String,
    /// Topic of EnrichedReview events.
    #[arg(long, env = "ROLLUP_TOPIC", default_value = DEFAULT_TOPIC)]
    pub topic: String,
    /// The rollups' database.
    #[command(flatten)]
    pub db: DbArgs,
    /// Schema of the rollup tables (created with its tables on start).
    #[arg(long, env = "ROLLUP_SCHEMA", default_value = DEFAULT_SCHEMA)]
    pub schema: String,
    /// Cassandra/Scylla contact points (comma-separated host:port).
    #[arg(long, env = "ROLLUP_CQL_NODES", default_value = DEFAULT_CQL_NODES, value_delimiter = ',')]
    pub cql_nodes: Vec<String>,
    /// The recommender's keyspace.
    #[arg(long, env = "RECOMMENDER_KEYSPACE", default_value = DEFAULT_KEYSPACE)]
    pub keyspace: String,
    /// Snapshot interval of recommendations_by_user and trending_by_genre (ms).
    #[arg(long, env = "ROLLUP_SNAPSHOT_INTERVAL_MS", default_value_t = DEFAULT_SNAPSHOT_INTERVAL_MS,
          value_parser = clap::value_parser!(u64).range(100..))]
    pub snapshot_interval_ms: u64,
    /// Events per transaction at most.
    #[arg(long, env = "ROLLUP_BATCH_SIZE", default_value_t = DEFAULT_BATCH_SIZE,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub batch_size: usize,
    /// Wait for more events after a batch's first (ms).
    #[arg(long, env = "ROLLUP_BATCH_LINGER_MS", default_value_t = DEFAULT_BATCH_LINGER_MS)]
    pub batch_linger_ms: u64,
    /// Hours an applied event id is remembered for deduplication.
    #[arg(long, env = "ROLLUP_DEDUP_RETENTION_HOURS", default_value_t = DEFAULT_DEDUP_RETENTION_HOURS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub dedup_retention_hours: u64,
    /// Hours of snapshot history kept.
    #[arg(long, env = "ROLLUP_HISTORY_RETENTION_HOURS", default_value_t = DEFAULT_HISTORY_RETENTION_HOURS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub history_retention_hours: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            brokers: DEFAULT_BROKERS.to_owned(),
            group: DEFAULT_GROUP.to_owned(),
            topic: DEFAULT_TOPIC.to_owned(),
            db: DbArgs {
                database_url: DEFAULT_DATABASE_URL.to_owned(),
                db_pool_size: DEFAULT_POOL_SIZE,
            },
            schema: DEFAULT_SCHEMA.to_owned(),
            cql_nodes: vec![DEFAULT_CQL_NODES.to_owned()],
            keyspace: DEFAULT_KEYSPACE.to_owned(),
            snapshot_interval_ms: DEFAULT_SNAPSHOT_INTERVAL_MS,
            batch_size: DEFAULT_BATCH_SIZE,
            batch_linger_ms: DEFAULT_BATCH_LINGER_MS,
            dedup_retention_hours: DEFAULT_DEDUP_RETENTION_HOURS,
            history_retention_hours: DEFAULT_HISTORY_RETENTION_HOURS,
        }
    }
}

impl Config {
    /// [`Config::snapshot_interval_ms`] as a duration.
    pub fn snapshot_interval(&self) -> Duration {
        Duration::from_millis(self.snapshot_interval_ms)
    }

    /// [`Config::batch_linger_ms`] as a duration.
    pub fn batch_linger(&self) -> Duration {
        Duration::from_millis(self.batch_linger_ms)
    }
}
