//! The handshake as the spec describes it, observed on the wire: BOTH on a
//! known protocol, NONE then a retry carrying `clientProtocol`, CLIENT when the
//! server knows us but we guessed its hash wrong, the server's cache of client
//! protocols and the client's cache of server protocols per endpoint.

mod common;

use std::sync::{Arc, Mutex};

use avro_rpc::client::{RemoteCache, Transport};
use avro_rpc::export::apache_avro::types::Value;
use avro_rpc::wire::{HandshakeMatch, HandshakeRequest, HandshakeResponse};
use avro_rpc::{Client, Limits, Protocol, Result};
use bytes::Bytes;
use common::*;
use futures::future::BoxFuture;

type Respond = Arc<dyn Fn(Bytes) -> BoxFuture<'static, Result<Bytes>> + Send + Sync>;

/// A stateless in-process transport that logs each exchange's handshake.
#[derive(Clone)]
struct Recording {
    respond: Respond,
    log: Arc<Mutex<Vec<(bool, HandshakeMatch)>>>,
}

impl Recording {
    fn new(server: Protocol, limits: Limits) -> Self {
        let responder = Arc::new(
            avro_rpc::Responder::new(server, handler(Controls::default())).with_limits(limits),
        );
        Recording {
            respond: Arc::new(move |msg: Bytes| {
                let r = responder.clone();
                Box::pin(async move { r.respond_stateless(&msg).await })
            }),
            log: Arc::default(),
        }
    }

    fn take_log(&self) -> Vec<(bool, HandshakeMatch)> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Transport for Recording {
    fn transceive(&self, message: Bytes) -> BoxFuture<'static, Result<Bytes>> {
        let this = self.clone();
        Box::pin(async move {
            let limits = Limits::default();
            let req = HandshakeRequest::decode(&mut &message[..], &limits)?;
            let reply = (this.respond)(message).await?;
            let resp = HandshakeResponse::decode(&mut &reply[..], &limits)?;
            this.log
                .lock()
                .unwrap()
                .push((req.client_protocol.is_some(), resp.match_));
            Ok(reply)
        })
    }
    fn send(&self, message: Bytes) -> BoxFuture<'static, Result<()>> {
        let f = self.transceive(message);
        Box::pin(async move { f.await.map(|_| ()) })
    }
    fn is_stateful(&self) -> bool {
        false
    }
    fn endpoint(&self) -> String {
        "in-process".into()
    }
}

/// The Greeter protocol with one more message: a different text, a different hash.
fn greeter_v2() -> Protocol {
    let text = GREETER.replacen(
        "\"messages\": {",
        "\"messages\": {\n    \"extra\": {\"request\": [], \"response\": \"null\"},",
        1,
    );
    Protocol::parse(&text).unwrap()
}

async fn hello(client: &Client) -> Value {
    client
        .call(call(
            client,
            "hello",
            &[("name", Value::String("h".into()))],
        ))
        .await
        .unwrap()
        .result
        .unwrap()
}

#[tokio::test]
async fn same_protocol_matches_both_at_once() {
    let t = Recording::new(greeter(), Limits::default());
    let client = Client::new(greeter(), t.clone());
    hello(&client).await;
    assert_eq!(t.take_log(), [(false, HandshakeMatch::Both)]);
}

#[tokio::test]
async fn unknown_client_gets_none_then_resends_its_protocol() {
    let t = Recording::new(greeter_v2(), Limits::default());
    let client = Client::new(greeter(), t.clone());
    assert_eq!(hello(&client).await, Value::String("hello, h".into()));
    assert_eq!(
        t.take_log(),
        [(false, HandshakeMatch::None), (true, HandshakeMatch::Both)]
    );
    assert_eq!(
        client.remote_protocol().unwrap().hash(),
        greeter_v2().hash()
    );
    // Every later call: both hashes known, nothing resent.
    hello(&client).await;
    hello(&client).await;
    assert_eq!(
        t.take_log(),
        [(false, HandshakeMatch::Both), (false, HandshakeMatch::Both)]
    );
}

#[tokio::test]
async fn server_cache_lets_a_new_client_in_with_a_client_match() {
    let t = Recording::new(greeter_v2(), Limits::default());
    hello(&Client::new(greeter(), t.clone())).await;
    t.take_log();
    // A new client (no cached server protocol) guesses the server's hash
    // wrong, but the server remembers its protocol: CLIENT, call processed.
    let fresh = Client::new(greeter(), t.clone());
    assert_eq!(hello(&fresh).await, Value::String("hello, h".into()));
    assert_eq!(t.take_log(), [(false, HandshakeMatch::Client)]);
    hello(&fresh).await;
    assert_eq!(t.take_log(), [(false, HandshakeMatch::Both)]);
}

#[tokio::test]
async fn client_cache_per_endpoint_is_shared_between_clients() {
    let t = Recording::new(greeter_v2(), Limits::default());
    let cache = RemoteCache::default();
    let first = Client::builder(greeter())
        .remote_cache(cache.clone())
        .build(t.clone());
    hello(&first).await;
    t.take_log();
    let second = Client::builder(greeter())
        .remote_cache(cache)
        .build(t.clone());
    hello(&second).await;
    assert_eq!(t.take_log(), [(false, HandshakeMatch::Both)]);
}

#[tokio::test]
async fn a_server_that_cannot_cache_still_serves() {
    let limits = Limits {
        max_cached_protocols: 0,
        ..Limits::default()
    };
    let t = Recording::new(greeter_v2(), limits);
    let client = Client::new(greeter(), t.clone());
    hello(&client).await;
    hello(&client).await;
    assert_eq!(
        t.take_log(),
        [
            (false, HandshakeMatch::None),
            (true, HandshakeMatch::Both),
            (false, HandshakeMatch::None),
            (true, HandshakeMatch::Both),
        ]
    );
}

#[tokio::test]
async fn ping_completes_a_stateless_handshake_without_a_call() {
    let t = Recording::new(greeter_v2(), Limits::default());
    let client = Client::new(greeter(), t.clone());
    client.handshake().await.unwrap();
    assert_eq!(
        t.take_log(),
        [(false, HandshakeMatch::None), (true, HandshakeMatch::Both)]
    );
}

#[tokio::test]
async fn a_message_the_server_lacks_is_a_system_error() {
    let t = Recording::new(greeter(), Limits::default());
    let client = Client::new(greeter_v2(), t);
    let r = client.call(call(&client, "extra", &[])).await.unwrap();
    match r.result {
        Err(avro_rpc::RemoteError::System(s)) => assert!(s.contains("extra"), "{s}"),
        other => panic!("expected a system error, got {other:?}"),
    }
}

/// A client that already holds our hash (it talked to us before we restarted,
/// or a JVM switched to another protocol) but whose own hash we do not know:
/// NONE must still carry `serverProtocol` and `serverHash`, as Java's server
/// sends them; Java's `Requestor` dereferences both on every non-BOTH match.
#[tokio::test]
async fn none_with_the_right_server_hash_still_carries_the_server_protocol() {
    let server = greeter_v2();
    let responder = avro_rpc::Responder::new(server.clone(), handler(Controls::default()));
    let mut request = Vec::new();
    HandshakeRequest {
        client_hash: greeter().hash(),
        client_protocol: None,
        server_hash: server.hash(),
        meta: None,
    }
    .encode(&mut request);
    let reply = responder.respond_stateless(&request).await.unwrap();
    let resp = HandshakeResponse::decode(&mut &reply[..], &Limits::default()).unwrap();
    assert_eq!(resp.match_, HandshakeMatch::None);
    assert_eq!(resp.server_protocol.as_deref(), Some(&**server.text()));
    assert_eq!(resp.server_hash, Some(server.hash()));
}
