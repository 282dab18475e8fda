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

/// The ready-made W3C propagator end to end over a duplex pipe: the client
/// injects a child of its current context, the server records the trace id
/// on its span and runs the handler with a child of the incoming context,
/// so a call the handler makes continues the same trace.
#[tokio::test]
async fn w3c_traceparent_continues_the_trace_across_a_hop() {
    use avro_rpc::layer::trace::w3c::{self, TraceParent, W3cContextLayer};
    use avro_rpc::{Request, Response};

    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry());
    // What the handler saw: the incoming traceparent, its current context,
    // and what an outgoing call of its own would carry.
    type Hop = (
        Option<TraceParent>,
        Option<TraceParent>,
        Option<TraceParent>,
    );
    let hops: Arc<Mutex<Vec<Hop>>> = Arc::default();
    let h = hops.clone();
    let recording = tower::service_fn(move |req: Request| {
        let h = h.clone();
        // The context is the handler future's: read it while it runs.
        async move {
            let incoming = TraceParent::from_metadata(&req.metadata);
            let current = w3c::current();
            let mut outgoing = avro_rpc::Metadata::new();
            w3c::injector()(&mut outgoing);
            h.lock()
                .unwrap()
                .push((incoming, current, TraceParent::from_metadata(&outgoing)));
            Ok::<_, std::convert::Infallible>(Response::ok(Value::String("hello, w3c".into())))
        }
    });
    let server_stack = ServiceBuilder::new()
        .layer(
            TraceHandlerLayer::new("org.example.greeter.Greeter").with_extractor(w3c::extractor()),
        )
        .layer(W3cContextLayer::new())
        .service(recording);
    let (a, b) = tokio::io::duplex(1 << 16);
    tokio::spawn(serve_connection(
        b,
        Arc::new(Responder::<_>::new(greeter(), server_stack)),
    ));
    let client = Client::new(
        greeter(),
        SocketTransport::new(a, "duplex", Limits::default()),
    );
    let mut stack = ServiceBuilder::new()
        .layer(TraceLayer::new("org.example.greeter.Greeter").with_injector(w3c::injector()))
        .service(client.clone());

    let root = TraceParent::parse(TRACEPARENT).unwrap();
    let c = call(&client, "hello", &[("name", Value::String("w3c".into()))]);
    let reply: avro_rpc::Reply = w3c::scope(Some(root), async {
        stack.ready().await.unwrap().call(c).await.unwrap()
    })
    .await;
    assert_eq!(reply.result, Ok(Value::String("hello, w3c".into())));

    let hops = hops.lock().unwrap();
    assert_eq!(hops.len(), 1);
    let (incoming, current, outgoing) = hops[0];
    let incoming = incoming.expect("the client injected traceparent");
    let current = current.expect("the handler runs with a current context");
    let outgoing = outgoing.expect("the handler's own calls carry traceparent");
    // One trace id across both hops, a new span id at each.
    for tp in [incoming, current, outgoing] {
        assert_eq!(tp.trace_id, root.trace_id, "{tp}");
        assert_eq!(tp.flags, root.flags, "{tp}");
    }
    let ids = [
        root.parent_id,
        incoming.parent_id,
        current.parent_id,
        outgoing.parent_id,
    ];
    for i in 0..ids.len() {
        for j in i + 1..ids.len() {
            assert_ne!(ids[i], ids[j], "span ids must differ per hop: {ids:x?}");
        }
    }
}
