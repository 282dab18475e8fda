//! The user-svc binary: `serve` (Avro RPC over socket and HTTP, admin port),
//! `migrate`, `seed`.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use std::sync::Arc;

use avro_rpc::server::Responder;
use cinerec_service_kit::db::DbArgs;
use cinerec_service_kit::metadata::{MetadataBinary, MetadataCommand, metadata_main};
use cinerec_service_kit::rpc::{RpcAddrs, RpcMetricsLayer};
use cinerec_service_kit::{CommonArgs, defaults};
use clap::{Parser, Subcommand};
use sqlx::PgPool;
use user_svc::service::{DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL, users};
use user_svc::store::UserStore;

/// mimalloc instead of glibc malloc: allocation was about a quarter of
/// movie-svc's warm-path CPU (service-kit's README, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Avro RPC socket transport (Java Netty framing).
const DEFAULT_RPC_ADDR: &str = defaults::DEFAULT_USER_RPC_ADDR;
/// Avro RPC over HTTP.
const DEFAULT_RPC_HTTP_ADDR: &str = defaults::DEFAULT_USER_RPC_HTTP_ADDR;
/// /healthz, /readyz, /metrics.
const DEFAULT_ADMIN_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9201));

/// User profile service: UserService over Avro RPC, backed by CockroachDB.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Config {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    db: DbArgs,
    /// Schema holding user-svc's tables.
    #[arg(long, env = "USER_SVC_DB_SCHEMA", default_value = user_svc::DEFAULT_SCHEMA)]
    db_schema: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate, then serve UserService until SIGTERM/Ctrl-C.
    Serve {
        /// Avro RPC socket transport address.
        #[arg(long, env = "USER_SVC_RPC_ADDR", default_value = DEFAULT_RPC_ADDR)]
        rpc_addr: SocketAddr,
        /// Avro RPC HTTP transport address.
        #[arg(long, env = "USER_SVC_RPC_HTTP_ADDR", default_value = DEFAULT_RPC_HTTP_ADDR)]
        rpc_http_addr: SocketAddr,
        /// Users the read-through cache holds.
        #[arg(long, env = "USER_SVC_CACHE_CAPACITY", default_value_t = DEFAULT_CACHE_CAPACITY)]
        cache_capacity: u64,
        /// Seconds a cached user may be served (staleness bound across instances).
        #[arg(long, env = "USER_SVC_CACHE_TTL_SECS", default_value_t = DEFAULT_CACHE_TTL.as_secs())]
        cache_ttl_secs: u64,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Migrate, then load the seeded synthetic user base (idempotent).
    Seed {
        /// Number of users.
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
        users: u64,
        /// Seed of the synthetic world (use the same one for user-svc and loadgen).
        #[arg(long, env = "CINEREC_SEED", default_value_t = 1)]
        seed: u64,
    },
}

/// How user-svc migrates, seeds and serves, for service-kit's shared `main`.
struct UserSvc;

impl MetadataBinary for UserSvc {
    const SERVICE: &'static str = "user-svc";
    const RECORDS: &'static str = "users";
    type Store = UserStore;
    type Handler = user_svc::rpc::Handler;

    fn store(pool: PgPool) -> UserStore {
        UserStore::new(pool)
    }

    async fn migrate(store: &UserStore) -> anyhow::Result<()> {
        Ok(store.migrate().await?)
    }

    async fn seed(store: &UserStore, seed: u64, count: u64) -> anyhow::Result<u64> {
        // The other dimension of the world does not shape these rows.
        let world = cinerec_catalog::Catalog::new(seed, 1, count);
        Ok(user_svc::seed::seed(store, &world, 10_000).await?)
    }

    async fn count(store: &UserStore) -> anyhow::Result<i64> {
        Ok(store.count().await?)
    }

    fn responder(
        store: UserStore,
        cache_capacity: u64,
        cache_ttl: Duration,
    ) -> anyhow::Result<(Arc<Responder<Self::Handler>>, RpcMetricsLayer)> {
        user_svc::rpc::responder(users(store, cache_capacity, cache_ttl))
    }
}

impl From<Command> for MetadataCommand {
    fn from(command: Command) -> MetadataCommand {
        match command {
            Command::Serve {
                rpc_addr,
                rpc_http_addr,
                cache_capacity,
                cache_ttl_secs,
            } => MetadataCommand::Serve {
                addrs: RpcAddrs {
                    socket: rpc_addr,
                    http: rpc_http_addr,
                },
                cache_capacity,
                cache_ttl: Duration::from_secs(cache_ttl_secs),
            },
            Command::Migrate => MetadataCommand::Migrate,
            Command::Seed { users, seed } => MetadataCommand::Seed { count: users, seed },
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let command = config.command.into();
    metadata_main::<UserSvc>(
        &config.common,
        &config.db,
        &config.db_schema,
        DEFAULT_ADMIN_ADDR,
        command,
    )
    .await
}
