//! `tracing` spans for calls, named and attributed after the OpenTelemetry
//! RPC semantic conventions (`rpc.system = "apache_avro"`, `rpc.service`,
//! `rpc.method`, `otel.kind`, `otel.status_code`), so a
//! `tracing-opentelemetry` subscriber exports them as proper RPC spans.
//!
//! Context propagation is a seam rather than a dependency: the client layer
//! calls an *injector* inside the call's span to write the trace context
//! into the call metadata (e.g. W3C `traceparent` from the current OTel
//! context), and the server layer calls an *extractor* with the metadata and
//! the new span to set its parent. Whoever sets up OpenTelemetry supplies
//! the two closures; without them the spans are still emitted, unlinked.
//! [`w3c`] supplies a ready pair for W3C `traceparent` without OpenTelemetry.

use std::sync::Arc;

use tracing::Span;

use crate::Metadata;

/// Writes the current trace context into outgoing call metadata.
pub type Injector = Arc<dyn Fn(&mut Metadata) + Send + Sync>;

/// Links a server span to the trace context found in incoming metadata.
pub type Extractor = Arc<dyn Fn(&Metadata, &Span) + Send + Sync>;

/// The `rpc.system` value the OpenTelemetry conventions assign to Avro RPC.
pub const RPC_SYSTEM: &str = "apache_avro";

#[cfg(any(feature = "client", feature = "server"))]
pub mod w3c;

#[cfg(feature = "client")]
pub use self::client::{ResponseFuture, Trace, TraceLayer};

#[cfg(feature = "client")]
mod client {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, ready};

    use pin_project_lite::pin_project;
    use tower::{Layer, Service};
    use tracing::Span;

    use super::{Injector, RPC_SYSTEM};
    use crate::client::{Call, Reply};

    /// Wraps each call in a client span and injects the trace context.
    #[derive(Clone)]
    pub struct Trace<S> {
        inner: S,
        service: Arc<str>,
        inject: Option<Injector>,
    }

    impl<S: std::fmt::Debug> std::fmt::Debug for Trace<S> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Trace")
                .field("inner", &self.inner)
                .field("service", &self.service)
                .finish_non_exhaustive()
        }
    }

    /// Applies [`Trace`].
    #[derive(Clone)]
    pub struct TraceLayer {
        service: Arc<str>,
        inject: Option<Injector>,
    }

    impl std::fmt::Debug for TraceLayer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("TraceLayer")
                .field("service", &self.service)
                .finish_non_exhaustive()
        }
    }

    impl TraceLayer {
        /// Spans name `service` (the protocol's full name) as `rpc.service`.
        pub fn new(service: impl Into<Arc<str>>) -> Self {
            TraceLayer {
                service: service.into(),
                inject: None,
            }
        }

        /// Calls `inject` inside each call's span to write trace context
        /// into the call metadata.
        pub fn with_injector(mut self, inject: Injector) -> Self {
            self.inject = Some(inject);
            self
        }
    }

    impl<S> Layer<S> for TraceLayer {
        type Service = Trace<S>;
        fn layer(&self, inner: S) -> Trace<S> {
            Trace {
                inner,
                service: self.service.clone(),
                inject: self.inject.clone(),
            }
        }
    }

    impl<S> Service<Call> for Trace<S>
    where
        S: Service<Call, Response = Reply>,
        S::Error: std::fmt::Display,
    {
        type Response = Reply;
        type Error = S::Error;
        type Future = ResponseFuture<S::Future>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, mut call: Call) -> Self::Future {
            let span = tracing::info_span!(
                "avro_rpc.client",
                otel.name = %format_args!("{}/{}", self.service, call.message),
                otel.kind = "client",
                otel.status_code = tracing::field::Empty,
                rpc.system = RPC_SYSTEM,
                rpc.service = %self.service,
                rpc.method = %call.message,
                error = tracing::field::Empty,
            );
            let inner = {
                let _entered = span.enter();
                if let Some(inject) = &self.inject {
                    inject(&mut call.metadata);
                }
                self.inner.call(call)
            };
            ResponseFuture { inner, span }
        }
    }

    pin_project! {
        /// Response future of [`Trace`].
        #[derive(Debug)]
        pub struct ResponseFuture<F> {
            #[pin]
            inner: F,
            span: Span,
        }
    }

    impl<F, E> Future for ResponseFuture<F>
    where
        F: Future<Output = Result<Reply, E>>,
        E: std::fmt::Display,
    {
        type Output = Result<Reply, E>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = self.project();
            let _entered = this.span.enter();
            let out = ready!(this.inner.poll(cx));
            match &out {
                Ok(reply) => match &reply.result {
                    Ok(_) => {
                        this.span.record("otel.status_code", "OK");
                    }
                    Err(e) => {
                        this.span.record("otel.status_code", "ERROR");
                        this.span.record("error", tracing::field::debug(e));
                    }
                },
                Err(e) => {
                    this.span.record("otel.status_code", "ERROR");
                    this.span.record("error", tracing::field::display(e));
                }
            }
            Poll::Ready(out)
        }
    }
}

#[cfg(feature = "server")]
pub use self::server::{TraceHandler, TraceHandlerFuture, TraceHandlerLayer};

#[cfg(feature = "server")]
mod server {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, ready};

    use pin_project_lite::pin_project;
    use tower::{Layer, Service};
    use tracing::Span;

    use super::{Extractor, RPC_SYSTEM};
    use crate::server::{Request, Response};

    /// Wraps each handled call in a server span linked by the extractor.
    #[derive(Clone)]
    pub struct TraceHandler<S> {
        inner: S,
        service: Arc<str>,
        extract: Option<Extractor>,
    }

    impl<S: std::fmt::Debug> std::fmt::Debug for TraceHandler<S> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("TraceHandler")
                .field("inner", &self.inner)
                .field("service", &self.service)
                .finish_non_exhaustive()
        }
    }

    /// Applies [`TraceHandler`] to a handler.
    #[derive(Clone)]
    pub struct TraceHandlerLayer {
        service: Arc<str>,
        extract: Option<Extractor>,
    }

    impl std::fmt::Debug for TraceHandlerLayer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("TraceHandlerLayer")
                .field("service", &self.service)
                .finish_non_exhaustive()
        }
    }

    impl TraceHandlerLayer {
        /// Spans name `service` (the protocol's full name) as `rpc.service`.
        pub fn new(service: impl Into<Arc<str>>) -> Self {
            TraceHandlerLayer {
                service: service.into(),
                extract: None,
            }
        }

        /// Calls `extract` with each call's metadata and its new span, to
        /// set the span's remote parent.
        pub fn with_extractor(mut self, extract: Extractor) -> Self {
            self.extract = Some(extract);
            self
        }
    }

    impl<S> Layer<S> for TraceHandlerLayer {
        type Service = TraceHandler<S>;
        fn layer(&self, inner: S) -> TraceHandler<S> {
            TraceHandler {
                inner,
                service: self.service.clone(),
                extract: self.extract.clone(),
            }
        }
    }

    impl<S> Service<Request> for TraceHandler<S>
    where
        S: Service<Request, Response = Response>,
    {
        type Response = Response;
        type Error = S::Error;
        type Future = TraceHandlerFuture<S::Future>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, request: Request) -> Self::Future {
            let span = tracing::info_span!(
                "avro_rpc.server",
                otel.name = %format_args!("{}/{}", self.service, request.message.name()),
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
                rpc.system = RPC_SYSTEM,
                rpc.service = %self.service,
                rpc.method = %request.message.name(),
                error = tracing::field::Empty,
                trace_id = tracing::field::Empty,
            );
            if let Some(extract) = &self.extract {
                extract(&request.metadata, &span);
            }
            let inner = {
                let _entered = span.enter();
                self.inner.call(request)
            };
            TraceHandlerFuture { inner, span }
        }
    }

    pin_project! {
        /// Response future of [`TraceHandler`].
        #[derive(Debug)]
        pub struct TraceHandlerFuture<F> {
            #[pin]
            inner: F,
            span: Span,
        }
    }

    impl<F, E> Future for TraceHandlerFuture<F>
    where
        F: Future<Output = Result<Response, E>>,
    {
        type Output = Result<Response, E>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = self.project();
            let _entered = this.span.enter();
            let out = ready!(this.inner.poll(cx));
            match &out {
                Ok(Response { result: Ok(_), .. }) => {
                    this.span.record("otel.status_code", "OK");
                }
                Ok(Response { result: Err(e), .. }) => {
                    this.span.record("otel.status_code", "ERROR");
                    this.span.record("error", tracing::field::debug(e));
                }
                Err(_) => {
                    this.span.record("otel.status_code", "ERROR");
                }
            }
            Poll::Ready(out)
        }
    }
}
