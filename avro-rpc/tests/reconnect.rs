//! A socket client that survives its server dropping the connection: stock
//! `tower::reconnect::Reconnect` over [`SocketConnector`], shared through
//! `tower::buffer::Buffer`, under the generated typed client.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use avro_rpc::codegen::{CallError, HandlerError};
use avro_rpc::transport::socket::{SocketConnector, serve_connection};
use std::convert::Infallible;

mod greeter {
    avro_rpc::include_protocol!("greeter");
}
use greeter::*;

const GUARD: Duration = Duration::from_secs(30);

struct Impl;

impl Greeter for Impl {
    async fn hello(&self, name: String) -> Result<String, HandlerError<Infallible>> {
        Ok(format!("hello, {name}"))
    }
    async fn echo(&self, greeting: Greeting) -> Result<Greeting, HandlerError<Infallible>> {
        Ok(greeting)
    }
    async fn add(&self, a: i32, b: i64) -> Result<i64, HandlerError<Infallible>> {
        Ok(i64::from(a) + b)
    }
    async fn refuse(&self, _code: i32) -> Result<(), HandlerError<RefuseError>> {
        Ok(())
    }
    async fn wait(&self, key: String) -> Result<String, HandlerError<Infallible>> {
        Ok(key)
    }
    async fn notify(&self, _event: String) -> Result<(), HandlerError<Infallible>> {
        Ok(())
    }
}

#[tokio::test]
async fn calls_resume_on_a_new_connection_after_the_server_drops_one() {
    tokio::time::timeout(GUARD, async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let responder = Arc::new(GreeterServer::new(Impl).responder().unwrap());
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let conns = connections.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let r = responder.clone();
                conns.lock().unwrap().push(tokio::spawn(async move {
                    let _ = serve_connection(stream, r).await;
                }));
            }
        });

        let reconnecting =
            tower::reconnect::Reconnect::new(SocketConnector::new(protocol().unwrap()), addr);
        let shared = tower::buffer::Buffer::new(reconnecting, 64);
        let client = GreeterClient::with_service(protocol().unwrap(), shared);

        assert_eq!(client.hello("one".into()).await.unwrap(), "hello, one");
        assert_eq!(connections.lock().unwrap().len(), 1);

        // The server drops the connection.
        for c in connections.lock().unwrap().drain(..) {
            c.abort();
        }

        // Calls that raced the close may fail as transport errors; the client
        // then reconnects (one new connection, one handshake) and carries on.
        let mut failures = 0;
        let answer = loop {
            match client.hello("two".into()).await {
                Ok(a) => break a,
                Err(CallError::Rpc(e)) => {
                    assert_eq!(e.kind(), avro_rpc::Kind::Transport, "{e}");
                    failures += 1;
                    assert!(failures < 10, "no reconnect after {failures} failures: {e}");
                    tokio::task::yield_now().await;
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(answer, "hello, two");
        assert_eq!(
            connections.lock().unwrap().len(),
            1,
            "exactly one new connection"
        );
    })
    .await
    .unwrap();
}
