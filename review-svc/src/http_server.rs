//! The public API's HTTP server: hyper's HTTP/1.1 connections with the
//! protections a public endpoint needs and `axum::serve` lacks — a deadline
//! for a request head once it started, an idle timeout between requests, a
//! deadline for each whole request (body included), a connection limit and
//! load shedding. Every refusal answers (where a response can still be
//! written) with the API's `{error, reason}` body and is counted.
//!
//! The head and idle deadlines are enforced per connection by a watchdog
//! rather than hyper's header-read timer: hyper starts that timer as soon as
//! it waits for the next head, so it would also close keep-alive
//! connections after the header timeout and leave no separate idle timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cinerec_service_kit::Shutdown;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::api::ApiError;
use crate::telemetry;

/// How long a client may take to send a whole request head once its first
/// byte arrived.
pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
/// How long a connection may sit with no request in flight and no bytes
/// arriving before it is closed.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
/// Deadline for one request from its complete head to its response, body
/// read included. Writes take one LWT and one batch (each bounded by the
/// store's timeouts, ~2 s) and up to two directory calls (1 s): 15 s is
/// only reached by a client that stalls its body.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 15_000;
/// Connections held at once; past it a new connection is answered 503 and
/// closed. Bounds the memory slow clients can pin (hyper buffers a head per
/// connection, up to [`MAX_HEAD_BUFFER`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4_096;
/// Requests handled at once; past it a request is shed with 503 at once
/// rather than queued behind Cassandra.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;
/// Largest request head we answer normally (all header names and values);
/// a larger one is 431 with our body.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// hyper's read buffer per connection: heads between [`MAX_HEADER_BYTES`]
/// and this get our 431 from [`guard`]; beyond it hyper refuses the head
/// itself (431, counted as `headers_too_large`; the connection's IO puts
/// our body in place of hyper's empty one).
pub const MAX_HEAD_BUFFER: usize = 64 * 1024;

/// Limits of the public HTTP server.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Deadline for a request head once its first byte arrived (ms).
    #[arg(long, env = "REVIEW_SVC_HTTP_HEADER_TIMEOUT_MS", default_value_t = DEFAULT_HEADER_TIMEOUT_MS)]
    pub http_header_timeout_ms: u64,
    /// Idle keep-alive connections are closed after this (ms).
    #[arg(long, env = "REVIEW_SVC_HTTP_IDLE_TIMEOUT_MS", default_value_t = DEFAULT_IDLE_TIMEOUT_MS)]
    pub http_idle_timeout_ms: u64,
    /// Deadline for one request, body included (ms).
    #[arg(long, env = "REVIEW_SVC_HTTP_REQUEST_TIMEOUT_MS", default_value_t = DEFAULT_REQUEST_TIMEOUT_MS)]
    pub http_request_timeout_ms: u64,
    /// Most connections at once.
    #[arg(long, env = "REVIEW_SVC_HTTP_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub http_max_connections: usize,
    /// Most requests in flight at once; more are shed with 503.
    #[arg(long, env = "REVIEW_SVC_HTTP_MAX_IN_FLIGHT", default_value_t = DEFAULT_MAX_IN_FLIGHT)]
    pub http_max_in_flight: usize,
}

impl Default for HttpArgs {
    fn default() -> Self {
        HttpArgs {
            http_header_timeout_ms: DEFAULT_HEADER_TIMEOUT_MS,
            http_idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            http_request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            http_max_connections: DEFAULT_MAX_CONNECTIONS,
            http_max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

impl HttpArgs {
    fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.http_header_timeout_ms)
    }
    fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.http_idle_timeout_ms)
    }
    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.http_request_timeout_ms)
    }
}

/// The per-request guards, as one layer for the router: header size, load
/// shedding, then the request deadline. Put it inside the metrics and trace
/// layers, so a shed or timed-out request is still traced and counted.
pub fn guard(router: Router, args: &HttpArgs) -> Router {
    let guard = Guard {
        permits: Arc::new(Semaphore::new(args.http_max_in_flight.max(1))),
        request_timeout: args.request_timeout(),
    };
    router.layer(axum::middleware::from_fn_with_state(guard, guard_request))
}

#[derive(Debug, Clone)]
struct Guard {
    permits: Arc<Semaphore>,
    request_timeout: Duration,
}

async fn guard_request(
    axum::extract::State(guard): axum::extract::State<Guard>,
    request: Request,
    next: Next,
) -> Response {
    let head_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if head_bytes > MAX_HEADER_BYTES {
        return closing(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("request headers exceed {MAX_HEADER_BYTES} bytes"),
        ));
    }
    // Shed rather than queue: a request waiting behind hundreds of others
    // would answer after its client gave up, and the queue is memory.
    let Ok(_permit) = guard.permits.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in flight; retry with backoff",
        )
        .into_response();
    };
    match tokio::time::timeout(guard.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => closing(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("request not completed within {:?}", guard.request_timeout),
        )),
    }
}

/// An error response after which the connection is not reused (the body
/// may not have been read to its end).
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// What a connection's watchdog and its IO share. Times are milliseconds
/// since the connection was accepted; `u64::MAX` means "none".
#[derive(Debug)]
struct ConnState {
    opened: Instant,
    /// Last time bytes arrived or a response completed.
    last_activity: AtomicU64,
    /// When the first byte of a head arrived while no request was in flight.
    head_started: AtomicU64,
    /// Requests handed to the router and not answered yet.
    in_flight: AtomicUsize,
    /// A router response is on its way to the socket (set when the router
    /// answered, cleared by the next write): whatever hyper writes while
    /// this is clear and a head is being read is hyper's own refusal.
    response_pending: std::sync::atomic::AtomicBool,
}

const NONE: u64 = u64::MAX;

impl ConnState {
    fn new() -> Self {
        ConnState {
            opened: Instant::now(),
            last_activity: AtomicU64::new(0),
            head_started: AtomicU64::new(NONE),
            in_flight: AtomicUsize::new(0),
            response_pending: std::sync::atomic::AtomicBool::new(false),
        }
    }
    fn now(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }
    fn read_some(&self) {
        let now = self.now();
        self.last_activity.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Acquire) == 0
            && !self.response_pending.load(Ordering::Acquire)
        {
            let _ =
                self.head_started
                    .compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(NONE, Ordering::Release);
    }
    fn request_finished(&self) {
        self.last_activity.store(self.now(), Ordering::Relaxed);
        self.response_pending.store(true, Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether bytes hyper is writing now are its own answer to a head it
    /// could not parse (no request reached the router for it).
    fn hypers_own_answer(&self, data: &[u8]) -> bool {
        if self.response_pending.swap(false, Ordering::AcqRel) {
            return false;
        }
        self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Acquire) != NONE
            && data.starts_with(b"HTTP/1.1 4")
            && data
                .windows(19)
                .any(|w| w.eq_ignore_ascii_case(b"content-length: 0\r\n"))
    }
    /// Why the connection should be closed now, if it should.
    fn expired(&self, header: Duration, idle: Duration) -> Option<&'static str> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let now = self.now();
        match self.head_started.load(Ordering::Acquire) {
            NONE => (now.saturating_sub(self.last_activity.load(Ordering::Relaxed))
                > idle.as_millis() as u64)
                .then_some("idle_timeout"),
            started => (now.saturating_sub(started) > header.as_millis() as u64)
                .then_some("header_timeout"),
        }
    }
}

/// The connection's IO, noting when bytes arrive, and putting our
/// `{error, reason}` body in place of the empty one hyper writes when it
/// refuses a head itself (400 for what is not HTTP, 431 past its buffer):
/// hyper has no hook for that response.
struct WatchedIo<IO> {
    io: IO,
    state: Arc<ConnState>,
    /// Our replacement of hyper's refusal, still to be written.
    replacement: Vec<u8>,
}

/// Our answer in place of hyper's bodiless refusal (status from its
/// status line).
fn replacement_for(data: &[u8]) -> Vec<u8> {
    let status: u16 = data
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let (status, code, reason, phrase) = match status {
        431 => (
            431,
            "headers_too_large",
            format!("request head exceeds {MAX_HEAD_BUFFER} bytes"),
            "Request Header Fields Too Large",
        ),
        414 => (
            414,
            "uri_too_long",
            "request URI is too long".to_owned(),
            "URI Too Long",
        ),
        _ => (
            400,
            "malformed_request",
            "the request is not a valid HTTP/1.1 request".to_owned(),
            "Bad Request",
        ),
    };
    let body = serde_json::json!({ "error": code, "reason": reason }).to_string();
    format!(
        "HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl<IO: AsyncWrite + Unpin> WatchedIo<IO> {
    /// Writes what is left of the replacement; `Ready(Ok)` once it is out.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.replacement.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.io).poll_write(cx, &self.replacement))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.replacement.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for WatchedIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.state.read_some();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for WatchedIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::task::ready!(self.drain(cx))?;
        if self.state.hypers_own_answer(data) {
            // hyper closes the connection after this answer, so nothing of
            // its own follows; ours goes out in its place (drained here or
            // by the flush or shutdown hyper does next).
            self.replacement = replacement_for(data);
            if let Poll::Ready(Err(e)) = self.drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(data.len()));
        }
        Pin::new(&mut self.io).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The router as hyper's service, marking each request in flight on its
/// connection so the watchdog leaves it alone.
#[derive(Clone)]
struct Tracked {
    router: Router,
    state: Arc<ConnState>,
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Tracked {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Self::Error>> + Send>>;

    fn call(&self, request: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        self.state.request_started();
        let state = self.state.clone();
        let router = self.router.clone();
        Box::pin(async move {
            /// Marks the request finished even if the connection drops it.
            struct Done(Arc<ConnState>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.request_finished();
                }
            }
            let _done = Done(state);
            router.oneshot(request.map(axum::body::Body::new)).await
        })
    }
}

/// The refusal a connection over the limit gets before it is closed.
fn too_many_connections(limit: usize) -> Vec<u8> {
    let reason = format!("more than {limit} connections open; retry with backoff");
    let body = serde_json::json!({ "error": "too_many_connections", "reason": reason }).to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `app` on `listener` until `shutdown`, then lets requests in flight
/// finish (connections are told to close after their current request).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    args: HttpArgs,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(args.http_max_connections.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.wait() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: keep serving the
                // connections we have, try again shortly.
                tracing::warn!(error = %e, "accepting an API connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            telemetry::request_failed("too_many_connections", &"connection limit reached");
            let limit = args.http_max_connections;
            // Answer, then read a little of what the client sent so closing
            // does not reset the connection before it reads the answer.
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    stream.write_all(&too_many_connections(limit)).await?;
                    stream.shutdown().await?;
                    let mut sink = [0u8; 4096];
                    while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
                    Ok::<_, std::io::Error>(())
                })
                .await;
            });
            continue;
        };
        while tasks.try_join_next().is_some() {}
        tasks.spawn(serve_connection(
            stream,
            peer,
            app.clone(),
            args.clone(),
            shutdown.clone(),
            permit,
        ));
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    args: HttpArgs,
    shutdown: Shutdown,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let state = Arc::new(ConnState::new());
    let io = WatchedIo {
        io: stream,
        state: state.clone(),
        replacement: Vec::new(),
    };
    let service = Tracked {
        router: app,
        state: state.clone(),
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .max_buf_size(MAX_HEAD_BUFFER)
        .header_read_timeout(None);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let (header, idle) = (args.header_timeout(), args.idle_timeout());
    let tick = header
        .min(idle)
        .div_f64(4.0)
        .clamp(Duration::from_millis(5), Duration::from_secs(1));
    let mut watchdog = tokio::time::interval(tick);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut draining = false;
    let result = loop {
        tokio::select! {
            result = connection.as_mut() => break result,
            () = shutdown.wait(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = watchdog.tick() => {
                if let Some(reason) = state.expired(header, idle) {
                    // Dropping the connection closes the socket.
                    telemetry::http_connection_closed(reason);
                    return;
                }
            }
        }
    };
    if let Err(e) = result {
        // hyper refused these heads itself (WatchedIo put our body in place
        // of its empty one) and closed: counted here.
        if e.is_parse_too_large() {
            telemetry::request_rejected(
                "headers_too_large",
                431,
                "request head over hyper's buffer",
            );
        } else if e.is_parse() {
            telemetry::request_rejected("malformed_request", 400, "not an HTTP/1.1 request");
        } else {
            tracing::debug!(%peer, error = %e, "API connection ended");
        }
    }
}
