//! The stateful socket transport (Java Netty framing): calls of every shape,
//! over `tokio::io::duplex` and over loopback TCP, many in flight on one
//! connection with replies overtaking each other.

mod common;

use std::time::Duration;

use avro_rpc::export::apache_avro::types::Value;
use avro_rpc::transport::socket::{SocketTransport, serve_connection, serve_socket};
use avro_rpc::{Client, Kind, Limits, RemoteError};
use bytes::Bytes;
use common::*;
use tower::{Service, ServiceExt};

/// Guards against a hang turning into a stuck test run; not a latency check.
const GUARD: Duration = Duration::from_secs(30);

fn duplex_client(controls: Controls) -> Client {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let responder = responder(greeter(), controls);
    tokio::spawn(serve_connection(b, responder));
    Client::new(
        greeter(),
        SocketTransport::new(a, "duplex", Limits::default()),
    )
}

async fn tcp_client(controls: Controls) -> Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_socket(listener, responder(greeter(), controls)));
    Client::new(greeter(), SocketTransport::connect(addr).await.unwrap())
}

async fn exercise(client: Client) {
    let r = client
        .call(call(
            &client,
            "hello",
            &[("name", Value::String("ann".into()))],
        ))
        .await
        .unwrap();
    assert_eq!(r.result, Ok(Value::String("hello, ann".into())));

    let r = client
        .call(call(
            &client,
            "add",
            &[("a", Value::Int(2)), ("b", Value::Long(40))],
        ))
        .await
        .unwrap();
    assert_eq!(r.result, Ok(Value::Long(42)));

    let r = client
        .call(call(&client, "echo", &[("greeting", greeting())]))
        .await
        .unwrap();
    assert_eq!(r.result, Ok(greeting()));

    let r = client
        .call(call(&client, "refuse", &[("code", Value::Int(0))]))
        .await
        .unwrap();
    assert_eq!(r.result, Ok(Value::Null));
    let r = client
        .call(call(&client, "refuse", &[("code", Value::Int(1))]))
        .await
        .unwrap();
    assert_eq!(
        r.result,
        Err(RemoteError::Declared {
            index: 0,
            value: record(&[
                ("reason", Value::String("no".into())),
                ("code", Value::Int(1))
            ]),
        })
    );
    let r = client
        .call(call(&client, "refuse", &[("code", Value::Int(2))]))
        .await
        .unwrap();
    assert_eq!(
        r.result,
        Err(RemoteError::Declared {
            index: 1,
            value: record(&[("retry_after_ms", Value::Long(250))]),
        })
    );
    let r = client
        .call(call(&client, "refuse", &[("code", Value::Int(9))]))
        .await
        .unwrap();
    assert_eq!(
        r.result,
        Err(RemoteError::System("unexpected code 9".into()))
    );

    // Metadata travels to the handler and back (the handler echoes it).
    let mut c = call(&client, "hello", &[("name", Value::String("meta".into()))]);
    c.metadata
        .insert("trace".into(), Bytes::from_static(b"\x00\x01"));
    let r = client.call(c).await.unwrap();
    assert_eq!(
        r.metadata.get("trace").map(|b| &b[..]),
        Some(&b"\x00\x01"[..])
    );
}

#[tokio::test]
async fn every_call_shape_over_duplex() {
    tokio::time::timeout(GUARD, exercise(duplex_client(Controls::default())))
        .await
        .unwrap();
}

#[tokio::test]
async fn every_call_shape_over_tcp() {
    tokio::time::timeout(GUARD, async {
        exercise(tcp_client(Controls::default()).await).await
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn client_is_a_tower_service() {
    let mut client = duplex_client(Controls::default());
    let c = call(&client, "hello", &[("name", Value::String("svc".into()))]);
    let r = tokio::time::timeout(GUARD, client.ready().await.unwrap().call(c))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.result, Ok(Value::String("hello, svc".into())));
}

#[tokio::test]
async fn replies_overtake_each_other_on_one_connection() {
    let controls = Controls::default();
    let gate = controls.gate("first");
    let client = tcp_client(controls).await;
    let first = tokio::spawn({
        let client = client.clone();
        let c = call(&client, "wait", &[("key", Value::String("first".into()))]);
        async move { client.call(c).await }
    });
    // "second" is sent after "first" on the same connection, yet answers while
    // "first" is still parked: a transport that answered in order would hang here.
    let second = tokio::time::timeout(
        GUARD,
        client.call(call(
            &client,
            "wait",
            &[("key", Value::String("second".into()))],
        )),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(second.result, Ok(Value::String("second".into())));
    assert!(!first.is_finished());
    gate.send(()).unwrap();
    let first = tokio::time::timeout(GUARD, first)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.result, Ok(Value::String("first".into())));
}

#[tokio::test]
async fn many_calls_in_flight_on_one_connection() {
    let client = tcp_client(Controls::default()).await;
    let calls = (0..500).map(|i| {
        let client = client.clone();
        let c = call(
            &client,
            "add",
            &[("a", Value::Int(i)), ("b", Value::Long(1000))],
        );
        async move { (i, client.call(c).await.unwrap()) }
    });
    let results = tokio::time::timeout(GUARD, futures::future::join_all(calls))
        .await
        .unwrap();
    for (i, r) in results {
        assert_eq!(r.result, Ok(Value::Long(i64::from(i) + 1000)));
    }
}

#[tokio::test]
async fn one_way_messages_get_no_reply_but_reach_the_handler() {
    let controls = Controls::default();
    let mut notified = controls.notifications();
    let client = duplex_client(controls);
    client.handshake().await.unwrap();
    for i in 0..3 {
        let r = client
            .call(call(
                &client,
                "notify",
                &[("event", Value::String(format!("e{i}")))],
            ))
            .await
            .unwrap();
        assert_eq!(r.result, Ok(Value::Null));
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(
            tokio::time::timeout(GUARD, notified.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    got.sort();
    assert_eq!(got, ["e0", "e1", "e2"]);
    // The connection is still in step: a normal call after the one-ways works.
    let r = client
        .call(call(
            &client,
            "add",
            &[("a", Value::Int(1)), ("b", Value::Long(1))],
        ))
        .await
        .unwrap();
    assert_eq!(r.result, Ok(Value::Long(2)));
}

#[tokio::test]
async fn calls_before_the_handshake_wait_for_it() {
    let client = tcp_client(Controls::default()).await;
    // All start at once on a fresh connection; only one handshake may go out
    // and every call must be held until it completes.
    let calls = (0..50).map(|i| {
        let client = client.clone();
        let c = call(
            &client,
            "add",
            &[("a", Value::Int(i)), ("b", Value::Long(0))],
        );
        async move { client.call(c).await.unwrap() }
    });
    let results = tokio::time::timeout(GUARD, futures::future::join_all(calls))
        .await
        .unwrap();
    assert!(results.iter().all(|r| r.result.is_ok()));
}

#[tokio::test]
async fn unknown_messages_are_refused_locally() {
    let client = duplex_client(Controls::default());
    let e = avro_rpc::Call::new(&client, "nope", &record(&[])).unwrap_err();
    assert_eq!(e.kind(), Kind::UnknownMessage);
}

#[tokio::test]
async fn a_dropped_server_fails_pending_and_later_calls() {
    let (a, b) = tokio::io::duplex(1024);
    let client = Client::new(
        greeter(),
        SocketTransport::new(a, "dead", Limits::default()),
    );
    drop(b);
    let r = tokio::time::timeout(
        GUARD,
        client.call(call(
            &client,
            "hello",
            &[("name", Value::String("x".into()))],
        )),
    )
    .await
    .unwrap();
    assert_eq!(r.unwrap_err().kind(), Kind::Transport);
    // Not ready any more: what tower's Reconnect watches to replace it.
    let mut svc = client.clone();
    let e = tokio::time::timeout(GUARD, svc.ready())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Transport);
}

/// Python's avro drops `one-way` from every protocol it sends, so its
/// client waits for a reply to a message the server declares one-way. The
/// server answers such a call (null) even on an established connection; a
/// client that declares a message one-way that the server does not is still
/// refused (it would never read the reply).
#[tokio::test]
async fn a_two_way_client_of_a_one_way_message_gets_a_null_reply() {
    let two_way =
        avro_rpc::Protocol::parse(&GREETER.replace(r#""one-way": true"#, r#""one-way": false"#))
            .expect("greeter without one-way parses");
    assert!(!two_way.message("notify").unwrap().is_one_way());

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let controls = Controls::default();
    *controls.notified.lock().unwrap() = Some(tx);
    let (a, b) = tokio::io::duplex(1 << 16);
    tokio::spawn(serve_connection(b, responder(greeter(), controls)));
    let client = Client::new(
        two_way,
        SocketTransport::new(a, "duplex", Limits::default()),
    );
    client.handshake().await.expect("handshake");
    for event in ["e1", "e2"] {
        let reply = client
            .clone()
            .oneshot(call(
                &client,
                "notify",
                &[("event", Value::String(event.into()))],
            ))
            .await
            .expect("a reply, not a hang or a dropped connection");
        assert_eq!(reply.result, Ok(Value::Null));
        assert_eq!(rx.recv().await.as_deref(), Some(event));
    }

    // The reverse: the client says `wait` is one-way, the server says
    // two-way. The client does not wait for an answer; the server must not
    // run the handler (nor break the connection).
    let one_way_wait = avro_rpc::Protocol::parse(&GREETER.replace(
        r#""request": [{"name": "key", "type": "string"}],
      "response": "string""#,
        r#""request": [{"name": "key", "type": "string"}],
      "response": "null", "one-way": true"#,
    ))
    .expect("greeter with a one-way wait parses");
    assert!(one_way_wait.message("wait").unwrap().is_one_way());
    let controls = Controls::default();
    let started = controls.waits_started.clone();
    let (a, b) = tokio::io::duplex(1 << 16);
    tokio::spawn(serve_connection(b, responder(greeter(), controls)));
    let client = Client::new(
        one_way_wait,
        SocketTransport::new(a, "duplex", Limits::default()),
    );
    client.handshake().await.expect("handshake");
    let reply = client
        .clone()
        .oneshot(call(&client, "wait", &[("key", Value::String("k".into()))]))
        .await
        .expect("a one-way call completes when sent");
    assert_eq!(reply.result, Ok(Value::Null));
    let reply = client
        .clone()
        .oneshot(call(
            &client,
            "add",
            &[("a", Value::Int(2)), ("b", Value::Long(3))],
        ))
        .await
        .expect("the connection still works");
    assert_eq!(reply.result, Ok(Value::Long(5)));
    assert_eq!(
        started.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the server must refuse a one-way call it declares two-way"
    );
}
