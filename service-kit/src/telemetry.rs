//! Logging and metrics set-up, once per process.
//!
//! Logs go through `tracing` with key/value fields; metrics through the
//! `metrics` facade into one Prometheus recorder that `/metrics` renders.
//! Trace export (OTLP) joins here when the tracing UI lands.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

/// Info for our crates, warnings for dependencies.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global `tracing` subscriber (stderr, filtered by `filter`) and
/// the Prometheus metrics recorder. Safe to call more than once (tests do):
/// later calls keep the first subscriber.
pub fn init(service: &'static str, filter: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("invalid log filter {filter:?}: {e}"))?;
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match format {
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
    };
    if installed.is_ok() {
        tracing::info!(service, "telemetry initialised");
    }
    metrics_handle();
    Ok(())
}

/// The process-wide Prometheus recorder, installed on first use. The `metrics`
/// facade accepts one global recorder per process, so every caller shares this
/// handle.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            // Latency histograms in seconds, from 50 µs (an RPC on loopback)
            // to 10 s (a stalled dependency).
            .set_buckets(&[
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ])
            .expect("bucket list is non-empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (a test harness, or a
        // library's); then our handle renders nothing, which /metrics shows.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        handle
    })
}
