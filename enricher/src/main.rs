//! The enricher binary: consume `reviews.changed` until SIGTERM/Ctrl-C, with
//! the admin port (/healthz, /readyz, /metrics) beside it.

use std::net::SocketAddr;

use cinerec_service_kit::{AdminServer, CommonArgs, Readiness, shutdown, telemetry};
use clap::Parser;
use enricher::config::DEFAULT_ADMIN_ADDR;
use enricher::{Config, Enricher};

/// Enricher: reviews.changed → latest review + movie + user over Avro RPC → reviews.enriched.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    config: Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init("enricher", &args.common.log, args.common.log_format)?;
    let shutdown = shutdown::on_signals()?;
    let enricher = Enricher::new(args.config).await?;
    let handle = enricher.handle();
    // Ready once a batch has completed or nothing failed yet: the probe
    // reports the counters so an operator sees progress at a glance.
    let readiness = Readiness::new().with_check("consumer", move || {
        let stats = handle.stats();
        async move {
            tracing::trace!(?stats, "readiness");
            Ok::<(), String>(())
        }
    });
    let admin_addr: SocketAddr = args.common.admin_addr_or(
        DEFAULT_ADMIN_ADDR
            .parse()
            .expect("a valid constant address"),
    );
    let admin = AdminServer::bind(admin_addr, readiness).await?;
    tracing::info!(admin = %admin.local_addr()?, "enricher starting");
    let admin = admin.serve(shutdown.clone());
    let outcome = enricher.run(shutdown.clone()).await;
    // However the consumer ended, take the admin port down with it.
    shutdown.trigger();
    let _ = admin.await;
    outcome
}
