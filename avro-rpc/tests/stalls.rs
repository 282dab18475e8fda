//! Peers that start a message and never finish it, over real loopback
//! sockets: a declared length above the limit is refused at once (socket:
//! connection closed; HTTP: 413), and a connection stalled mid-frame,
//! mid-body or mid-head is closed after `Limits::frame_timeout`.
//!
//! The bounds below only catch a server that never closes; they are
//! generously larger than the configured timeouts and are not latency checks.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use avro_rpc::transport::http::serve_http;
use avro_rpc::transport::socket::serve_socket;
use avro_rpc::{Limits, Responder};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Comfortably above every timeout configured here that is meant to fire.
const BOUND: Duration = Duration::from_secs(10);
/// A timeout that must not be what closes the connection.
const NEVER: Duration = Duration::from_secs(3600);

fn limits(frame_timeout: Duration) -> Limits {
    Limits {
        frame_timeout,
        ..Limits::default()
    }
}

async fn socket_server(limits: Limits) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let responder =
        Arc::new(Responder::new(greeter(), handler(Controls::default())).with_limits(limits));
    tokio::spawn(serve_socket(listener, responder));
    addr
}

async fn http_server(limits: Limits) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let responder =
        Arc::new(Responder::new(greeter(), handler(Controls::default())).with_limits(limits));
    tokio::spawn(serve_http(listener, responder));
    addr
}

/// Reads until the server closes the connection; everything it sent, or
/// `None` if it was still open after [`BOUND`].
async fn until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| got)
}

/// A Netty frame header: serial, one buffer, that buffer's declared length.
fn frame_head(declared: i32) -> Vec<u8> {
    let mut head = Vec::new();
    head.extend_from_slice(&7_i32.to_be_bytes());
    head.extend_from_slice(&1_i32.to_be_bytes());
    head.extend_from_slice(&declared.to_be_bytes());
    head
}

#[tokio::test]
async fn a_socket_frame_stalled_midway_is_closed_after_the_timeout() {
    let addr = socket_server(limits(Duration::from_millis(300))).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // Declares 100 bytes, sends 10, then nothing.
    let mut partial = frame_head(100);
    partial.extend_from_slice(&[0u8; 10]);
    stream.write_all(&partial).await.unwrap();
    let sent = until_closed(&mut stream).await;
    assert_eq!(
        sent.as_deref(),
        Some(&[][..]),
        "closed without a reply within {BOUND:?}"
    );

    // An idle connection (no frame started) is not a stall: still served.
    let idle = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    let client = avro_rpc::Client::new(
        greeter(),
        avro_rpc::transport::socket::SocketTransport::new(idle, "idle", Limits::default()),
    );
    let reply = client
        .call(call(
            &client,
            "hello",
            &[(
                "name",
                avro_rpc::export::apache_avro::types::Value::String("idle".into()),
            )],
        ))
        .await
        .unwrap();
    assert!(reply.result.is_ok(), "{reply:?}");
}

#[tokio::test]
async fn a_socket_frame_declaring_too_much_is_refused_at_once() {
    let addr = socket_server(limits(NEVER)).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let over = i32::try_from(Limits::default().max_buffer_bytes + 1).unwrap();
    stream.write_all(&frame_head(over)).await.unwrap();
    assert_eq!(
        until_closed(&mut stream).await.as_deref(),
        Some(&[][..]),
        "closed before any of the body is sent, long before frame_timeout"
    );
}

#[tokio::test]
async fn an_http_body_declared_above_the_limit_is_413_at_once() {
    let addr = http_server(limits(NEVER)).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nHost: test\r\nContent-Type: avro/binary\r\n\
              Content-Length: 2000000000\r\n\r\n0123456789abcdef",
        )
        .await
        .unwrap();
    let answer = until_closed(&mut stream)
        .await
        .expect("answered and closed long before frame_timeout");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(
        text.contains("2000000000"),
        "the reason names the length: {text}"
    );
}

#[tokio::test]
async fn an_http_body_stalled_midway_is_closed_after_the_timeout() {
    let addr = http_server(limits(Duration::from_millis(300))).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nHost: test\r\nContent-Type: avro/binary\r\n\
              Content-Length: 100\r\n\r\n0123456789",
        )
        .await
        .unwrap();
    let answer = until_closed(&mut stream)
        .await
        .expect("closed within the bound");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
}

#[tokio::test]
async fn an_http_head_stalled_midway_or_never_sent_is_closed_after_the_timeout() {
    let addr = http_server(limits(Duration::from_millis(300))).await;
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"POST / HTTP/1.1\r\nHost: test\r\nContent-")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(
        until_closed(&mut half).await.is_some(),
        "half a head: closed"
    );
    assert!(
        until_closed(&mut silent).await.is_some(),
        "nothing sent: closed"
    );
}

/// `serve_http_until`: after the signal, no new connection is served, an
/// idle keep-alive connection is closed and the server returns.
#[tokio::test]
async fn serve_http_until_stops_and_closes_idle_connections() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let responder = Arc::new(
        Responder::new(greeter(), handler(Controls::default())).with_limits(limits(NEVER)),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(avro_rpc::transport::http::serve_http_until(
        listener,
        responder,
        async move {
            let _ = stopped.await;
        },
    ));
    // A keep-alive connection that has been answered once (a 405: GET).
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 405");
    let _ = stop.send(());
    assert!(
        until_closed(&mut idle).await.is_some(),
        "idle connection closed"
    );
    let returned = tokio::time::timeout(BOUND, server).await;
    assert!(
        matches!(returned, Ok(Ok(Ok(())))),
        "server returned: {returned:?}"
    );
}
