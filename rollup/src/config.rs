//! The sink's configuration: flags with `--help`, each also read from an env
//! var, parsed once into [`Config`] with [`cinerec_stream::config::parse`]
//! (which installs the sink's [`STREAM`] defaults on the runtime's shared
//! Kafka flags). Tests build the struct (start from [`Config::default`]).

use std::time::Duration;

use cinerec_service_kit::db::{DEFAULT_DATABASE_URL, DEFAULT_POOL_SIZE, DbArgs};
use cinerec_stream::{CqlArgs, Defaults, KafkaArgs};

/// The sink's defaults of the runtime's shared Kafka flags (env vars
/// `ROLLUP_KAFKA_BROKERS`, `ROLLUP_GROUP`, `ROLLUP_SOURCE_TOPIC`, ...). No
/// cache: the sink dedups in its ledger, in the batch's own transaction.
pub const STREAM: Defaults = Defaults {
    env_prefix: "ROLLUP",
    // Its own group, beside the recommender's, not inside it.
    group: "dashboard-rollup",
    // What the enricher publishes.
    source_topic: "reviews.enriched",
    // Its own DLQ: `reviews.enriched.dlq` is the recommender's, and a poison
    // record both consumers reject must not land there twice.
    dlq_topic: Some("reviews.enriched.rollup.dlq"),
    // Events per database transaction at most.
    batch_size: 2_000,
    // Longest wait for more events once a batch has its first.
    batch_linger_ms: 200,
    cache: None,
};
/// The PostgreSQL/CockroachDB schema of the rollups (Superset's datasets name it).
pub const DEFAULT_SCHEMA: &str = "dashboard";
/// How often the recommender's tables are snapshotted.
pub const DEFAULT_SNAPSHOT_INTERVAL_MS: u64 = 60_000;
/// How long applied event ids are remembered: longer than any redelivery
/// (a group rewind or an enricher replay within a week).
pub const DEFAULT_DEDUP_RETENTION_HOURS: u64 = 168;
/// How long snapshot history (trending over time) is kept.
pub const DEFAULT_HISTORY_RETENTION_HOURS: u64 = 720;

/// The sink's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Brokers, group, topic (`--source-topic`, alias `--topic`), DLQ,
    /// batching (the runtime's shared flags).
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The rollups' database.
    #[command(flatten)]
    pub db: DbArgs,
    /// Schema of the rollup tables (created with its tables on start).
    #[arg(long, env = "ROLLUP_SCHEMA", default_value = DEFAULT_SCHEMA)]
    pub schema: String,
    /// Where the recommender's serving tables are (the runtime's shared CQL
    /// flags, as the recommender reads them).
    #[command(flatten)]
    pub cql: CqlArgs,
    /// Snapshot interval of recommendations_by_user and trending_by_genre (ms).
    #[arg(long, env = "ROLLUP_SNAPSHOT_INTERVAL_MS", default_value_t = DEFAULT_SNAPSHOT_INTERVAL_MS,
          value_parser = clap::value_parser!(u64).range(100..))]
    pub snapshot_interval_ms: u64,
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
            kafka: STREAM.kafka(),
            db: DbArgs {
                database_url: DEFAULT_DATABASE_URL.to_owned(),
                db_pool_size: DEFAULT_POOL_SIZE,
            },
            schema: DEFAULT_SCHEMA.to_owned(),
            cql: CqlArgs::default(),
            snapshot_interval_ms: DEFAULT_SNAPSHOT_INTERVAL_MS,
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
            cinerec_stream::config::try_parse_from(&STREAM, ["rollup"]).expect("defaults parse");
        assert_eq!(args.config.kafka, Config::default().kafka);
        assert_eq!(args.config.kafka.dlq_topic(), "reviews.enriched.rollup.dlq");
    }

    #[test]
    fn the_old_topic_flag_still_works() {
        let args: Args =
            cinerec_stream::config::try_parse_from(&STREAM, ["rollup", "--topic", "t"])
                .expect("--topic parses");
        assert_eq!(args.config.kafka.source_topic, "t");
    }
}
