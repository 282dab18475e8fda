//! W3C trace context (`traceparent`, `tracestate`) across every hop of the
//! pipeline, so one review is one trace: HTTP requests, Avro RPC call
//! metadata, the CDC change row, Kafka record headers.
//!
//! Everything goes through the global propagator that
//! [`telemetry::init`](crate::telemetry::init) installs (W3C TraceContext)
//! and the OpenTelemetry context of `tracing` spans (`tracing-opentelemetry`).
//! In a process that exports no spans there is no OpenTelemetry layer: then
//! injecting writes nothing and extracted parents are ignored, at no cost.
//!
//! Spans follow the OpenTelemetry semantic conventions: HTTP server spans
//! ([`http_server_span`]), RPC client/server spans (avro-rpc's trace layer,
//! `rpc.system = "apache_avro"`, wired here by [`rpc_client_layer`] and
//! [`rpc_server_layer`]), and messaging spans, which a service opens itself
//! around [`inject_kafka`] (`otel.kind = "producer"`, `messaging.*`) and
//! [`extract_kafka`] (`otel.kind = "consumer"`, parented to the producer's
//! context).
//!
//! A malformed incoming `traceparent` is ignored (the span starts a new
//! trace); it never fails a request or an event.

use std::collections::HashMap;

pub use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The W3C header (and metadata key) naming the parent span.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header carrying vendor trace state.
pub const TRACESTATE: &str = "tracestate";

/// A trace context as its two W3C header values, for storing beside data
/// (the CDC change row) and sending on later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct W3cContext {
    /// `traceparent`.
    pub traceparent: String,
    /// `tracestate`, when not empty.
    pub tracestate: Option<String>,
}

impl W3cContext {
    /// The context of `cx` as header values, or `None` when it has no valid
    /// span (nothing is being traced).
    pub fn of(cx: &Context) -> Option<W3cContext> {
        let mut fields = HashMap::new();
        inject(cx, &mut fields);
        let traceparent = fields.remove(TRACEPARENT)?;
        let tracestate = fields.remove(TRACESTATE).filter(|s| !s.is_empty());
        Some(W3cContext {
            traceparent,
            tracestate,
        })
    }

    /// The context of the current `tracing` span.
    pub fn current() -> Option<W3cContext> {
        Self::of(&tracing::Span::current().context())
    }

    /// The remote context these values name (an empty context when
    /// `traceparent` is malformed).
    pub fn context(&self) -> Context {
        let mut fields = HashMap::with_capacity(2);
        fields.insert(TRACEPARENT.to_owned(), self.traceparent.clone());
        if let Some(state) = &self.tracestate {
            fields.insert(TRACESTATE.to_owned(), state.clone());
        }
        extract(&fields)
    }
}

/// Writes `cx` through the global propagator into `carrier`.
pub fn inject(cx: &Context, carrier: &mut dyn Injector) {
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(cx, carrier));
}

/// Reads a remote context through the global propagator.
pub fn extract(carrier: &dyn Extractor) -> Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(carrier))
}

/// The OpenTelemetry context of `span` (an empty one when nothing is
/// exported), e.g. to inject into an outgoing record. Starts the span if it
/// had not started yet, so set its parent first.
pub fn context_of(span: &tracing::Span) -> Context {
    span.context()
}

/// Makes `parent` the parent of `span` when it names a valid remote span.
/// Must be called before the span is first entered.
pub fn set_parent(span: &tracing::Span, parent: Context) {
    if parent.span().span_context().is_valid() {
        // Fails only without an OpenTelemetry layer or once the span has
        // started: nothing to link then.
        let _ = span.set_parent(parent);
    }
}

/// Adds a link from `span` to the span `cx` names, if valid.
pub fn add_link(span: &tracing::Span, cx: &Context) {
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        span.add_link(sc);
    }
}

/// The trace id of `span` (lowercase hex), if it is being exported.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

struct HeaderMapExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderMapExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The remote context in HTTP request headers.
pub fn extract_http(headers: &http::HeaderMap) -> Context {
    extract(&HeaderMapExtractor(headers))
}

/// axum middleware: one server span per request (`otel.kind = "server"`,
/// named `METHOD route` after the matched route template), parented to the
/// request's `traceparent`, with the HTTP semantic-convention attributes;
/// 5xx answers mark the span as an error. Apply with
/// `router.layer(axum::middleware::from_fn(http_server_span))` so the
/// matched route is known.
pub async fn http_server_span(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument as _;
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.clone(),
    };
    let span = tracing::info_span!(
        "http.server",
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = route.as_deref(),
        url.path = %request.uri().path(),
        url.scheme = "http",
        http.response.status_code = tracing::field::Empty,
        user_agent.original = request
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    );
    set_parent(&span, extract_http(request.headers()));
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    response
}

/// The span of a batch's shared work (`otel.name = name`): a child of the
/// first record's span, so a lone event stays one unbroken trace, and linked
/// to every other record's span, since one RPC or one write serves them all.
/// Set each record span's parent before calling this.
pub fn batch_span(name: &str, records: &[tracing::Span]) -> tracing::Span {
    let Some(first) = records.first().filter(|_| crate::telemetry::exporting()) else {
        return tracing::Span::none();
    };
    let span = tracing::info_span!(
        parent: first,
        "batch",
        otel.name = %name,
        cinerec.batch.size = records.len(),
    );
    for other in &records[1..] {
        add_link(&span, &context_of(other));
    }
    span
}

#[cfg(feature = "kafka")]
pub use self::kafka::{consumer_span, extract_kafka, inject_kafka, producer_span};

#[cfg(feature = "kafka")]
mod kafka {
    use opentelemetry::Context;
    use opentelemetry::propagation::Extractor;
    use rdkafka::Message;
    use rdkafka::message::{Header, Headers, OwnedHeaders};

    struct KafkaExtractor<'a, H>(&'a H);

    impl<H: Headers> Extractor for KafkaExtractor<'_, H> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|h| h.key.eq_ignore_ascii_case(key))
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|h| h.key).collect()
        }
    }

    /// The remote context in a Kafka record's headers (`traceparent`,
    /// `tracestate`); an empty context when there are none or they are
    /// malformed. Works on `BorrowedHeaders` and `OwnedHeaders`.
    pub fn extract_kafka<H: Headers>(headers: Option<&H>) -> Context {
        match headers {
            Some(h) => super::extract(&KafkaExtractor(h)),
            None => Context::new(),
        }
    }

    /// The consumer span of one record (`<topic> process`, OTel messaging
    /// conventions), parented to the producer's context in its headers.
    /// A disabled span when this process exports nothing: per-record spans
    /// would only cost the hot path.
    pub fn consumer_span<M: Message>(m: &M, group: &str) -> tracing::Span {
        if !crate::telemetry::exporting() {
            return tracing::Span::none();
        }
        let span = tracing::info_span!(
            "kafka.consume",
            otel.name = %format_args!("{} process", m.topic()),
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.operation.type = "process",
            messaging.operation.name = "process",
            messaging.destination.name = %m.topic(),
            messaging.destination.partition.id = %m.partition(),
            messaging.kafka.offset = m.offset(),
            messaging.consumer.group.name = %group,
            messaging.kafka.message.key = m.key().and_then(|k| std::str::from_utf8(k).ok()),
        );
        super::set_parent(&span, extract_kafka(m.headers()));
        span
    }

    /// The producer span of one record (`<topic> publish`), a child of
    /// `parent` (or of the current span). Inject its context into the
    /// record's headers with [`inject_kafka`] and keep it until the broker
    /// acknowledges the record. Disabled when this process exports nothing.
    pub fn producer_span(parent: Option<&tracing::Span>, topic: &str, key: &str) -> tracing::Span {
        if !crate::telemetry::exporting() {
            return tracing::Span::none();
        }
        let parent = parent.cloned().unwrap_or_else(tracing::Span::current);
        tracing::info_span!(
            parent: &parent,
            "kafka.produce",
            otel.name = %format_args!("{topic} publish"),
            otel.kind = "producer",
            messaging.system = "kafka",
            messaging.operation.type = "send",
            messaging.operation.name = "send",
            messaging.destination.name = %topic,
            messaging.kafka.message.key = %key,
        )
    }

    /// `headers` with `cx` added as `traceparent` (and `tracestate`).
    pub fn inject_kafka(cx: &Context, headers: OwnedHeaders) -> OwnedHeaders {
        let mut fields = std::collections::HashMap::new();
        super::inject(cx, &mut fields);
        let mut headers = headers;
        for key in [super::TRACEPARENT, super::TRACESTATE] {
            if let Some(value) = fields.get(key).filter(|v| !v.is_empty()) {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_str()),
                });
            }
        }
        headers
    }
}

#[cfg(feature = "avro-rpc")]
pub use self::rpc::{full_name, rpc_client_layer, rpc_extractor, rpc_injector, rpc_server_layer};

#[cfg(feature = "avro-rpc")]
mod rpc {
    use std::sync::Arc;

    use avro_rpc::Metadata;
    use avro_rpc::layer::trace::{Extractor, Injector, TraceHandlerLayer, TraceLayer};
    use carrier::MetadataCarrier;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    /// Call metadata values are bytes; W3C values are ASCII.
    mod carrier {
        use avro_rpc::Metadata;

        pub(super) struct MetadataCarrier<'a>(pub(super) &'a mut Metadata);

        impl opentelemetry::propagation::Injector for MetadataCarrier<'_> {
            fn set(&mut self, key: &str, value: String) {
                self.0.insert(key.to_owned(), value.into_bytes().into());
            }
        }

        pub(super) struct MetadataReader<'a>(pub(super) &'a Metadata);

        impl opentelemetry::propagation::Extractor for MetadataReader<'_> {
            fn get(&self, key: &str) -> Option<&str> {
                self.0.get(key).and_then(|v| std::str::from_utf8(v).ok())
            }
            fn keys(&self) -> Vec<&str> {
                self.0.keys().map(String::as_str).collect()
            }
        }
    }

    /// avro-rpc client injector: runs inside the call's client span and
    /// writes that span's context into the call metadata.
    pub fn rpc_injector() -> Injector {
        Arc::new(|metadata: &mut Metadata| {
            let cx = tracing::Span::current().context();
            super::inject(&cx, &mut MetadataCarrier(metadata));
        })
    }

    /// avro-rpc server extractor: parents the server span to the caller's
    /// context from the call metadata.
    pub fn rpc_extractor() -> Extractor {
        Arc::new(|metadata: &Metadata, span: &tracing::Span| {
            let parent = super::extract(&carrier::MetadataReader(metadata));
            super::set_parent(span, parent);
        })
    }

    /// A protocol's full name (`org.cinerec.review.ReviewService`): the
    /// spans' `rpc.service`.
    pub fn full_name(protocol: &avro_rpc::Protocol) -> String {
        match protocol.namespace() {
            Some(ns) if !ns.is_empty() => format!("{ns}.{}", protocol.name()),
            _ => protocol.name().to_owned(),
        }
    }

    /// avro-rpc's client trace layer for calls of `protocol`: one client
    /// span per call (`otel.name = Service/message`), its context injected
    /// into the call metadata. Put it outside retries so one logical call
    /// is one span.
    pub fn rpc_client_layer(protocol: &avro_rpc::Protocol) -> TraceLayer {
        TraceLayer::new(full_name(protocol)).with_injector(rpc_injector())
    }

    /// avro-rpc's server trace layer for a responder of `protocol`: one
    /// server span per call, a child of the caller's span.
    pub fn rpc_server_layer(protocol: &avro_rpc::Protocol) -> TraceHandlerLayer {
        TraceHandlerLayer::new(full_name(protocol)).with_extractor(rpc_extractor())
    }
}

#[cfg(test)]
mod tests;
