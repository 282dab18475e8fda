//! Trace context crosses the wire in call metadata: the client layer's
//! injector writes it inside the client span, the server layer's extractor
//! reads it with the server span (named and attributed per the OpenTelemetry
//! RPC conventions) in hand.

mod common;

use std::sync::{Arc, Mutex};

use avro_rpc::export::apache_avro::types::Value;
use avro_rpc::layer::trace::{TraceHandlerLayer, TraceLayer};
use avro_rpc::transport::socket::{SocketTransport, serve_connection};
use avro_rpc::{Client, Limits, Responder};
use bytes::Bytes;
use common::*;
use tower::{Service, ServiceBuilder, ServiceExt};

/// What the extractor saw: span name, `traceparent`, whether `rpc.system` is a field.
type Seen = Arc<Mutex<Vec<(String, Option<Bytes>, bool)>>>;

const TRACEPARENT: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn trace_context_travels_in_metadata_between_spans() {
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry());
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let handler = ServiceBuilder::new()
        .layer(
            TraceHandlerLayer::new("org.example.greeter.Greeter").with_extractor(Arc::new(
                move |meta, span| {
                    let name = span
                        .metadata()
                        .map(|m| m.name().to_string())
                        .unwrap_or_default();
                    let has_system = span
                        .metadata()
                        .is_some_and(|m| m.fields().field("rpc.system").is_some());
                    s.lock()
                        .unwrap()
                        .push((name, meta.get("traceparent").cloned(), has_system));
                },
            )),
        )
        .service(handler(Controls::default()));
    let (a, b) = tokio::io::duplex(1 << 16);
    tokio::spawn(serve_connection(
        b,
        Arc::new(Responder::new(greeter(), handler)),
    ));
    let client = Client::new(
        greeter(),
        SocketTransport::new(a, "duplex", Limits::default()),
    );

    let injected_in: Arc<Mutex<Vec<String>>> = Arc::default();
    let i = injected_in.clone();
    let mut stack = ServiceBuilder::new()
        .layer(
            TraceLayer::new("org.example.greeter.Greeter").with_injector(Arc::new(move |meta| {
                // The injector runs inside the client span (an OTel injector reads it there).
                let current = tracing::Span::current();
                i.lock().unwrap().push(
                    current
                        .metadata()
                        .map(|m| m.name().to_string())
                        .unwrap_or_default(),
                );
                meta.insert("traceparent".into(), Bytes::from_static(TRACEPARENT));
            })),
        )
        .service(client.clone());

    let c = call(&client, "hello", &[("name", Value::String("t".into()))]);
    let r = stack.ready().await.unwrap().call(c).await.unwrap();
    assert_eq!(r.result, Ok(Value::String("hello, t".into())));

    assert_eq!(injected_in.lock().unwrap().as_slice(), ["avro_rpc.client"]);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "avro_rpc.server");
    assert_eq!(seen[0].1.as_deref(), Some(TRACEPARENT));
    assert!(seen[0].2, "server span carries rpc.system");
}
