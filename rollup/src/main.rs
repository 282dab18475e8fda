//! The rollup binary: `rollup` (or `rollup run`) consumes `reviews.enriched`
//! and snapshots the recommender's tables into the dashboard schema until
//! SIGTERM/Ctrl-C, with the admin port beside it; `rollup migrate` only
//! creates the schema and tables.

use std::net::SocketAddr;

use cinerec_service_kit::{AdminServer, CommonArgs, Readiness, defaults, shutdown, telemetry};
use clap::Subcommand;
use rollup::config::STREAM;
use rollup::{Config, Rollup};

/// mimalloc instead of glibc malloc: allocation was about a quarter of
/// movie-svc's warm-path CPU (service-kit's README, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Dashboard rollups: reviews.enriched + the recommender's tables → PostgreSQL/CockroachDB for Superset.
#[derive(Debug, clap::Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consume and snapshot until stopped (the default).
    Run,
    /// Create the schema and its tables and views, then exit.
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The runtime's shared flags get the sink's defaults and env prefix.
    let args: Args = cinerec_stream::config::parse(&STREAM);
    telemetry::init("rollup", &args.common.log, args.common.log_format)?;
    let rollup = Rollup::new(args.config.clone()).await?;
    if let Some(Command::Migrate) = args.command {
        tracing::info!(schema = %args.config.schema, "migrated");
        return Ok(());
    }
    let shutdown = shutdown::on_signals()?;
    let probe = rollup::kafka::broker_probe(&args.config)?;
    let pool = rollup.store().pool().clone();
    // Ready while the broker lists the topic and the database answers: the
    // two the consumer needs. Cassandra is not a condition: without it only
    // the snapshots pause (counted), the throughput rollups go on.
    let readiness = Readiness::new()
        .with_check("kafka", move || {
            let probe = probe.clone();
            async move { probe.check().await }
        })
        .with_check("database", move || {
            let pool = pool.clone();
            async move { sqlx::query("SELECT 1").execute(&pool).await.map(|_| ()) }
        });
    let admin_addr: SocketAddr = args.common.admin_addr_or(defaults::ROLLUP_ADMIN_ADDR);
    let admin = AdminServer::bind(admin_addr, readiness).await?;
    tracing::info!(admin = %admin.local_addr()?, schema = %args.config.schema, "rollup starting");
    let admin = admin.serve(shutdown.clone());
    let outcome = rollup.run(shutdown.clone()).await;
    shutdown.trigger();
    let _ = admin.await;
    outcome
}
