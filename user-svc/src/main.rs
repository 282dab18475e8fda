//! The user-svc binary: `serve` (Avro RPC over socket and HTTP, admin port),
//! `migrate`, `seed`.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use cinerec_service_kit::db::{self, DbArgs};
use cinerec_service_kit::rpc::{RpcAddrs, run_database_service};
use cinerec_service_kit::{CommonArgs, defaults, telemetry};
use clap::{Parser, Subcommand};
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init("user-svc", &config.common.log, config.common.log_format)?;
    let pool = db::connect(&config.db, &config.db_schema).await?;
    let store = UserStore::new(pool.clone());
    store.migrate().await?;
    match config.command {
        Command::Migrate => tracing::info!("migrations applied"),
        Command::Seed { users, seed } => {
            // The other dimension of the world does not shape these rows.
            let catalog = cinerec_catalog::Catalog::new(seed, 1, users);
            let started = std::time::Instant::now();
            let written = user_svc::seed::seed(&store, &catalog, 10_000).await?;
            eprintln!(
                "seeded {written} users in {:.1}s; {} stored",
                started.elapsed().as_secs_f64(),
                store.count().await?
            );
        }
        Command::Serve {
            rpc_addr,
            rpc_http_addr,
            cache_capacity,
            cache_ttl_secs,
        } => {
            let addrs = RpcAddrs {
                socket: rpc_addr,
                http: rpc_http_addr,
            };
            let admin_addr = config.common.admin_addr_or(DEFAULT_ADMIN_ADDR);
            run_database_service("user-svc", pool, addrs, admin_addr, || {
                let ttl = Duration::from_secs(cache_ttl_secs);
                user_svc::rpc::responder(users(store, cache_capacity, ttl))
            })
            .await?;
        }
    }
    // Spans still buffered go out before the process does.
    telemetry::shutdown();
    Ok(())
}
