//! Plumbing every cinerec service shares, so five binaries don't each grow
//! their own: typed configuration from env vars and flags ([`CommonArgs`]),
//! telemetry set-up ([`telemetry`]) and trace-context propagation
//! ([`trace_context`]), the admin HTTP port with `/healthz`,
//! `/readyz` and `/metrics` ([`admin`]), and graceful shutdown on SIGTERM or
//! Ctrl-C ([`shutdown`]).
//!
//! A service's `main` reads as: parse config → [`telemetry::init`] →
//! [`shutdown::on_signals`] → build readiness checks → [`admin::serve`] beside
//! the service's own listeners → wait for the shutdown token → drain.
#![forbid(unsafe_code)]

pub mod admin;
pub mod clock;
pub mod cql;
#[cfg(feature = "postgres")]
pub mod db;
pub mod defaults;
pub mod http_metrics;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "avro-rpc")]
pub mod metadata;
pub mod read_through;
#[cfg(feature = "avro-rpc")]
pub mod rpc;
pub mod shutdown;
pub mod telemetry;
pub mod trace_context;

use std::net::SocketAddr;

pub use admin::{AdminServer, Readiness};
pub use read_through::{Batch, ReadThrough};
pub use shutdown::Shutdown;

/// Options every service takes, flattened into its own `clap` parser:
/// `#[command(flatten)] common: CommonArgs`. Each is also read from the env var
/// named in `--help`; services give their own admin port as the default via
/// [`CommonArgs::admin_addr_or`].
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Address of the admin HTTP server (/healthz, /readyz, /metrics).
    /// Defaults to the service's own port on 127.0.0.1.
    #[arg(long, env = "CINEREC_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,

    /// Log filter in `tracing-subscriber` EnvFilter syntax.
    #[arg(long, env = "CINEREC_LOG", default_value = telemetry::DEFAULT_LOG_FILTER)]
    pub log: String,

    /// Log format: `text` for people, `json` for log shippers.
    #[arg(long, env = "CINEREC_LOG_FORMAT", default_value = "text")]
    pub log_format: telemetry::LogFormat,
}

impl CommonArgs {
    /// The admin address, or `default` when none was configured.
    pub fn admin_addr_or(&self, default: SocketAddr) -> SocketAddr {
        self.admin_addr.unwrap_or(default)
    }
}
