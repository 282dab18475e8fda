//! Hostile and broken input on the socket transport: the server drops the
//! connection (or answers with an error) and keeps serving others; nothing
//! panics, hangs or allocates what a header merely announces.

mod common;

use std::time::Duration;

use avro_rpc::export::apache_avro::types::Value;
use avro_rpc::transport::socket::{SocketTransport, serve_connection};
use avro_rpc::wire::{self, HandshakeRequest, HandshakeResponse};
use avro_rpc::{Client, Kind, Limits};
use bytes::{BufMut, BytesMut};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GUARD: Duration = Duration::from_secs(30);

async fn serve_raw(bytes: Vec<u8>) -> (avro_rpc::Result<()>, Vec<u8>) {
    let (mut a, b) = tokio::io::duplex(1 << 20);
    let server = tokio::spawn(serve_connection(
        b,
        responder(greeter(), Controls::default()),
    ));
    a.write_all(&bytes).await.unwrap();
    a.shutdown().await.unwrap();
    let mut out = Vec::new();
    a.read_to_end(&mut out).await.unwrap();
    (server.await.unwrap(), out)
}

fn frame(serial: i32, msg: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    wire::write_netty_frame(&mut b, serial, msg);
    b.to_vec()
}

fn handshake_for(p: &avro_rpc::Protocol) -> Vec<u8> {
    let mut m = Vec::new();
    HandshakeRequest {
        client_hash: p.hash(),
        client_protocol: None,
        server_hash: p.hash(),
        meta: None,
    }
    .encode(&mut m);
    m
}

#[tokio::test]
async fn announced_giant_frames_are_refused_without_waiting() {
    tokio::time::timeout(GUARD, async {
        let mut b = BytesMut::new();
        b.put_i32(1);
        b.put_i32(1);
        b.put_i32(i32::MAX);
        let (result, out) = serve_raw(b.to_vec()).await;
        assert_eq!(result.unwrap_err().kind(), Kind::Decode);
        assert!(out.is_empty());
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn truncated_streams_end_the_connection_cleanly() {
    tokio::time::timeout(GUARD, async {
        let mut msg = handshake_for(&greeter());
        wire::write_call_header(&mut msg, &Default::default(), "hello");
        msg.extend_from_slice(&[4, b'h', b'i']);
        let full = frame(3, &msg);
        for n in 1..full.len() {
            let (result, out) = serve_raw(full[..n].to_vec()).await;
            assert!(result.is_err(), "cut at {n}");
            assert!(out.is_empty(), "cut at {n}");
        }
        let (result, out) = serve_raw(full).await;
        assert!(result.is_ok());
        assert!(!out.is_empty());
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn garbage_handshakes_end_the_connection() {
    tokio::time::timeout(GUARD, async {
        for garbage in [&b"x"[..], &[0xff; 40][..], &[0u8; 16][..]] {
            let (result, _) = serve_raw(frame(1, garbage)).await;
            assert_eq!(result.unwrap_err().kind(), Kind::Decode);
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn bad_parameters_get_a_system_error_and_the_connection_lives_on() {
    tokio::time::timeout(GUARD, async {
        let p = greeter();
        let mut bad = handshake_for(&p);
        wire::write_call_header(&mut bad, &Default::default(), "hello");
        bad.extend_from_slice(&[0x7f]); // string length -64
        let mut good = Vec::new();
        wire::write_call_header(&mut good, &Default::default(), "hello");
        good.extend_from_slice(&[4, b'h', b'i']);
        let mut stream = frame(1, &bad);
        stream.extend(frame(2, &good));
        let (result, out) = serve_raw(stream).await;
        assert!(result.is_ok());
        let mut buf = BytesMut::from(&out[..]);
        let (s1, m1) = wire::read_netty_frame(&mut buf, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(s1, 1);
        let mut input = &m1[..];
        HandshakeResponse::decode(&mut input, &Limits::default()).unwrap();
        let (_, is_error) = wire::read_response_header(&mut input, &Limits::default()).unwrap();
        assert!(is_error);
        let (s2, m2) = wire::read_netty_frame(&mut buf, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(s2, 2);
        let mut input = &m2[..];
        let (_, is_error) = wire::read_response_header(&mut input, &Limits::default()).unwrap();
        assert!(!is_error);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_client_refuses_an_oversized_reply() {
    tokio::time::timeout(GUARD, async {
        let (a, b) = tokio::io::duplex(1 << 20);
        tokio::spawn(serve_connection(
            b,
            responder(greeter(), Controls::default()),
        ));
        let limits = Limits {
            max_message_bytes: 64,
            ..Limits::default()
        };
        let client = Client::new(greeter(), SocketTransport::new(a, "small", limits));
        client.handshake().await.unwrap();
        let big = "x".repeat(200);
        let r = client
            .call(call(&client, "hello", &[("name", Value::String(big))]))
            .await;
        assert_eq!(r.unwrap_err().kind(), Kind::Decode);
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_connection_cannot_run_more_calls_than_its_limit() {
    use std::sync::atomic::Ordering;
    let controls = Controls::default();
    let gates: Vec<_> = ["a", "b", "c"].iter().map(|k| controls.gate(k)).collect();
    let limits = Limits {
        max_in_flight_per_connection: 2,
        ..Limits::default()
    };
    let responder = std::sync::Arc::new(
        avro_rpc::Responder::new(greeter(), handler(controls.clone())).with_limits(limits),
    );
    let (a, b) = tokio::io::duplex(1 << 16);
    tokio::spawn(serve_connection(b, responder));
    let client = Client::new(
        greeter(),
        SocketTransport::new(a, "limited", Limits::default()),
    );
    client.handshake().await.unwrap();
    let calls: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|k| {
            let client = client.clone();
            let c = call(&client, "wait", &[("key", Value::String(k.to_string()))]);
            tokio::spawn(async move { client.call(c).await })
        })
        .collect();
    // Paused clock: this sleep returns only once every task is idle, so
    // whatever the server could start, it has started.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(controls.waits_started.load(Ordering::SeqCst), 2);
    let mut gates = gates.into_iter();
    // Release whichever of a/b is running; the third call then gets its turn.
    gates.next().unwrap().send(()).unwrap();
    gates.next().unwrap().send(()).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(controls.waits_started.load(Ordering::SeqCst), 3);
    gates.next().unwrap().send(()).unwrap();
    for c in calls {
        assert!(c.await.unwrap().unwrap().result.is_ok());
    }
}
