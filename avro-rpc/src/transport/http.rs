//! The HTTP transport: each call is one `POST` whose body is the request
//! message framed as the spec's buffer list, `Content-Type: avro/binary`,
//! answered with status 200 even for application errors (those travel inside
//! the Avro response). HTTP is stateless, so every request carries a handshake.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};

use crate::error::{Error, Kind, Result};
use crate::limits::Limits;
use crate::wire;

/// The media type of Avro RPC bodies.
pub const CONTENT_TYPE: &str = "avro/binary";

/// Buffer size when framing bodies (the Java implementation's chunk size).
const CHUNK: usize = 8192;

fn body_limit(limits: &Limits) -> usize {
    // Frame overhead: 4 bytes per buffer plus the terminator.
    limits
        .max_message_bytes
        .saturating_add(4 * limits.max_buffers.saturating_add(1))
}

#[cfg(feature = "client")]
pub use self::client::HttpTransport;

#[cfg(feature = "client")]
mod client {
    use super::*;
    use futures::future::BoxFuture;
    use hyper_util::client::legacy::Client as HyperClient;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;
    use std::fmt;

    /// Client side of the HTTP transport, with hyper's connection pool.
    #[derive(Clone)]
    pub struct HttpTransport {
        uri: http::Uri,
        client: HyperClient<HttpConnector, Full<Bytes>>,
        limits: Limits,
    }

    impl fmt::Debug for HttpTransport {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("HttpTransport")
                .field("uri", &self.uri)
                .finish_non_exhaustive()
        }
    }

    impl HttpTransport {
        /// Posts to `uri` (e.g. `http://127.0.0.1:8080/`).
        pub fn new(uri: &str) -> Result<Self> {
            let uri: http::Uri = uri
                .parse()
                .map_err(|e| Error::with_source(Kind::Transport, format!("bad URI {uri:?}"), e))?;
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            Ok(HttpTransport {
                uri,
                client: HyperClient::builder(TokioExecutor::new()).build(connector),
                limits: Limits::default(),
            })
        }

        /// Replaces the response size limits.
        pub fn with_limits(mut self, limits: Limits) -> Self {
            self.limits = limits;
            self
        }
    }

    impl crate::client::Transport for HttpTransport {
        fn transceive(&self, message: Bytes) -> BoxFuture<'static, Result<Bytes>> {
            let this = self.clone();
            Box::pin(async move {
                let body = wire::frame_buffers(&message, CHUNK);
                let request = http::Request::post(this.uri.clone())
                    .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
                    .header(http::header::CONTENT_LENGTH, body.len())
                    .body(Full::new(body))
                    .map_err(|e| Error::with_source(Kind::Transport, "bad request", e))?;
                let response =
                    this.client.request(request).await.map_err(|e| {
                        Error::with_source(Kind::Transport, "HTTP request failed", e)
                    })?;
                let status = response.status();
                let body = Limited::new(response.into_body(), body_limit(&this.limits))
                    .collect()
                    .await
                    .map_err(|e| {
                        Error::with_source(Kind::Transport, "reading the HTTP response failed", e)
                    })?
                    .to_bytes();
                if status != http::StatusCode::OK {
                    let reason = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
                    return Err(Error::new(
                        Kind::Transport,
                        format!("HTTP {status}: {reason}"),
                    ));
                }
                wire::unframe_buffers(&body, &this.limits)
            })
        }

        fn send(&self, message: Bytes) -> BoxFuture<'static, Result<()>> {
            let fut = self.transceive(message);
            Box::pin(async move { fut.await.map(|_| ()) })
        }

        fn is_stateful(&self) -> bool {
            false
        }

        fn endpoint(&self) -> String {
            self.uri.to_string()
        }
    }
}

#[cfg(feature = "server")]
pub use self::server::{HttpService, serve_http, serve_http_until};

#[cfg(feature = "server")]
mod server {
    use super::*;
    use crate::error::BoxError;
    use crate::server::{Request, Responder, Response};
    use hyper_util::rt::{TokioIo, TokioTimer};
    use std::convert::Infallible;
    use std::fmt;
    use std::sync::Arc;
    use tokio::net::TcpListener;
    use tower::Service;

    /// Serves HTTP/1.1 on `listener` forever, one task per connection.
    pub async fn serve_http<S>(listener: TcpListener, responder: Arc<Responder<S>>) -> Result<()>
    where
        S: Service<Request, Response = Response> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send,
    {
        serve_http_until(listener, responder, std::future::pending()).await
    }

    /// Like [`serve_http`] until `signal` completes; then stops accepting,
    /// lets every connection finish the request it is serving (idle ones
    /// close at once) and returns when all have closed.
    pub async fn serve_http_until<S, F>(
        listener: TcpListener,
        responder: Arc<Responder<S>>,
        signal: F,
    ) -> Result<()>
    where
        S: Service<Request, Response = Response> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send,
        F: std::future::Future<Output = ()>,
    {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut connections = tokio::task::JoinSet::new();
        tokio::pin!(signal);
        loop {
            let accepted = tokio::select! {
                () = &mut signal => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the
                    // connections there are, try again shortly.
                    tracing::warn!(error = %e, "accepting an avro-rpc HTTP connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let frame_timeout = responder.limits().frame_timeout;
            let service = HttpService {
                responder: responder.clone(),
            };
            let mut stop = stop_rx.clone();
            while connections.try_join_next().is_some() {}
            connections.spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let service = service.clone();
                    async move { Ok::<_, Infallible>(service.handle(req).await) }
                });
                // The header-read timer also runs while a keep-alive
                // connection waits for its next request, so an idle or
                // half-sent head is closed after `frame_timeout`; the body
                // has its own deadline in `handle`.
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(frame_timeout)
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::pin!(connection);
                let stopped = async move {
                    // The guard `wait_for` returns is not Send: drop it here.
                    let _ = stop.wait_for(|stop| *stop).await.map(|_| ());
                };
                let result = tokio::select! {
                    result = connection.as_mut() => result,
                    () = stopped => {
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "avro-rpc HTTP connection ended");
                }
            });
        }
        let _ = stop_tx.send(true);
        while connections.join_next().await.is_some() {}
        Ok(())
    }

    /// Why a request body was not taken.
    enum BodyRefused {
        TooLarge,
        Budget(Error),
        Read(BoxError),
    }

    /// Reads a body up to `limit` bytes, charging what it holds past
    /// [`LARGE_FRAME`](crate::budget::LARGE_FRAME) to `held` as it arrives
    /// (in 64 KiB steps, so the shared counter is not touched per chunk).
    async fn collect_body<B>(
        body: B,
        limit: usize,
        held: &mut crate::budget::Held<'_>,
        limits: &Limits,
    ) -> std::result::Result<Bytes, BodyRefused>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        const STEP: usize = 64 * 1024;
        let mut body = std::pin::pin!(body);
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyRefused::Read(e.into()))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            let len = buf.len() + data.len();
            if len > limit {
                return Err(BodyRefused::TooLarge);
            }
            if len > crate::budget::LARGE_FRAME {
                held.charge_to(len.next_multiple_of(STEP), limits)
                    .map_err(BodyRefused::Budget)?;
            }
            buf.extend_from_slice(&data);
        }
        Ok(buf.freeze())
    }

    /// Turns HTTP requests into Avro RPC exchanges; usable inside any hyper
    /// or axum server through [`HttpService::handle`].
    pub struct HttpService<S> {
        responder: Arc<Responder<S>>,
    }

    impl<S> Clone for HttpService<S> {
        fn clone(&self) -> Self {
            HttpService {
                responder: self.responder.clone(),
            }
        }
    }

    impl<S> fmt::Debug for HttpService<S> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("HttpService").finish_non_exhaustive()
        }
    }

    fn plain(status: http::StatusCode, reason: String) -> http::Response<Full<Bytes>> {
        let mut r = http::Response::new(Full::new(Bytes::from(reason)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    }

    /// A refusal after which the connection cannot carry another request:
    /// the body was not (fully) read, so the next bytes are not a request head.
    fn closing(status: http::StatusCode, reason: String) -> http::Response<Full<Bytes>> {
        let mut r = plain(status, reason);
        r.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        r
    }

    impl<S> HttpService<S>
    where
        S: Service<Request, Response = Response> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send,
    {
        /// Wraps a responder.
        pub fn new(responder: Arc<Responder<S>>) -> Self {
            HttpService { responder }
        }

        /// Answers one request. Protocol-level failures (wrong method, media
        /// type, undecodable body) are HTTP 4xx with a reason; everything the
        /// Avro layer can express (including errors) is a 200.
        pub async fn handle<B>(&self, req: http::Request<B>) -> http::Response<Full<Bytes>>
        where
            B: hyper::body::Body<Data = Bytes>,
            B::Error: Into<BoxError>,
        {
            if req.method() != http::Method::POST {
                return plain(
                    http::StatusCode::METHOD_NOT_ALLOWED,
                    "Avro RPC needs POST".into(),
                );
            }
            let ct = req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !ct.starts_with(CONTENT_TYPE) {
                return plain(
                    http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!("Content-Type must be {CONTENT_TYPE}"),
                );
            }
            let limits = *self.responder.limits();
            let limit = body_limit(&limits);
            // A declared Content-Length above the limit is refused before
            // any of the body is awaited (hyper's size hint is that length).
            let body = req.into_body();
            let declared = body.size_hint().lower();
            if declared > limit as u64 {
                return closing(
                    http::StatusCode::PAYLOAD_TOO_LARGE,
                    format!("declared body of {declared} bytes exceeds the limit of {limit} bytes"),
                );
            }
            // A large body is charged to the server's budget for incomplete
            // messages: a declared one before it is awaited, a chunked one
            // as it arrives.
            let mut held = crate::budget::Held::new(Some(self.responder.frame_budget()));
            if declared > crate::budget::LARGE_FRAME as u64
                && let Err(e) = held.charge_to(declared as usize, &limits)
            {
                return closing(http::StatusCode::SERVICE_UNAVAILABLE, e.to_string());
            }
            let collected = tokio::time::timeout(
                limits.frame_timeout,
                collect_body(body, limit, &mut held, &limits),
            )
            .await;
            drop(held);
            let body = match collected {
                Ok(Ok(b)) => b,
                Ok(Err(BodyRefused::TooLarge)) => {
                    return closing(
                        http::StatusCode::PAYLOAD_TOO_LARGE,
                        format!("body exceeds the limit of {limit} bytes"),
                    );
                }
                Ok(Err(BodyRefused::Budget(e))) => {
                    return closing(http::StatusCode::SERVICE_UNAVAILABLE, e.to_string());
                }
                Ok(Err(BodyRefused::Read(e))) => {
                    return closing(
                        http::StatusCode::BAD_REQUEST,
                        format!("reading the body failed: {e}"),
                    );
                }
                Err(_) => {
                    return closing(
                        http::StatusCode::REQUEST_TIMEOUT,
                        format!("body not complete within {:?}", limits.frame_timeout),
                    );
                }
            };
            let message = match wire::unframe_buffers(&body, &limits) {
                Ok(m) => m,
                Err(e) => return plain(http::StatusCode::BAD_REQUEST, e.to_string()),
            };
            match self.responder.respond_stateless(&message).await {
                Ok(reply) => {
                    let body = wire::frame_buffers(&reply, CHUNK);
                    let mut r = http::Response::new(Full::new(body.clone()));
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static(CONTENT_TYPE),
                    );
                    r.headers_mut().insert(
                        http::header::CONTENT_LENGTH,
                        http::HeaderValue::from(body.len()),
                    );
                    r
                }
                Err(e) => plain(http::StatusCode::BAD_REQUEST, e.to_string()),
            }
        }
    }
}
