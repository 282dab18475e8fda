//! The enricher binary: consume `reviews.changed` until SIGTERM/Ctrl-C, with
//! the admin port (/healthz, /readyz, /metrics) beside it.

use std::net::SocketAddr;

use cinerec_service_kit::{AdminServer, CommonArgs, Readiness, defaults, shutdown, telemetry};
use enricher::config::STREAM;
use enricher::{Config, Enricher};

/// mimalloc instead of glibc malloc: allocation was about a quarter of
/// movie-svc's warm-path CPU (service-kit's README, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Enricher: reviews.changed → latest review + movie + user over Avro RPC → reviews.enriched.
#[derive(Debug, clap::Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    config: Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The runtime's shared flags get the enricher's defaults and env prefix.
    let args: Args = cinerec_stream::config::parse(&STREAM);
    telemetry::init("enricher", &args.common.log, args.common.log_format)?;
    let shutdown = shutdown::on_signals()?;
    let probe = enricher::kafka::broker_probe(&args.config)?;
    let enricher = Enricher::new(args.config).await?;
    // Ready while the broker answers for the source topic. The cache is no
    // readiness condition: its outage degrades to "process anyway".
    let readiness = Readiness::new().with_check("kafka", move || {
        let probe = probe.clone();
        async move { probe.check().await }
    });
    let admin_addr: SocketAddr = args.common.admin_addr_or(defaults::ENRICHER_ADMIN_ADDR);
    let admin = AdminServer::bind(admin_addr, readiness).await?;
    tracing::info!(admin = %admin.local_addr()?, "enricher starting");
    let admin = admin.serve(shutdown.clone());
    let outcome = enricher.run(shutdown.clone()).await;
    // However the consumer ended, take the admin port down with it.
    shutdown.trigger();
    let _ = admin.await;
    // Spans still buffered go out before the process does.
    telemetry::shutdown();
    outcome
}
