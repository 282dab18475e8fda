//! The recommender binary: `run` (the default: consume `reviews.enriched`
//! until SIGTERM/Ctrl-C, with the admin port beside it), `migrate`, and
//! `reconcile` (exit status 0 when the tables equal the batch recomputation),
//! and `evaluate` (offline recommendation quality).

use std::net::SocketAddr;
use std::process::ExitCode;

use cinerec_service_kit::{AdminServer, CommonArgs, Readiness, defaults, shutdown, telemetry};
use clap::{Parser, Subcommand};
use recommender::config::{CqlConfig, STREAM};
use recommender::{Config, Recommender, store};

/// mimalloc instead of glibc malloc: allocation was about a quarter of
/// movie-svc's warm-path CPU (service-kit's README, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Recommender: reviews.enriched → co-occurrence model → recommendations in Cassandra.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `run`'s options, when no subcommand is given.
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    config: Config,
}

// Parsed once at start-up: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Restore the model from the changelog, then consume (the default).
    Run(RunArgs),
    /// Create the keyspace and tables, then exit.
    Migrate {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        cql: CqlConfig,
    },
    /// Recompute likes/N/C and top-20s from review-svc's reviews and diff
    /// them against the recommender's tables (non-zero exit on any difference).
    Reconcile(recommender::reconcile::Args),
    /// Offline recommendation quality on a generated history: hit-rate@10,
    /// NDCG@10 and coverage with 95 % intervals, for the model, popularity
    /// and the Python `implicit` library's item-kNN and ALS on the same split.
    Evaluate(recommender::evaluate::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    // The runtime's shared Kafka and cache flags take the recommender's
    // defaults and env names, both for `run` and for the bare command.
    use clap::{CommandFactory as _, FromArgMatches as _};
    let with = cinerec_stream::config::with_defaults;
    let command = with(Cli::command(), &STREAM).mut_subcommand("run", |c| with(c, &STREAM));
    let matches = command.get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command.unwrap_or(Command::Run(cli.run)) {
        Command::Run(args) => run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Migrate { common, cql } => {
            telemetry::init("recommender", &common.log, common.log_format)?;
            let session = store::connect(&cql).await?;
            store::migrate(&session, &cql).await?;
            tracing::info!(keyspace = %cql.keyspace, "keyspace and tables ready");
            Ok(ExitCode::SUCCESS)
        }
        Command::Reconcile(args) => recommender::reconcile::run(args).await,
        Command::Evaluate(args) => recommender::evaluate::run(args),
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::init("recommender", &args.common.log, args.common.log_format)?;
    let shutdown = shutdown::on_signals()?;
    let probe = recommender::kafka::broker_probe(&args.config)?;
    let recommender = Recommender::new(args.config).await?;
    let handle = recommender.handle();
    let store = recommender.store().clone();
    // Ready once the model is rebuilt and consuming, while the broker and
    // Cassandra answer. The cache is no readiness condition: its outage
    // degrades to "process anyway".
    let readiness = Readiness::new()
        .with_check("model", move || {
            let rebuilt = handle.is_rebuilt();
            async move {
                if rebuilt {
                    Ok(())
                } else {
                    Err("restoring the model from the changelog")
                }
            }
        })
        .with_check("kafka", move || {
            let probe = probe.clone();
            async move { probe.check().await }
        })
        .with_check("cassandra", move || {
            let store = store.clone();
            async move { store.ping().await }
        });
    let admin_addr: SocketAddr = args.common.admin_addr_or(defaults::RECOMMENDER_ADMIN_ADDR);
    let admin = AdminServer::bind(admin_addr, readiness).await?;
    tracing::info!(admin = %admin.local_addr()?, "recommender starting");
    let admin = admin.serve(shutdown.clone());
    let outcome = recommender.run(shutdown.clone()).await;
    // However the consumer ended, take the admin port down with it.
    shutdown.trigger();
    let _ = admin.await;
    // Spans still buffered go out before the process does.
    telemetry::shutdown();
    outcome
}
