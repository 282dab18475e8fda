//! Serving an Avro RPC responder the way every cinerec service does: the
//! socket transport (Java Netty framing) and HTTP side by side, per-message
//! metrics, and a drain on shutdown.
//!
//! The handler stack, outermost first:
//!
//! 1. [`RpcMetricsLayer`] — so every call is counted and timed, including the
//!    ones the deadline layer abandons.
//! 2. `HonourDeadlineLayer` — a call whose client deadline (carried in call
//!    metadata) has passed stops consuming the database.
//! 3. the generated protocol server.
//!
//! On shutdown both listeners stop accepting; HTTP finishes the requests it
//! has; socket connections keep being served until every call in flight has
//! answered (or [`DRAIN_TIMEOUT`] passes), then the process exits and the
//! clients reconnect elsewhere.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use avro_rpc::server::{Request, Responder, Response, ResponseError};
use avro_rpc::transport::http::HttpService;
use avro_rpc::transport::socket::serve_connection;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::{Layer, Service};

use crate::shutdown::Shutdown;

/// Longest a shutdown waits for socket calls in flight.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Counts and times each call by message and outcome:
/// `cinerec_rpc_server_requests_total{service, message, outcome}` with outcome
/// `ok`, `declared_error` or `system_error`, and
/// `cinerec_rpc_server_duration_seconds{service, message}`. Also tracks calls
/// in flight for the drain.
#[derive(Debug, Clone)]
pub struct RpcMetricsLayer {
    service: &'static str,
    in_flight: Arc<AtomicUsize>,
}

impl RpcMetricsLayer {
    /// Metrics labelled `service`.
    pub fn new(service: &'static str) -> Self {
        RpcMetricsLayer {
            service,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Calls currently being handled.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
}

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;
    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`RpcMetricsLayer`] builds.
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    layer: RpcMetricsLayer,
}

impl<S> Service<Request> for RpcMetrics<S>
where
    S: Service<Request, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let service = self.layer.service;
        let message = request.message.name().to_owned();
        let in_flight = self.layer.in_flight.clone();
        in_flight.fetch_add(1, Ordering::SeqCst);
        let started = Instant::now();
        let fut = self.inner.call(request);
        Box::pin(async move {
            let result = fut.await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            let outcome = match &result {
                Ok(Response { result: Ok(_), .. }) => "ok",
                Ok(Response {
                    result: Err(ResponseError::Declared { .. }),
                    ..
                }) => "declared_error",
                _ => "system_error",
            };
            metrics::histogram!("cinerec_rpc_server_duration_seconds",
                "service" => service, "message" => message.clone())
            .record(started.elapsed().as_secs_f64());
            metrics::counter!("cinerec_rpc_server_requests_total",
                "service" => service, "message" => message, "outcome" => outcome)
            .increment(1);
            result
        })
    }
}

/// Where a service listens for Avro RPC.
#[derive(Debug, Clone, Copy)]
pub struct RpcAddrs {
    /// Socket transport (Java Netty framing).
    pub socket: SocketAddr,
    /// HTTP transport.
    pub http: SocketAddr,
}

/// Bound Avro RPC listeners, not yet serving (so callers learn the ports).
#[derive(Debug)]
pub struct RpcListeners {
    socket: TcpListener,
    http: TcpListener,
}

impl RpcListeners {
    /// Binds both addresses (port 0 picks free ports).
    pub async fn bind(addrs: RpcAddrs) -> anyhow::Result<RpcListeners> {
        let bind = |addr: SocketAddr, what: &'static str| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("binding the Avro RPC {what} port {addr}: {e}"))
        };
        Ok(RpcListeners {
            socket: bind(addrs.socket, "socket").await?,
            http: bind(addrs.http, "HTTP").await?,
        })
    }

    /// The bound addresses.
    pub fn local_addrs(&self) -> std::io::Result<RpcAddrs> {
        Ok(RpcAddrs {
            socket: self.socket.local_addr()?,
            http: self.http.local_addr()?,
        })
    }

    /// Serves `responder` on both listeners until `shutdown`, then drains
    /// (see the module docs). `metrics` must be the layer wrapping the
    /// responder's handler, whose in-flight count the drain waits on.
    pub fn serve<S>(
        self,
        responder: Arc<Responder<S>>,
        metrics: RpcMetricsLayer,
        shutdown: Shutdown,
    ) -> JoinHandle<anyhow::Result<()>>
    where
        S: Service<Request, Response = Response> + Clone + Send + Sync + 'static,
        S::Error: Into<avro_rpc::BoxError>,
        S::Future: Send,
    {
        tokio::spawn(async move {
            let http = HttpService::new(responder.clone());
            let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
                let http = http.clone();
                async move { http.handle(req).await }
            });
            let http_task = tokio::spawn(
                axum::serve(self.http, app)
                    .with_graceful_shutdown({
                        let shutdown = shutdown.clone();
                        async move { shutdown.wait().await }
                    })
                    .into_future(),
            );
            loop {
                tokio::select! {
                    () = shutdown.wait() => break,
                    accepted = self.socket.accept() => {
                        let (stream, peer) = match accepted {
                            Ok(a) => a,
                            Err(e) => {
                                // Out of file descriptors and the like: keep serving
                                // the connections we have, try again shortly.
                                tracing::warn!(error = %e, "accepting an Avro RPC connection failed");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                        };
                        let _ = stream.set_nodelay(true);
                        let responder = responder.clone();
                        tokio::spawn(async move {
                            if let Err(e) = serve_connection(stream, responder).await {
                                tracing::debug!(%peer, error = %e, "Avro RPC connection ended");
                            }
                        });
                    }
                }
            }
            let deadline = Instant::now() + DRAIN_TIMEOUT;
            while metrics.in_flight() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if metrics.in_flight() > 0 {
                tracing::warn!(in_flight = metrics.in_flight(), "drain timed out");
            }
            http_task.await??;
            Ok(())
        })
    }
}

/// Runs an Avro RPC service the standard way until `shutdown`: binds the RPC
/// listeners and the admin port, logs one `serving` line with the bound
/// addresses (tests and operators read it), serves, drains, and stops the
/// admin port last so probes keep answering while calls drain.
#[allow(clippy::too_many_arguments)]
pub async fn run_service<S>(
    service: &'static str,
    addrs: RpcAddrs,
    admin_addr: SocketAddr,
    responder: Arc<Responder<S>>,
    metrics: RpcMetricsLayer,
    readiness: crate::Readiness,
    shutdown: Shutdown,
) -> anyhow::Result<()>
where
    S: Service<Request, Response = Response> + Clone + Send + Sync + 'static,
    S::Error: Into<avro_rpc::BoxError>,
    S::Future: Send,
{
    let listeners = RpcListeners::bind(addrs).await?;
    let admin = crate::AdminServer::bind(admin_addr, readiness).await?;
    let bound = listeners.local_addrs()?;
    tracing::info!(
        service,
        rpc = %bound.socket,
        http = %bound.http,
        admin = %admin.local_addr()?,
        "serving"
    );
    let admin_shutdown = Shutdown::new();
    let admin = admin.serve(admin_shutdown.clone());
    let served = listeners.serve(responder, metrics, shutdown).await;
    admin_shutdown.trigger();
    admin.await??;
    served??;
    tracing::info!(service, "stopped");
    Ok(())
}
