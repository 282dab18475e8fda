//! Round trips of the trace context through each carrier, and parenting of
//! `tracing` spans under an OpenTelemetry layer.

use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_subscriber::prelude::*;

use super::*;

const SENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn propagator() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
}

fn remote() -> Context {
    W3cContext {
        traceparent: SENT.into(),
        tracestate: Some("cinerec=1".into()),
    }
    .context()
}

#[test]
fn w3c_values_round_trip() {
    propagator();
    let cx = remote();
    let sc = cx.span().span_context().clone();
    assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
    assert_eq!(
        W3cContext::of(&cx),
        Some(W3cContext {
            traceparent: SENT.into(),
            tracestate: Some("cinerec=1".into()),
        })
    );
}

#[test]
fn malformed_or_absent_traceparent_is_no_context() {
    propagator();
    for bad in [
        "",
        "00-xyz",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    ] {
        let cx = W3cContext {
            traceparent: bad.into(),
            tracestate: None,
        }
        .context();
        assert!(!cx.span().span_context().is_valid(), "{bad:?}");
        assert_eq!(W3cContext::of(&cx), None);
    }
}

#[test]
fn http_headers_are_extracted() {
    propagator();
    let mut headers = http::HeaderMap::new();
    headers.insert("traceparent", http::HeaderValue::from_static(SENT));
    let cx = extract_http(&headers);
    assert_eq!(
        W3cContext::of(&cx).map(|w| w.traceparent),
        Some(SENT.to_owned())
    );
    assert!(
        !extract_http(&http::HeaderMap::new())
            .span()
            .span_context()
            .is_valid()
    );
}

#[cfg(feature = "kafka")]
#[test]
fn kafka_headers_round_trip_beside_other_headers() {
    use rdkafka::message::{Header, Headers as _, OwnedHeaders};
    propagator();
    let headers = OwnedHeaders::new().insert(Header {
        key: "cinerec.other",
        value: Some("x"),
    });
    let headers = inject_kafka(&remote(), headers);
    assert_eq!(headers.count(), 3);
    let back = extract_kafka(Some(&headers));
    assert_eq!(W3cContext::of(&back), W3cContext::of(&remote()));
    // The borrowed form a consumer sees reads the same.
    let borrowed = headers.as_borrowed();
    let back = extract_kafka(Some(borrowed));
    assert_eq!(
        back.span().span_context().trace_id(),
        remote().span().span_context().trace_id()
    );
    assert!(
        !extract_kafka::<OwnedHeaders>(None)
            .span()
            .span_context()
            .is_valid()
    );
    // Nothing to inject: headers unchanged.
    assert_eq!(
        inject_kafka(&Context::new(), OwnedHeaders::new()).count(),
        0
    );
}

#[test]
fn a_span_continues_the_remote_trace_under_the_otel_layer() {
    propagator();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("child");
        set_parent(&span, remote());
        let _entered = span.enter();
        let current = W3cContext::current().expect("a traced span");
        let remote = remote().span().span_context().clone();
        let cx = extract(&HashMap::from([(
            TRACEPARENT.to_owned(),
            current.traceparent.clone(),
        )]));
        let sc = cx.span().span_context().clone();
        assert_eq!(sc.trace_id(), remote.trace_id(), "same trace");
        assert_ne!(sc.span_id(), remote.span_id(), "the child's own span id");
        assert_eq!(
            trace_id(&span).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    });
}

#[test]
fn without_an_otel_layer_nothing_is_injected() {
    propagator();
    let subscriber = tracing_subscriber::registry();
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("untraced");
        set_parent(&span, remote());
        let _entered = span.enter();
        assert_eq!(W3cContext::current(), None);
    });
}

#[cfg(feature = "avro-rpc")]
#[test]
fn rpc_metadata_round_trip() {
    propagator();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::with_default(subscriber, || {
        let client = tracing::info_span!("client");
        set_parent(&client, remote());
        let mut metadata = avro_rpc::Metadata::new();
        {
            let _entered = client.enter();
            rpc_injector()(&mut metadata);
        }
        let sent = metadata.get(TRACEPARENT).expect("injected").clone();
        let sent = std::str::from_utf8(&sent).expect("ascii").to_owned();
        assert!(sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        let server = tracing::info_span!("server");
        rpc_extractor()(&metadata, &server);
        let parent_span_id = &sent[36..52];
        let _entered = server.enter();
        let now = W3cContext::current().expect("traced");
        assert!(
            now.traceparent
                .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
        );
        assert_ne!(&now.traceparent[36..52], parent_span_id);
    });
}
