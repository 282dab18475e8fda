//! Deadlines that travel with the call.
//!
//! The client side ([`Deadline`]) bounds each call and writes the time left
//! into the call metadata under [`TIMEOUT_KEY`]; the server side
//! ([`HonourDeadline`]) reads it and stops waiting for the handler when it
//! runs out, answering with a system error instead of doing work nobody will
//! read. The value is *relative* (microseconds left, ASCII decimal) rather
//! than a wall-clock instant, so the peers' clocks need not agree; the
//! network delay is the error margin, as with gRPC's `grpc-timeout`.

use std::time::Duration;

/// Metadata key carrying the time the client still waits, in microseconds
/// as ASCII decimal (e.g. `b"250000"`).
pub const TIMEOUT_KEY: &str = "avro-rpc-timeout-us";

/// Reads the timeout from call metadata; malformed values are ignored (a
/// peer's bad metadata must not fail the call).
pub fn timeout_from(metadata: &crate::Metadata) -> Option<Duration> {
    let raw = metadata.get(TIMEOUT_KEY)?;
    let micros: u64 = std::str::from_utf8(raw).ok()?.trim().parse().ok()?;
    Some(Duration::from_micros(micros))
}

/// Writes `timeout` into call metadata, keeping an earlier (shorter) one.
pub fn set_timeout(metadata: &mut crate::Metadata, timeout: Duration) {
    let timeout = match timeout_from(metadata) {
        Some(existing) => existing.min(timeout),
        None => timeout,
    };
    let micros = u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX);
    metadata.insert(TIMEOUT_KEY.into(), micros.to_string().into());
}

#[cfg(feature = "client")]
pub use self::client::{Deadline, DeadlineLayer, ResponseFuture};

#[cfg(feature = "client")]
mod client {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, ready};
    use std::time::Duration;

    use pin_project_lite::pin_project;
    use tokio::time::Sleep;
    use tower::{Layer, Service};

    use crate::client::{Call, Reply};
    use crate::error::{Error, Kind};

    /// Bounds every call by `timeout` (or the shorter one a caller already
    /// put in the metadata) and tells the server.
    #[derive(Debug, Clone)]
    pub struct Deadline<S> {
        inner: S,
        timeout: Duration,
    }

    /// Applies [`Deadline`].
    #[derive(Debug, Clone, Copy)]
    pub struct DeadlineLayer {
        timeout: Duration,
    }

    impl DeadlineLayer {
        /// Calls that carry no shorter timeout get `timeout`.
        pub fn new(timeout: Duration) -> Self {
            DeadlineLayer { timeout }
        }
    }

    impl<S> Layer<S> for DeadlineLayer {
        type Service = Deadline<S>;
        fn layer(&self, inner: S) -> Deadline<S> {
            Deadline {
                inner,
                timeout: self.timeout,
            }
        }
    }

    impl<S> Service<Call> for Deadline<S>
    where
        S: Service<Call, Response = Reply>,
        S::Error: From<Error>,
    {
        type Response = Reply;
        type Error = S::Error;
        type Future = ResponseFuture<S::Future>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, mut call: Call) -> Self::Future {
            super::set_timeout(&mut call.metadata, self.timeout);
            let timeout = super::timeout_from(&call.metadata).unwrap_or(self.timeout);
            ResponseFuture {
                inner: self.inner.call(call),
                sleep: tokio::time::sleep(timeout),
                timeout,
            }
        }
    }

    pin_project! {
        /// Response future of [`Deadline`].
        #[derive(Debug)]
        pub struct ResponseFuture<F> {
            #[pin]
            inner: F,
            #[pin]
            sleep: Sleep,
            timeout: Duration,
        }
    }

    impl<F, E> Future for ResponseFuture<F>
    where
        F: Future<Output = Result<Reply, E>>,
        E: From<Error>,
    {
        type Output = Result<Reply, E>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = self.project();
            if let Poll::Ready(r) = this.inner.poll(cx) {
                return Poll::Ready(r);
            }
            ready!(this.sleep.poll(cx));
            Poll::Ready(Err(Error::new(
                Kind::Timeout,
                format!("no reply within {:?}", this.timeout),
            )
            .into()))
        }
    }
}

#[cfg(feature = "server")]
pub use self::server::{HonourDeadline, HonourDeadlineLayer, HonourFuture};

#[cfg(feature = "server")]
mod server {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, ready};

    use pin_project_lite::pin_project;
    use tokio::time::Sleep;
    use tower::{Layer, Service};

    use crate::server::{Request, Response};

    /// Wraps a handler so it is abandoned when the client's deadline (from
    /// the call metadata) passes; the client gets a system error saying so.
    /// Calls without a deadline run unbounded.
    #[derive(Debug, Clone)]
    pub struct HonourDeadline<S> {
        inner: S,
    }

    /// Applies [`HonourDeadline`] to a handler.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct HonourDeadlineLayer;

    impl HonourDeadlineLayer {
        /// The layer.
        pub fn new() -> Self {
            HonourDeadlineLayer
        }
    }

    impl<S> Layer<S> for HonourDeadlineLayer {
        type Service = HonourDeadline<S>;
        fn layer(&self, inner: S) -> HonourDeadline<S> {
            HonourDeadline { inner }
        }
    }

    impl<S> Service<Request> for HonourDeadline<S>
    where
        S: Service<Request, Response = Response>,
    {
        type Response = Response;
        type Error = S::Error;
        type Future = HonourFuture<S::Future>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, request: Request) -> Self::Future {
            let timeout = super::timeout_from(&request.metadata);
            HonourFuture {
                inner: self.inner.call(request),
                sleep: timeout.map(tokio::time::sleep),
            }
        }
    }

    pin_project! {
        /// Response future of [`HonourDeadline`].
        #[derive(Debug)]
        pub struct HonourFuture<F> {
            #[pin]
            inner: F,
            #[pin]
            sleep: Option<Sleep>,
        }
    }

    impl<F, E> Future for HonourFuture<F>
    where
        F: Future<Output = Result<Response, E>>,
    {
        type Output = Result<Response, E>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = self.project();
            if let Poll::Ready(r) = this.inner.poll(cx) {
                return Poll::Ready(r);
            }
            if let Some(sleep) = this.sleep.as_pin_mut() {
                ready!(sleep.poll(cx));
                tracing::debug!("call abandoned: client deadline passed");
                return Poll::Ready(Ok(Response::system_error("deadline exceeded")));
            }
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests;
