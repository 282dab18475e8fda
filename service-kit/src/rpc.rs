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
//! The client side has its own layer, [`RpcClientMetricsLayer`], outermost
//! in each client stack so a call counts once, retries and deadline included.
//!
//! Both layers give each message every outcome series (at 0) the first time
//! the message is called, so an error rate is a query over series that exist
//! rather than ones that appear with the first error.
//!
//! On shutdown both listeners stop accepting; HTTP finishes the requests it
//! has; socket connections keep being served until every call in flight has
//! answered (or [`DRAIN_TIMEOUT`] passes), then the process exits and the
//! clients reconnect elsewhere.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use avro_rpc::client::RemoteError;
use avro_rpc::server::{Request, Responder, Response, ResponseError};
use avro_rpc::transport::socket::serve_connection;
use avro_rpc::{Call, Kind, Reply};
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
    seen: Messages,
}

/// Outcomes of a served call.
const SERVER_OUTCOMES: &[&str] = &["ok", "declared_error", "system_error"];

/// The messages already called, whose outcome series exist.
#[derive(Debug, Clone, Default)]
struct Messages(Arc<Mutex<HashSet<String>>>);

impl Messages {
    /// The first time `message` is seen, registers `family{service, message,
    /// outcome}` at 0 for every outcome.
    fn first_call(
        &self,
        family: &'static str,
        service: &'static str,
        message: &str,
        outcomes: &[&'static str],
    ) {
        // A poisoned lock only means another call panicked mid-insert: the
        // set is still a set.
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(message) {
            return;
        }
        seen.insert(message.to_owned());
        for &outcome in outcomes {
            metrics::counter!(family, "service" => service, "message" => message.to_owned(),
                "outcome" => outcome)
            .increment(0);
        }
    }
}

impl RpcMetricsLayer {
    /// Metrics labelled `service`.
    pub fn new(service: &'static str) -> Self {
        RpcMetricsLayer {
            service,
            in_flight: Arc::new(AtomicUsize::new(0)),
            seen: Messages::default(),
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
        self.layer.seen.first_call(
            "cinerec_rpc_server_requests_total",
            service,
            &message,
            SERVER_OUTCOMES,
        );
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

/// Client-side twin of [`RpcMetricsLayer`]: counts and times each call a
/// client makes, by the called service, message and outcome:
/// `cinerec_rpc_client_requests_total{service, message, outcome}` and
/// `cinerec_rpc_client_duration_seconds{service, message}`.
///
/// Outcomes: `ok`; `declared_error` (one of the message's declared errors,
/// e.g. not found); `system_error` (the server failed); `timeout` (the
/// deadline passed); `unavailable` (no connection, handshake failed, circuit
/// open); `protocol_error` (a request or reply that does not encode or
/// decode). Put it outermost in a client stack (outside retries and the
/// deadline) so one logical call is one count and its latency is what the
/// caller waited.
#[derive(Debug, Clone)]
pub struct RpcClientMetricsLayer {
    service: &'static str,
    seen: Messages,
}

/// Outcomes of a client call.
const CLIENT_OUTCOMES: &[&str] = &[
    "ok",
    "declared_error",
    "system_error",
    "timeout",
    "unavailable",
    "protocol_error",
];

impl RpcClientMetricsLayer {
    /// Metrics of calls to `service` (the callee's name, e.g. `movie-svc`).
    pub fn new(service: &'static str) -> Self {
        RpcClientMetricsLayer {
            service,
            seen: Messages::default(),
        }
    }
}

impl<S> Layer<S> for RpcClientMetricsLayer {
    type Service = RpcClientMetrics<S>;
    fn layer(&self, inner: S) -> RpcClientMetrics<S> {
        RpcClientMetrics {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`RpcClientMetricsLayer`] builds.
#[derive(Debug, Clone)]
pub struct RpcClientMetrics<S> {
    inner: S,
    layer: RpcClientMetricsLayer,
}

/// The `outcome` label of a client call's result.
fn client_outcome(result: &Result<Reply, avro_rpc::Error>) -> &'static str {
    match result {
        Ok(Reply { result: Ok(_), .. }) => "ok",
        Ok(Reply {
            result: Err(RemoteError::Declared { .. }),
            ..
        }) => "declared_error",
        Ok(Reply {
            result: Err(RemoteError::System(_)),
            ..
        }) => "system_error",
        Err(e) => match e.kind() {
            Kind::Remote => "system_error",
            Kind::Timeout => "timeout",
            Kind::Transport | Kind::Handshake | Kind::CircuitOpen => "unavailable",
            // Protocol, Decode, Encode, UnknownMessage and any kind added later.
            _ => "protocol_error",
        },
    }
}

impl<S> Service<Call> for RpcClientMetrics<S>
where
    S: Service<Call, Response = Reply, Error = avro_rpc::Error>,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = avro_rpc::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Reply, avro_rpc::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), avro_rpc::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let service = self.layer.service;
        let message = call.message.to_string();
        self.layer.seen.first_call(
            "cinerec_rpc_client_requests_total",
            service,
            &message,
            CLIENT_OUTCOMES,
        );
        let started = Instant::now();
        let fut = self.inner.call(call);
        Box::pin(async move {
            let result = fut.await;
            metrics::histogram!("cinerec_rpc_client_duration_seconds",
                "service" => service, "message" => message.clone())
            .record(started.elapsed().as_secs_f64());
            metrics::counter!("cinerec_rpc_client_requests_total",
                "service" => service, "message" => message, "outcome" => client_outcome(&result))
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
            // avro-rpc's own HTTP server, not axum::serve: it closes a
            // connection whose request head stalls (or that idles) after
            // the responder's `frame_timeout`, which axum::serve cannot.
            let http_task = tokio::spawn(avro_rpc::transport::http::serve_http_until(
                self.http,
                responder.clone(),
                {
                    let shutdown = shutdown.clone();
                    async move { shutdown.wait().await }
                },
            ));
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

/// The handler stack every cinerec Avro RPC server serves, outermost first:
/// the server span (a child of the caller's, from the call metadata), the
/// metrics, the deadline check, the generated server (see the module docs
/// for why in this order).
pub type Handler<S> =
    avro_rpc::layer::trace::TraceHandler<RpcMetrics<avro_rpc::layer::deadline::HonourDeadline<S>>>;

/// The responder of `server` (a generated `…Server`) for `protocol`, in the
/// standard [`Handler`] stack, with its metrics layer (the drain needs it).
pub fn responder<S>(
    service: &'static str,
    protocol: avro_rpc::Protocol,
    server: S,
) -> (Arc<Responder<Handler<S>>>, RpcMetricsLayer)
where
    S: Service<Request, Response = Response> + Clone + Send + Sync + 'static,
    S::Error: Into<avro_rpc::BoxError>,
    S::Future: Send,
{
    let metrics = RpcMetricsLayer::new(service);
    let handler = tower::ServiceBuilder::new()
        .layer(crate::trace_context::rpc_server_layer(&protocol))
        .layer(metrics.clone())
        .layer(avro_rpc::layer::deadline::HonourDeadlineLayer::new())
        .service(server);
    (Arc::new(Responder::new(protocol, handler)), metrics)
}

/// [`run_service`] for a service whose one dependency is its SQL database
/// (movie-svc, user-svc): SIGTERM/Ctrl-C start the drain, `/readyz` checks
/// the database with a round trip, the pool's gauges are published, and
/// `build` makes the responder once the signal handlers are in place.
#[cfg(feature = "postgres")]
pub async fn run_database_service<S>(
    service: &'static str,
    pool: sqlx::PgPool,
    addrs: RpcAddrs,
    admin_addr: SocketAddr,
    build: impl FnOnce() -> anyhow::Result<(Arc<Responder<S>>, RpcMetricsLayer)>,
) -> anyhow::Result<()>
where
    S: Service<Request, Response = Response> + Clone + Send + Sync + 'static,
    S::Error: Into<avro_rpc::BoxError>,
    S::Future: Send,
{
    let shutdown = crate::shutdown::on_signals()?;
    let (responder, metrics) = build()?;
    let readiness = {
        let pool = pool.clone();
        crate::Readiness::new().with_check("database", move || {
            let pool = pool.clone();
            async move { crate::db::ping(&pool).await }
        })
    };
    crate::db::spawn_pool_gauges(pool, service, Duration::from_secs(5), shutdown.clone());
    run_service(
        service, addrs, admin_addr, responder, metrics, readiness, shutdown,
    )
    .await
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

#[cfg(test)]
mod tests {
    use avro_rpc::export::apache_avro::types::Value;
    use tower::ServiceExt;

    use super::*;

    fn call(message: &str) -> Call {
        Call {
            message: message.into(),
            metadata: avro_rpc::Metadata::new(),
            params: Default::default(),
        }
    }

    /// The rendered sample `family{labels…}` (labels in the exporter's
    /// order), if exported.
    fn sample(text: &str, family: &str, labels: &str) -> Option<f64> {
        let prefix = format!("{family}{{{labels}}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
    }

    #[tokio::test]
    async fn client_calls_are_counted_by_message_and_outcome_and_timed() {
        let handle = crate::telemetry::metrics_handle();
        let inner = tower::service_fn(|call: Call| async move {
            match &*call.message {
                "getMovie" => Ok(Reply {
                    metadata: avro_rpc::Metadata::new(),
                    result: Ok(Value::Null),
                }),
                "getUser" => Ok(Reply {
                    metadata: avro_rpc::Metadata::new(),
                    result: Err(RemoteError::Declared {
                        index: 0,
                        value: Value::Null,
                    }),
                }),
                "getReview" => Err(avro_rpc::Error::new(Kind::Timeout, "deadline passed")),
                _ => Err(avro_rpc::Error::new(Kind::Transport, "connection refused")),
            }
        });
        let svc = RpcClientMetricsLayer::new("client-test").layer(inner);
        for message in ["getMovie", "getMovie", "getUser", "getReview", "getUsers"] {
            let _ = svc.clone().oneshot(call(message)).await;
        }
        let text = handle.render();
        let count = |message: &str, outcome: &str| {
            sample(
                &text,
                "cinerec_rpc_client_requests_total",
                &format!(r#"service="client-test",message="{message}",outcome="{outcome}""#),
            )
        };
        assert_eq!(count("getMovie", "ok"), Some(2.0));
        assert_eq!(count("getUser", "declared_error"), Some(1.0));
        assert_eq!(count("getReview", "timeout"), Some(1.0));
        assert_eq!(count("getUsers", "unavailable"), Some(1.0));
        // Every outcome of a called message exists, at 0 until it happens.
        assert_eq!(count("getMovie", "system_error"), Some(0.0));
        assert_eq!(count("getMovie", "timeout"), Some(0.0));
        assert_eq!(
            sample(
                &text,
                "cinerec_rpc_client_duration_seconds_count",
                r#"service="client-test",message="getMovie""#
            ),
            Some(2.0)
        );
    }
}
