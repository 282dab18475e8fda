//! The flags every at-least-once consumer shares — Kafka ([`KafkaArgs`]) and
//! the idempotency cache ([`CacheArgs`]) — flattened by each consumer into
//! its own `clap` parser, parsed once into typed structs.
//!
//! The flag names are the same for every consumer (`--brokers`, `--group`,
//! `--source-topic`, `--cache-urls`, ...); what differs per consumer is the
//! defaults (its group, topic, namespace, TTLs) and the env var prefix
//! (`ENRICHER_GROUP`, `RECOMMENDER_GROUP`, ...). Each consumer writes those
//! once as a `const` [`Defaults`]; [`parse`] (or [`with_defaults`] on a
//! `clap::Command`) installs them at parse time, so `--help` shows the
//! consumer's own defaults and env vars. Tests build the structs from the
//! same `const` ([`Defaults::kafka`], [`Defaults::cache`]) and never `set_var`.

use std::time::Duration;

use cinerec_service_kit::defaults::{DEFAULT_BROKERS, DEFAULT_CQL_NODES};
use cinerec_service_kit::kafka::dlq;
use clap::{Arg, Command};

/// Events collected into one batch at most.
pub const DEFAULT_BATCH_SIZE: usize = 500;
/// Longest wait for more events once a batch has its first.
pub const DEFAULT_BATCH_LINGER_MS: u64 = 5;

/// The Kafka side of a consumer.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = DEFAULT_BROKERS)]
    pub brokers: String,
    /// Consumer group id.
    #[arg(long)]
    pub group: String,
    /// The topic consumed.
    #[arg(long, visible_alias = "topic")]
    pub source_topic: String,
    /// Dead-letter topic; `<source topic>.dlq` when unset.
    #[arg(long)]
    pub dlq_topic: Option<String>,
    /// Events per batch at most.
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub batch_size: usize,
    /// Wait for more events after a batch's first (ms).
    #[arg(long, default_value_t = DEFAULT_BATCH_LINGER_MS)]
    pub batch_linger_ms: u64,
}

impl KafkaArgs {
    /// The DLQ topic: configured, or `<source topic>.dlq`.
    pub fn dlq_topic(&self) -> String {
        self.dlq_topic
            .clone()
            .unwrap_or_else(|| dlq::topic_for(&self.source_topic))
    }

    /// [`KafkaArgs::batch_linger_ms`] as a duration.
    pub fn batch_linger(&self) -> Duration {
        Duration::from_millis(self.batch_linger_ms)
    }
}

/// The consumer's own idempotency cache (DESIGN.md §4): its zones, its
/// namespace, its TTLs.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct CacheArgs {
    /// Idempotency cache zones, local first (`memcached://h:p` or `redis://h:p`, comma-separated).
    #[arg(long)]
    pub cache_urls: String,
    /// Key namespace in the cache (one per consumer: claims never collide).
    #[arg(long)]
    pub cache_namespace: String,
    /// In-flight claim TTL (ms): covers one batch with all its retries.
    #[arg(long)]
    pub in_flight_ttl_ms: u64,
    /// Done marker TTL (s): longer than any redelivery window.
    #[arg(long)]
    pub done_ttl_secs: u64,
}

impl CacheArgs {
    /// TTL of a claim.
    pub fn in_flight_ttl(&self) -> Duration {
        Duration::from_millis(self.in_flight_ttl_ms)
    }

    /// TTL of a done marker.
    pub fn done_ttl(&self) -> Duration {
        Duration::from_secs(self.done_ttl_secs)
    }
}

/// The recommender's keyspace: where it writes its serving tables and
/// rollup reads them.
pub const DEFAULT_SERVING_KEYSPACE: &str = "recommender";
/// One CQL request's client-side timeout (ms).
pub const DEFAULT_CQL_TIMEOUT_MS: u64 = 5_000;

/// The shared CQL flags of the consumers that touch the recommender's
/// serving tables: the recommender (writes them) and rollup (snapshots them).
/// One env var each, the same in every process (`CINEREC_CQL_NODES`,
/// `RECOMMENDER_KEYSPACE`, `CINEREC_CQL_TIMEOUT_MS`).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct CqlArgs {
    /// Cassandra/ScyllaDB contact points, comma-separated `host:port`.
    #[arg(long, env = "CINEREC_CQL_NODES", default_value = DEFAULT_CQL_NODES, value_delimiter = ',')]
    pub cql_nodes: Vec<String>,
    /// Keyspace of the recommender's serving tables.
    #[arg(long, env = "RECOMMENDER_KEYSPACE", default_value = DEFAULT_SERVING_KEYSPACE)]
    pub keyspace: String,
    /// One request's client-side timeout (ms).
    #[arg(long, env = "CINEREC_CQL_TIMEOUT_MS", default_value_t = DEFAULT_CQL_TIMEOUT_MS)]
    pub cql_timeout_ms: u64,
}

impl Default for CqlArgs {
    fn default() -> CqlArgs {
        CqlArgs {
            cql_nodes: vec![DEFAULT_CQL_NODES.to_owned()],
            keyspace: DEFAULT_SERVING_KEYSPACE.to_owned(),
            cql_timeout_ms: DEFAULT_CQL_TIMEOUT_MS,
        }
    }
}

/// One consumer's defaults of the shared flags: a `const` in its crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// Env var prefix: `ENRICHER` reads `ENRICHER_KAFKA_BROKERS`,
    /// `ENRICHER_GROUP`, `ENRICHER_SOURCE_TOPIC`, `ENRICHER_DLQ_TOPIC`,
    /// `ENRICHER_BATCH_SIZE`, `ENRICHER_BATCH_LINGER_MS`,
    /// `ENRICHER_CACHE_URLS`, `ENRICHER_CACHE_NAMESPACE`,
    /// `ENRICHER_IN_FLIGHT_TTL_MS`, `ENRICHER_DONE_TTL_SECS`.
    pub env_prefix: &'static str,
    /// Consumer group.
    pub group: &'static str,
    /// Source topic.
    pub source_topic: &'static str,
    /// DLQ topic (`None`: `<source topic>.dlq`).
    pub dlq_topic: Option<&'static str>,
    /// Events per batch at most.
    pub batch_size: usize,
    /// Batch linger (ms).
    pub batch_linger_ms: u64,
    /// The cache's defaults; `None` for a consumer without a cache (it
    /// dedups in its own store and does not flatten [`CacheArgs`]).
    pub cache: Option<CacheDefaults>,
}

/// The defaults of [`CacheArgs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheDefaults {
    /// Zones, local first.
    pub urls: &'static str,
    /// Key namespace.
    pub namespace: &'static str,
    /// In-flight TTL (ms).
    pub in_flight_ttl_ms: u64,
    /// Done TTL (s).
    pub done_ttl_secs: u64,
}

impl Defaults {
    /// [`KafkaArgs`] with these defaults, as parsing no flag and no env var
    /// gives (`brokers` is the local stack's).
    pub fn kafka(&self) -> KafkaArgs {
        KafkaArgs {
            brokers: DEFAULT_BROKERS.to_owned(),
            group: self.group.to_owned(),
            source_topic: self.source_topic.to_owned(),
            dlq_topic: self.dlq_topic.map(str::to_owned),
            batch_size: self.batch_size,
            batch_linger_ms: self.batch_linger_ms,
        }
    }

    /// [`CacheArgs`] with these defaults (`None` without [`Defaults::cache`]).
    pub fn cache(&self) -> Option<CacheArgs> {
        self.cache.as_ref().map(CacheDefaults::args)
    }
}

impl CacheDefaults {
    /// [`CacheArgs`] with these defaults, as parsing no flag and no env var gives.
    pub fn args(&self) -> CacheArgs {
        CacheArgs {
            cache_urls: self.urls.to_owned(),
            cache_namespace: self.namespace.to_owned(),
            in_flight_ttl_ms: self.in_flight_ttl_ms,
            done_ttl_secs: self.done_ttl_secs,
        }
    }
}

/// Parses the process's arguments into `P` (which flattens [`KafkaArgs`]
/// and, when `defaults.cache` is set, [`CacheArgs`]) with `defaults`
/// installed; exits with clap's message on bad input, as `P::parse()` does.
pub fn parse<P: clap::Parser>(defaults: &Defaults) -> P {
    let matches = with_defaults(P::command(), defaults).get_matches();
    P::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// [`parse`] over `args` (the first is the binary's name), for tests.
pub fn try_parse_from<P: clap::Parser>(
    defaults: &Defaults,
    args: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
) -> Result<P, clap::Error> {
    let matches = with_defaults(P::command(), defaults).try_get_matches_from(args)?;
    P::from_arg_matches(&matches)
}

/// Installs `defaults` (default values and env var names) on the shared
/// flags of `command`. Panics if `command` lacks one of them: a programming
/// error the consumer's config test catches.
pub fn with_defaults(command: Command, defaults: &Defaults) -> Command {
    let env = |suffix: &str| leak(format!("{}_{suffix}", defaults.env_prefix));
    let set = |command: Command, id: &'static str, suffix: &str, default: Option<String>| {
        let env = env(suffix);
        command.mut_arg(id, move |arg: Arg| {
            let arg = arg.env(env);
            match default {
                Some(d) => arg.required(false).default_value(leak(d)),
                None => arg,
            }
        })
    };
    let mut command = set(command, "brokers", "KAFKA_BROKERS", None);
    command = set(command, "group", "GROUP", Some(defaults.group.to_owned()));
    command = set(
        command,
        "source_topic",
        "SOURCE_TOPIC",
        Some(defaults.source_topic.to_owned()),
    );
    command = set(
        command,
        "dlq_topic",
        "DLQ_TOPIC",
        defaults.dlq_topic.map(str::to_owned),
    );
    command = set(
        command,
        "batch_size",
        "BATCH_SIZE",
        Some(defaults.batch_size.to_string()),
    );
    command = set(
        command,
        "batch_linger_ms",
        "BATCH_LINGER_MS",
        Some(defaults.batch_linger_ms.to_string()),
    );
    if let Some(c) = defaults.cache {
        command = set(command, "cache_urls", "CACHE_URLS", Some(c.urls.to_owned()));
        command = set(
            command,
            "cache_namespace",
            "CACHE_NAMESPACE",
            Some(c.namespace.to_owned()),
        );
        command = set(
            command,
            "in_flight_ttl_ms",
            "IN_FLIGHT_TTL_MS",
            Some(c.in_flight_ttl_ms.to_string()),
        );
        command = set(
            command,
            "done_ttl_secs",
            "DONE_TTL_SECS",
            Some(c.done_ttl_secs.to_string()),
        );
    }
    command
}

/// clap keeps `&'static str`s; these few strings are built once per process,
/// at parse time, so leaking them costs a few hundred bytes once.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[cfg(test)]
mod tests;
