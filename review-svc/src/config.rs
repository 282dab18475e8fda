//! Configuration shared by the subcommands, parsed once by clap from flags
//! and env vars (defaults are the `const`s here). Tests build these structs
//! directly instead of setting env vars.

use std::time::Duration;

use cinerec_service_kit::defaults::{self, DEFAULT_BROKERS, DEFAULT_CQL_NODES};
use scylla::statement::{Consistency, SerialConsistency};

/// Keyspace holding review-svc's tables.
pub const DEFAULT_KEYSPACE: &str = "review_svc";
/// Replication of the keyspace `migrate` creates: one replica locally; a
/// deployment passes `NetworkTopologyStrategy` with 3 per DC.
pub const DEFAULT_REPLICATION: &str = "{'class': 'SimpleStrategy', 'replication_factor': 1}";
/// The change topic (DESIGN.md §2).
pub const DEFAULT_CHANGES_TOPIC: &str = "reviews.changed";
/// Partitions `migrate` gives a topic it creates: enough for the enricher
/// to run a few consumers in parallel.
pub const DEFAULT_TOPIC_PARTITIONS: i32 = 6;
/// Public API address.
pub const DEFAULT_LISTEN: &str = defaults::DEFAULT_REVIEW_API_ADDR;
/// `ReviewService` over Avro RPC, socket transport (Java Netty framing).
pub const DEFAULT_RPC_ADDR: &str = defaults::DEFAULT_REVIEW_RPC_ADDR;
/// `ReviewService` over Avro RPC, HTTP transport.
pub const DEFAULT_RPC_HTTP_ADDR: &str = defaults::DEFAULT_REVIEW_RPC_HTTP_ADDR;
/// How often a relay shard looks for new changes after a look that found
/// none (a shard that found changes looks again at once). Each look is one
/// or two CQL reads per shard.
pub const DEFAULT_RELAY_POLL_MS: u64 = 50;
/// The longest pause between looks of a shard that keeps finding nothing:
/// each empty look doubles the pause from `DEFAULT_RELAY_POLL_MS` up to
/// this. An idle relay polling 8 shards every 50 ms kept a third of a core
/// of Cassandra busy on this box; a write committed by this process wakes
/// its shard at once whatever the pause, so only other replicas' writes to
/// an idle shard wait up to this long.
pub const DEFAULT_RELAY_IDLE_POLL_MS: u64 = 400;
/// How long after `changed_at` a change is assumed to have landed. Must
/// exceed [`crate::store::WRITE_TIMEOUT`] plus clock skew between writers and
/// the relay: the checkpoint only moves past rows this old.
pub const DEFAULT_RELAY_SETTLE_MS: u64 = 5_000;
/// How far behind now the fast path keeps re-reading, for rows that land
/// out of `changed_at` order (concurrent writers; a batch takes a few ms to
/// ~100 ms). Rows later than this wait for the sweep (settle delay).
pub const DEFAULT_RELAY_LOOKBACK_MS: u64 = 500;
/// How often the relay re-reads the not-yet-settled window for late rows and
/// moves its checkpoint.
pub const DEFAULT_RELAY_SWEEP_MS: u64 = 1_000;
/// How long a relay replica's shard lease lasts without renewal: a replica
/// killed without releasing its leases has its shards taken over by the
/// survivors this long (plus one tick) after its last renewal.
pub const DEFAULT_RELAY_LEASE_TTL_MS: u64 = 3_000;
/// How often a relay replica renews its leases, beats its membership row and
/// balances shards. Must be at most a third of the lease TTL.
pub const DEFAULT_RELAY_LEASE_TICK_MS: u64 = 500;
/// Issuer expected in (and minted into) tokens.
pub const DEFAULT_JWT_ISSUER: &str = "cinerec-dev";
/// Audience expected in (and minted into) tokens.
pub const DEFAULT_JWT_AUDIENCE: &str = "review-svc";
/// Movies that exist in the seeded catalogue (movie-svc's `seed` default).
pub const DEFAULT_CATALOG_MOVIES: u64 = 50_000;
/// Users that exist in the seeded catalogue (user-svc's `seed` default).
pub const DEFAULT_CATALOG_USERS: u64 = 1_000_000;
/// user-svc's Avro RPC socket address (its default `--rpc-addr`).
pub const DEFAULT_USER_SVC_ADDR: &str = defaults::DEFAULT_USER_RPC_ADDR;
/// movie-svc's Avro RPC socket address (its default `--rpc-addr`).
pub const DEFAULT_MOVIE_SVC_ADDR: &str = defaults::DEFAULT_MOVIE_RPC_ADDR;
/// Deadline of one existence check over Avro RPC, retries included: a
/// dependency that has not answered by then makes the request a 503.
pub const DEFAULT_DIRECTORY_DEADLINE_MS: u64 = 1_000;

/// CQL consistency, as a flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsistencyArg {
    /// ONE
    One,
    /// QUORUM
    Quorum,
    /// LOCAL_QUORUM (default: survives a replica down, no cross-DC wait)
    LocalQuorum,
    /// EACH_QUORUM
    EachQuorum,
    /// ALL
    All,
}

impl From<ConsistencyArg> for Consistency {
    fn from(c: ConsistencyArg) -> Consistency {
        match c {
            ConsistencyArg::One => Consistency::One,
            ConsistencyArg::Quorum => Consistency::Quorum,
            ConsistencyArg::LocalQuorum => Consistency::LocalQuorum,
            ConsistencyArg::EachQuorum => Consistency::EachQuorum,
            ConsistencyArg::All => Consistency::All,
        }
    }
}

/// Serial consistency of the version-counter LWTs, as a flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SerialArg {
    /// SERIAL (Paxos across all DCs)
    Serial,
    /// LOCAL_SERIAL (default: Paxos within the local DC)
    LocalSerial,
}

impl From<SerialArg> for SerialConsistency {
    fn from(c: SerialArg) -> SerialConsistency {
        match c {
            SerialArg::Serial => SerialConsistency::Serial,
            SerialArg::LocalSerial => SerialConsistency::LocalSerial,
        }
    }
}

/// Where and how reviews are stored.
#[derive(Debug, Clone, clap::Args)]
pub struct CqlArgs {
    /// Cassandra/ScyllaDB contact points, comma-separated `host:port`.
    #[arg(long, env = "CINEREC_CQL_NODES", default_value = DEFAULT_CQL_NODES, value_delimiter = ',')]
    pub cql_nodes: Vec<String>,
    /// Keyspace of review-svc's tables.
    #[arg(long, env = "REVIEW_SVC_KEYSPACE", default_value = DEFAULT_KEYSPACE)]
    pub keyspace: String,
    /// Replication map `migrate` creates the keyspace with (CQL literal).
    #[arg(long, env = "REVIEW_SVC_REPLICATION", default_value = DEFAULT_REPLICATION)]
    pub replication: String,
    /// Consistency of reads and writes.
    #[arg(
        long,
        env = "REVIEW_SVC_CQL_CONSISTENCY",
        value_enum,
        default_value = "local-quorum"
    )]
    pub consistency: ConsistencyArg,
    /// Serial consistency of the version-counter LWTs.
    #[arg(
        long,
        env = "REVIEW_SVC_CQL_SERIAL_CONSISTENCY",
        value_enum,
        default_value = "local-serial"
    )]
    pub serial_consistency: SerialArg,
}

impl CqlArgs {
    /// Local-stack defaults for `keyspace` (tests).
    pub fn local(nodes: Vec<String>, keyspace: &str) -> CqlArgs {
        CqlArgs {
            cql_nodes: nodes,
            keyspace: keyspace.to_owned(),
            replication: DEFAULT_REPLICATION.to_owned(),
            consistency: ConsistencyArg::LocalQuorum,
            serial_consistency: SerialArg::LocalSerial,
        }
    }
}

/// Where changes are published.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "CINEREC_KAFKA_BROKERS", default_value = DEFAULT_BROKERS)]
    pub kafka_brokers: String,
    /// Topic of change events.
    #[arg(long, env = "REVIEW_SVC_CHANGES_TOPIC", default_value = DEFAULT_CHANGES_TOPIC)]
    pub changes_topic: String,
    /// Partitions of the change topic when `migrate` creates it.
    #[arg(long, env = "REVIEW_SVC_TOPIC_PARTITIONS", default_value_t = DEFAULT_TOPIC_PARTITIONS)]
    pub topic_partitions: i32,
}

/// Relay pacing.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    /// Idle poll interval of each change-log shard, in ms.
    #[arg(long, env = "REVIEW_SVC_RELAY_POLL_MS", default_value_t = DEFAULT_RELAY_POLL_MS)]
    pub relay_poll_ms: u64,
    /// Longest pause (ms) of a shard whose looks keep finding nothing (the
    /// pause doubles per empty look from `--relay-poll-ms`).
    #[arg(long, env = "REVIEW_SVC_RELAY_IDLE_POLL_MS", default_value_t = DEFAULT_RELAY_IDLE_POLL_MS)]
    pub relay_idle_poll_ms: u64,
    /// Age (ms) after which a change is assumed landed; the checkpoint never
    /// passes younger rows. Must exceed the write timeout plus clock skew.
    #[arg(long, env = "REVIEW_SVC_RELAY_SETTLE_MS", default_value_t = DEFAULT_RELAY_SETTLE_MS)]
    pub relay_settle_ms: u64,
    /// Interval (ms) of the sweep that catches late rows and checkpoints.
    #[arg(long, env = "REVIEW_SVC_RELAY_SWEEP_MS", default_value_t = DEFAULT_RELAY_SWEEP_MS)]
    pub relay_sweep_ms: u64,
    /// How far (ms) behind now the fast path keeps re-reading for rows that
    /// land out of order.
    #[arg(long, env = "REVIEW_SVC_RELAY_LOOKBACK_MS", default_value_t = DEFAULT_RELAY_LOOKBACK_MS)]
    pub relay_lookback_ms: u64,
    /// Shard lease TTL (ms): how long after its last renewal a dead
    /// replica's shards are taken over.
    #[arg(long, env = "REVIEW_SVC_RELAY_LEASE_TTL_MS", default_value_t = DEFAULT_RELAY_LEASE_TTL_MS)]
    pub relay_lease_ttl_ms: u64,
    /// Interval (ms) of lease renewal, membership heartbeat and balancing
    /// (at most a third of the TTL).
    #[arg(long, env = "REVIEW_SVC_RELAY_LEASE_TICK_MS", default_value_t = DEFAULT_RELAY_LEASE_TICK_MS)]
    pub relay_lease_tick_ms: u64,
    /// This replica's member id in the lease table (default: a random one
    /// per process start).
    #[arg(long, env = "REVIEW_SVC_RELAY_MEMBER_ID")]
    pub relay_member_id: Option<uuid::Uuid>,
}

impl Default for RelayArgs {
    fn default() -> RelayArgs {
        RelayArgs {
            relay_poll_ms: DEFAULT_RELAY_POLL_MS,
            relay_idle_poll_ms: DEFAULT_RELAY_IDLE_POLL_MS,
            relay_settle_ms: DEFAULT_RELAY_SETTLE_MS,
            relay_sweep_ms: DEFAULT_RELAY_SWEEP_MS,
            relay_lookback_ms: DEFAULT_RELAY_LOOKBACK_MS,
            relay_lease_ttl_ms: DEFAULT_RELAY_LEASE_TTL_MS,
            relay_lease_tick_ms: DEFAULT_RELAY_LEASE_TICK_MS,
            relay_member_id: None,
        }
    }
}

impl RelayArgs {
    /// Pause after a look that found nothing.
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.relay_poll_ms.max(1))
    }
    /// The pause after `empty` looks in a row that found nothing: doubling
    /// from [`RelayArgs::poll`], at most `--relay-idle-poll-ms` (never below
    /// the poll interval).
    pub fn idle_pause(&self, empty: u32) -> Duration {
        let max = Duration::from_millis(self.relay_idle_poll_ms).max(self.poll());
        self.poll()
            .saturating_mul(1 << empty.saturating_sub(1).min(16))
            .min(max)
    }
    /// Settle window.
    pub fn settle(&self) -> Duration {
        Duration::from_millis(self.relay_settle_ms)
    }
    /// Fast-path look-back window.
    pub fn lookback(&self) -> Duration {
        Duration::from_millis(self.relay_lookback_ms)
    }
    /// Sweep interval.
    pub fn sweep(&self) -> Duration {
        Duration::from_millis(self.relay_sweep_ms.max(1))
    }
    /// Shard lease TTL.
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.relay_lease_ttl_ms.max(3))
    }
    /// Lease renewal / balancing interval.
    pub fn lease_tick(&self) -> Duration {
        Duration::from_millis(self.relay_lease_tick_ms.max(1))
    }
    /// `Err` unless the tick leaves room for two missed renewals within the
    /// TTL (the holder stops one tick before its lease is past due).
    pub fn check_lease(&self) -> Result<(), String> {
        if self.lease_tick() * 3 > self.lease_ttl() {
            return Err(format!(
                "--relay-lease-tick-ms ({:?}) must be at most a third of --relay-lease-ttl-ms ({:?})",
                self.lease_tick(),
                self.lease_ttl()
            ));
        }
        Ok(())
    }
}

/// Token verification (and, for `mint-token`, signing) keys. Secrets come
/// from env vars / mounted Secrets; nothing here has a production default.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuthArgs {
    /// Expected `iss` claim.
    #[arg(long, env = "REVIEW_SVC_JWT_ISSUER", default_value = DEFAULT_JWT_ISSUER)]
    pub jwt_issuer: String,
    /// Expected `aud` claim.
    #[arg(long, env = "REVIEW_SVC_JWT_AUDIENCE", default_value = DEFAULT_JWT_AUDIENCE)]
    pub jwt_audience: String,
    /// Shared secret accepting HS256 tokens (unset: HS256 rejected).
    #[arg(long, env = "REVIEW_SVC_JWT_HS256_SECRET", hide_env_values = true)]
    pub jwt_hs256_secret: Option<String>,
    /// PEM file of the RSA public key accepting RS256 tokens (unset: RS256 rejected).
    #[arg(long, env = "REVIEW_SVC_JWT_RS256_PUBLIC_KEY")]
    pub jwt_rs256_public_key: Option<std::path::PathBuf>,
}

/// Which user/movie directory answers "does it exist".
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DirectoryKind {
    /// Ask user-svc and movie-svc over Avro RPC (the design; default).
    Rpc,
    /// The seeded synthetic catalogue (ids 1..=N exist), without asking
    /// anyone: local runs without the metadata services, the benchmark.
    Catalog,
}

/// The user/movie directory.
#[derive(Debug, Clone, clap::Args)]
pub struct DirectoryArgs {
    /// Directory implementation.
    #[arg(long, env = "REVIEW_SVC_DIRECTORY", value_enum, default_value = "rpc")]
    pub directory: DirectoryKind,
    /// user-svc's Avro RPC socket address (`--directory rpc`).
    #[arg(long, env = "REVIEW_SVC_USER_SVC_ADDR", default_value = DEFAULT_USER_SVC_ADDR, value_parser = host_port)]
    pub user_svc_addr: String,
    /// movie-svc's Avro RPC socket address (`--directory rpc`).
    #[arg(long, env = "REVIEW_SVC_MOVIE_SVC_ADDR", default_value = DEFAULT_MOVIE_SVC_ADDR, value_parser = host_port)]
    pub movie_svc_addr: String,
    /// Deadline (ms) of one existence check over Avro RPC, retries included.
    #[arg(long, env = "REVIEW_SVC_DIRECTORY_DEADLINE_MS", default_value_t = DEFAULT_DIRECTORY_DEADLINE_MS)]
    pub directory_deadline_ms: u64,
    /// Movies in the seeded catalogue (`--directory catalog`).
    #[arg(long, env = "CINEREC_CATALOG_MOVIES", default_value_t = DEFAULT_CATALOG_MOVIES)]
    pub catalog_movies: u64,
    /// Users in the seeded catalogue (`--directory catalog`).
    #[arg(long, env = "CINEREC_CATALOG_USERS", default_value_t = DEFAULT_CATALOG_USERS)]
    pub catalog_users: u64,
}

impl DirectoryArgs {
    /// The deadline of one existence check.
    pub fn directory_deadline(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.directory_deadline_ms.max(1))
    }
}

/// A `host:port` address: an IP or a DNS name (a Kubernetes Service name),
/// resolved at each connect so a moved Service is followed.
fn host_port(s: &str) -> Result<String, String> {
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(s.to_owned()),
        _ => Err(format!("{s:?} is not host:port")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idle_pause_doubles_from_the_poll_interval_up_to_its_ceiling() {
        let args = RelayArgs {
            relay_poll_ms: 50,
            relay_idle_poll_ms: 400,
            ..RelayArgs::default()
        };
        let pauses: Vec<u128> = (1..=6).map(|n| args.idle_pause(n).as_millis()).collect();
        assert_eq!(pauses, [50, 100, 200, 400, 400, 400]);
        assert_eq!(args.idle_pause(u32::MAX), Duration::from_millis(400));
        let flat = RelayArgs {
            relay_poll_ms: 50,
            relay_idle_poll_ms: 10,
            ..RelayArgs::default()
        };
        assert_eq!(
            flat.idle_pause(5),
            Duration::from_millis(50),
            "never below the poll"
        );
    }
}
