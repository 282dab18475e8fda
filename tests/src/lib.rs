//! Support for the integration tests over the real local stack.
//!
//! The servers are the ones `dev/stack up` starts (ports in `dev/ports.env`).
//! Each address can be overridden with the environment variable that
//! `dev/stack env` prints, so the same tests run against another stack.
//! Every test names its own topic, keyspace, database schema or key prefix with
//! [`unique_name`] so the tests of one run never see each other's data and can
//! run in parallel.
//!
//! When a server is unreachable the tests fail with a message naming the
//! address and `dev/stack up`; they never skip.

use std::time::Duration;

pub mod pipeline;

use cinerec_service_kit::defaults::{
    DEFAULT_BROKERS, DEFAULT_CQL_NODES, DEFAULT_DATABASE_URL, DEFAULT_MEMCACHED_URL,
    DEFAULT_MEMCACHED2_URL, DEFAULT_REDIS_URL, DEFAULT_REDIS2_URL,
};

/// How long a test waits for a condition it polls for (a message to arrive, a
/// key to expire) before it fails. Generous: CI shares two cores with two JVMs.
pub const POLL_DEADLINE: Duration = Duration::from_secs(60);

/// Where the stack's servers are, read once from the environment.
#[derive(Debug, Clone)]
pub struct Stack {
    /// Kafka bootstrap servers (`host:port,...`).
    pub kafka_brokers: String,
    /// Cassandra/Scylla contact points (`host:port,...`).
    pub cql_nodes: Vec<String>,
    /// PostgreSQL/CockroachDB connection URL.
    pub database_url: String,
    /// Redis zone a and zone b.
    pub redis_urls: [String; 2],
    /// memcached zone a and zone b.
    pub memcached_urls: [String; 2],
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

impl Stack {
    /// Reads `CINEREC_*` variables, falling back to `dev/stack`'s fixed ports.
    pub fn from_env() -> Self {
        Stack {
            kafka_brokers: env_or("CINEREC_KAFKA_BROKERS", DEFAULT_BROKERS),
            cql_nodes: env_or("CINEREC_CQL_NODES", DEFAULT_CQL_NODES)
                .split(',')
                .map(str::to_owned)
                .collect(),
            database_url: env_or("CINEREC_DATABASE_URL", DEFAULT_DATABASE_URL),
            redis_urls: [
                env_or("CINEREC_REDIS_URL", DEFAULT_REDIS_URL),
                env_or("CINEREC_REDIS2_URL", DEFAULT_REDIS2_URL),
            ],
            memcached_urls: [
                env_or("CINEREC_MEMCACHED_URL", DEFAULT_MEMCACHED_URL),
                env_or("CINEREC_MEMCACHED2_URL", DEFAULT_MEMCACHED2_URL),
            ],
        }
    }
}

/// A name no other test (in this run or an earlier one) uses: `prefix_` plus
/// 12 random lowercase hex digits. Valid as a Kafka topic, a CQL keyspace, a SQL
/// schema and a cache key prefix alike.
pub fn unique_name(prefix: &str) -> String {
    let n: u64 = rand::random();
    format!("{prefix}_{:012x}", n & 0xffff_ffff_ffff)
}

/// The error a test reports when a server does not answer: says which one, and how
/// to start it.
pub fn unreachable(what: &str, address: &str, err: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} at {address} is unreachable ({err}); start the local stack with `dev/stack up`"
    )
}
