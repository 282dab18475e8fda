//! Layers end to end over the socket transport: a client deadline reaches
//! the server in call metadata and the server abandons the handler; a full
//! client stack (deadline, retry, concurrency limit) composes with `Client`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use avro_rpc::Kind;
use avro_rpc::export::apache_avro::types::Value;
use avro_rpc::layer::deadline::{DeadlineLayer, HonourDeadlineLayer};
use avro_rpc::layer::retry::IdempotentRetry;
use avro_rpc::transport::socket::{SocketTransport, serve_connection};
use avro_rpc::{Client, Limits, Responder};
use common::*;
use tower::{Service, ServiceBuilder, ServiceExt};

#[tokio::test(start_paused = true)]
async fn the_client_deadline_stops_the_server_handler() {
    let controls = Controls::default();
    let mut gate = controls.gate("never");
    let handler = ServiceBuilder::new()
        .layer(HonourDeadlineLayer::new())
        .service(handler(controls));
    let (a, b) = tokio::io::duplex(1 << 16);
    tokio::spawn(serve_connection(
        b,
        Arc::new(Responder::new(greeter(), handler)),
    ));
    let client = Client::new(
        greeter(),
        SocketTransport::new(a, "duplex", Limits::default()),
    );
    let mut stack = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_millis(100)))
        .service(client.clone());
    let c = call(&client, "wait", &[("key", Value::String("never".into()))]);
    let e = stack.ready().await.unwrap().call(c).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Timeout);
    // The handler held the gate's receiver; the server dropping the handler
    // future (deadline passed) closes it. Without the server layer this would
    // never resolve and the paused clock would report a deadlock.
    gate.closed().await;
}

#[tokio::test]
async fn a_full_client_stack_composes() {
    let (a, b) = tokio::io::duplex(1 << 16);
    tokio::spawn(serve_connection(
        b,
        responder(greeter(), Controls::default()),
    ));
    let client = Client::new(
        greeter(),
        SocketTransport::new(a, "duplex", Limits::default()),
    );
    // Outermost first: the deadline bounds the whole call including retries;
    // retries sit outside the concurrency limit so a waiting retry holds no permit.
    let stack = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(30)))
        .layer(tower::retry::RetryLayer::new(IdempotentRetry::new(
            greeter(),
        )))
        .concurrency_limit(8)
        .service(client.clone());
    let calls = (0..32).map(|i| {
        let stack = stack.clone();
        let c = call(
            &client,
            "hello",
            &[("name", Value::String(format!("n{i}")))],
        );
        async move { stack.oneshot(c).await.unwrap() }
    });
    for (i, r) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(r.result, Ok(Value::String(format!("hello, n{i}"))));
    }
}
