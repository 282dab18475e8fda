//! The admin HTTP port every service exposes beside its real listeners:
//!
//! * `GET /healthz` — 200 while the process serves HTTP at all (liveness: a
//!   failing probe means "restart me").
//! * `GET /readyz` — 200 when every readiness check passes, else 503 with a JSON
//!   body naming the failing check and its error (readiness: "send me no
//!   traffic yet"). Each check has [`CHECK_TIMEOUT`], so a hung dependency
//!   reads as not ready instead of hanging the probe.
//! * `GET /metrics` — the Prometheus text exposition of the process's metrics.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::{BoxFuture, join_all};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::shutdown::Shutdown;
use crate::telemetry::metrics_handle;

/// Longest a single readiness check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Named readiness checks, run concurrently on every `/readyz`.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.checks.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Readiness").field("checks", &names).finish()
    }
}

impl Readiness {
    /// No checks: always ready.
    pub fn new() -> Readiness {
        Readiness::default()
    }

    /// Adds a check; `check` is called afresh for every probe.
    pub fn with_check<F, Fut, E>(mut self, name: &'static str, check: F) -> Readiness
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let check: Check = Arc::new(move || {
            let fut = check();
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        });
        self.checks.push((name, check));
        self
    }

    /// Runs every check; `Ok` with each name, or `Err` with each name and
    /// outcome ("ok" or the error).
    pub async fn run(&self) -> Result<Vec<&'static str>, BTreeMap<&'static str, String>> {
        let outcomes = join_all(self.checks.iter().map(|(name, check)| async move {
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
            };
            (*name, outcome)
        }))
        .await;
        if outcomes.iter().all(|(_, o)| o.is_ok()) {
            return Ok(outcomes.into_iter().map(|(n, _)| n).collect());
        }
        Err(outcomes
            .into_iter()
            .map(|(n, o)| (n, o.err().unwrap_or_else(|| "ok".to_owned())))
            .collect())
    }
}

/// The admin server, bound but not yet serving (so callers learn the port
/// before anything can probe it).
#[derive(Debug)]
pub struct AdminServer {
    listener: TcpListener,
    readiness: Readiness,
}

impl AdminServer {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr, readiness: Readiness) -> anyhow::Result<AdminServer> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("binding the admin port {addr}: {e}"))?;
        Ok(AdminServer {
            listener,
            readiness,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` triggers.
    pub fn serve(self, shutdown: Shutdown) -> JoinHandle<std::io::Result<()>> {
        let app = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(Arc::new(self.readiness));
        tokio::spawn(async move {
            axum::serve(self.listener, app)
                .with_graceful_shutdown(async move { shutdown.wait().await })
                .await
        })
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(readiness): State<Arc<Readiness>>) -> Response {
    match readiness.run().await {
        Ok(names) => {
            let checks: BTreeMap<_, _> = names.into_iter().map(|n| (n, "ok")).collect();
            (
                StatusCode::OK,
                axum::Json(serde_json::json!({ "ready": true, "checks": checks })),
            )
                .into_response()
        }
        Err(checks) => {
            tracing::warn!(?checks, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({ "ready": false, "checks": checks })),
            )
                .into_response()
        }
    }
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics_handle().render(),
    )
        .into_response()
}
