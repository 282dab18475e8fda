//! `stream-lag`: consumer-group lag from the broker, for Prometheus. Every
//! `--interval-ms` it reads each `--group GROUP=TOPIC`'s committed offsets
//! and the topic's watermarks and sets `cinerec_stream_group_lag{group,
//! topic, partition}` on its `/metrics` (admin port 9087 by default). It runs
//! beside the consumers, not in them, so a stopped or stuck consumer's lag
//! still grows where the `ConsumerLagHigh` alert looks (see
//! `cinerec_stream::lag`).

use std::sync::Arc;
use std::time::Duration;

use cinerec_service_kit::defaults::DEFAULT_BROKERS;
use cinerec_service_kit::kafka::BrokerProbe;
use cinerec_service_kit::{AdminServer, CommonArgs, Readiness, defaults, shutdown, telemetry};
use cinerec_stream::lag::{GROUP_LAG, GROUP_LAG_ERRORS_TOTAL, GroupLag, Watched};
use clap::Parser;

/// How often every group is measured.
const DEFAULT_INTERVAL_MS: u64 = 1_000;
/// Longest one broker request may take.
const DEFAULT_TIMEOUT_MS: u64 = 5_000;

/// Exports consumer-group lag measured from the broker.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Kafka bootstrap servers.
    #[arg(long, env = "STREAM_LAG_BROKERS", default_value = DEFAULT_BROKERS)]
    brokers: String,
    /// A group and the topic it consumes, as GROUP=TOPIC (repeat, or
    /// comma-separate in the env var).
    #[arg(
        long = "group",
        env = "STREAM_LAG_GROUPS",
        value_delimiter = ',',
        required = true
    )]
    groups: Vec<Watched>,
    /// Milliseconds between two measurements.
    #[arg(long, env = "STREAM_LAG_INTERVAL_MS", default_value_t = DEFAULT_INTERVAL_MS,
          value_parser = clap::value_parser!(u64).range(100..))]
    interval_ms: u64,
    /// Milliseconds one broker request may take.
    #[arg(long, env = "STREAM_LAG_TIMEOUT_MS", default_value_t = DEFAULT_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init("stream-lag", &args.common.log, args.common.log_format)?;
    let shutdown = shutdown::on_signals()?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let clients = args
        .groups
        .iter()
        .map(|w| GroupLag::new(&args.brokers, w.clone(), timeout).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    for c in &clients {
        // Present at 0 before the first failure, so a rate() over it works.
        metrics::counter!(GROUP_LAG_ERRORS_TOTAL, "group" => c.watched().group.clone())
            .increment(0);
    }
    let mut readiness = Readiness::new();
    if let Some(first) = args.groups.first() {
        let probe = BrokerProbe::new(&args.brokers, &first.topic)?;
        readiness = readiness.with_check("kafka", move || {
            let probe = probe.clone();
            async move { probe.check().await }
        });
    }
    let admin = AdminServer::bind(
        args.common.admin_addr_or(defaults::STREAM_LAG_ADMIN_ADDR),
        readiness,
    )
    .await?;
    tracing::info!(admin = %admin.local_addr()?, groups = ?args.groups, "stream-lag starting");
    let admin = admin.serve(shutdown.clone());
    let mut tick = tokio::time::interval(Duration::from_millis(args.interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = tick.tick() => {}
        }
        for c in &clients {
            measure(c.clone()).await;
        }
    }
    let _ = admin.await;
    telemetry::shutdown();
    Ok(())
}

/// Measures one group and sets its gauges; a failure is logged and counted,
/// and the gauges keep their last value.
async fn measure(c: Arc<GroupLag>) {
    let w = c.watched().clone();
    let result = tokio::task::spawn_blocking(move || c.measure()).await;
    match result {
        Ok(Ok(lags)) => {
            for (partition, lag) in lags {
                metrics::gauge!(GROUP_LAG, "group" => w.group.clone(), "topic" => w.topic.clone(),
                    "partition" => partition.to_string())
                .set(lag as f64);
            }
        }
        Ok(Err(e)) => lag_failed(&w, &e.to_string()),
        Err(e) => lag_failed(&w, &e.to_string()),
    }
}

/// One failed measurement: logged and counted.
fn lag_failed(w: &Watched, error: &str) {
    tracing::warn!(group = %w.group, topic = %w.topic, %error, "measuring group lag failed");
    metrics::counter!(GROUP_LAG_ERRORS_TOTAL, "group" => w.group.clone()).increment(1);
}
