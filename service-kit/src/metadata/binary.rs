//! The `main` of a metadata service binary (movie-svc, user-svc), once.
//!
//! Both binaries connect to their database, apply their migrations, and then
//! either stop (`migrate`), load the seeded synthetic world (`seed`), or serve
//! their protocol behind a read-through cache until SIGTERM (`serve`). A
//! binary parses its own flags (their env names and defaults are its own),
//! turns the subcommand into a [`MetadataCommand`] and hands it, with a
//! [`MetadataBinary`] that says how its store migrates, seeds, counts and
//! answers, to [`metadata_main`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use avro_rpc::server::{Request, Responder, Response};
use sqlx::PgPool;
use tower::Service;

use crate::db::{self, DbArgs};
use crate::rpc::{RpcAddrs, RpcMetricsLayer, run_database_service};
use crate::{CommonArgs, telemetry};

/// What the binary was asked to do, its flags parsed.
#[derive(Debug, Clone)]
pub enum MetadataCommand {
    /// Serve the protocol until SIGTERM/Ctrl-C.
    Serve {
        /// The socket and HTTP listeners.
        addrs: RpcAddrs,
        /// Records the read-through cache holds.
        cache_capacity: u64,
        /// How long a cached record may be served.
        cache_ttl: Duration,
    },
    /// Apply the migrations and stop.
    Migrate,
    /// Load `count` records of the synthetic world of `seed` (idempotent).
    Seed {
        /// How many records.
        count: u64,
        /// The world's seed (the same for movie-svc, user-svc and loadgen).
        seed: u64,
    },
}

/// How one metadata service's store migrates, seeds and serves.
pub trait MetadataBinary {
    /// The service's name (logs, metrics, the `serving` line).
    const SERVICE: &'static str;
    /// What its records are called in the seed report (`"movies"`).
    const RECORDS: &'static str;
    /// Its store over the pool.
    type Store: Clone + Send + Sync + 'static;
    /// The handler stack it serves.
    type Handler: Service<Request, Response = Response> + Clone + Send + Sync + 'static;

    /// The store over `pool` (whose connections already use the schema).
    fn store(pool: PgPool) -> Self::Store;
    /// Applies the migrations not applied yet.
    fn migrate(store: &Self::Store) -> impl Future<Output = anyhow::Result<()>>;
    /// Writes `count` records of the world of `seed`; returns how many.
    fn seed(
        store: &Self::Store,
        seed: u64,
        count: u64,
    ) -> impl Future<Output = anyhow::Result<u64>>;
    /// Records stored.
    fn count(store: &Self::Store) -> impl Future<Output = anyhow::Result<i64>>;
    /// The responder over `store` with a read-through cache, and its metrics layer.
    fn responder(
        store: Self::Store,
        cache_capacity: u64,
        cache_ttl: Duration,
    ) -> anyhow::Result<(Arc<Responder<Self::Handler>>, RpcMetricsLayer)>;
}

/// Runs `command` for the service `B`: telemetry, the database in `schema`,
/// the migrations, then the command; flushes buffered spans before it
/// returns.
pub async fn metadata_main<B>(
    common: &CommonArgs,
    database: &DbArgs,
    schema: &str,
    default_admin: SocketAddr,
    command: MetadataCommand,
) -> anyhow::Result<()>
where
    B: MetadataBinary,
    <B::Handler as Service<Request>>::Error: Into<avro_rpc::BoxError>,
    <B::Handler as Service<Request>>::Future: Send,
{
    telemetry::init(B::SERVICE, &common.log, common.log_format)?;
    let pool = db::connect(database, schema).await?;
    let store = B::store(pool.clone());
    B::migrate(&store).await?;
    match command {
        MetadataCommand::Migrate => tracing::info!("migrations applied"),
        MetadataCommand::Seed { count, seed } => {
            let started = Instant::now();
            let written = B::seed(&store, seed, count).await?;
            eprintln!(
                "seeded {written} {} in {:.1}s; {} stored",
                B::RECORDS,
                started.elapsed().as_secs_f64(),
                B::count(&store).await?
            );
        }
        MetadataCommand::Serve {
            addrs,
            cache_capacity,
            cache_ttl,
        } => {
            let admin = common.admin_addr_or(default_admin);
            run_database_service(B::SERVICE, pool, addrs, admin, || {
                B::responder(store, cache_capacity, cache_ttl)
            })
            .await?;
        }
    }
    // Spans still buffered go out before the process does.
    telemetry::shutdown();
    Ok(())
}
