//! The memory peers can pin with frames they do not finish is bounded per
//! connection and across a server's connections; each refusal closes the
//! connection (socket) or answers 503 (HTTP) and is counted, in the
//! server's `FrameBudget` and in the metric
//! `avro_rpc_server_frames_refused_total{limit}`.

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

/// Only catches a server that never reacts; not a latency check.
const BOUND: Duration = Duration::from_secs(10);
const KIB: usize = 1024;

fn limits() -> Limits {
    Limits {
        max_incomplete_bytes_per_connection: 600 * KIB,
        max_incomplete_bytes_total: 800 * KIB,
        // Stalled frames must stay open for the test's length.
        frame_timeout: Duration::from_secs(3600),
        ..Limits::default()
    }
}

fn metrics() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).expect("the only recorder of this binary");
            handle
        })
        .clone()
}

fn refused_metric(limit: &str) -> f64 {
    let series = format!("avro_rpc_server_frames_refused_total{{limit=\"{limit}\"}} ");
    metrics()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Starts a socket and an HTTP server sharing one responder (one budget).
async fn servers() -> (
    SocketAddr,
    SocketAddr,
    Arc<
        Responder<
            impl tower::Service<
                avro_rpc::Request,
                Response = avro_rpc::Response,
                Error = std::convert::Infallible,
                Future = impl Send,
            > + Clone
            + Send
            + Sync
            + 'static,
        >,
    >,
) {
    let responder =
        Arc::new(Responder::new(greeter(), handler(Controls::default())).with_limits(limits()));
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (sa, ha) = (socket.local_addr().unwrap(), http.local_addr().unwrap());
    tokio::spawn(serve_socket(socket, responder.clone()));
    tokio::spawn(serve_http(http, responder.clone()));
    (sa, ha, responder)
}

/// A connection that declares one buffer of `declared` bytes and sends `sent`.
async fn partial_frame(addr: SocketAddr, declared: usize, sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&1_i32.to_be_bytes());
    bytes.extend_from_slice(&1_i32.to_be_bytes());
    bytes.extend_from_slice(&i32::try_from(declared).unwrap().to_be_bytes());
    bytes.resize(12 + sent, 0);
    s.write_all(&bytes).await.unwrap();
    s
}

async fn closed_within_bound(s: &mut TcpStream) -> bool {
    tokio::time::timeout(BOUND, async {
        let mut b = [0u8; 1024];
        loop {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn partial_frames_are_bounded_per_connection_and_in_total() {
    let _ = metrics();
    let (socket, http, responder) = servers().await;
    let budget = responder.frame_budget();

    // Over the per-connection cap (but under the message limit): refused at once.
    let before = refused_metric("connection");
    let mut big = partial_frame(socket, 700 * KIB, 0).await;
    assert!(closed_within_bound(&mut big).await, "per-connection cap");
    assert_eq!(refused_metric("connection") - before, 1.0);
    assert_eq!(budget.refused(), 1);

    // One partial frame of 500 KiB fits: it is charged and the connection held.
    let mut first = partial_frame(socket, 500 * KIB, 300 * KIB).await;
    eventually("the first partial frame is charged", || {
        budget.in_use() >= 500 * KIB
    })
    .await;
    // A second one would pass the 800 KiB total: refused, the first unharmed.
    let before = refused_metric("total");
    let mut second = partial_frame(socket, 500 * KIB, 300 * KIB).await;
    assert!(closed_within_bound(&mut second).await, "total budget");
    assert_eq!(refused_metric("total") - before, 1.0);
    assert_eq!(budget.refused(), 2);
    // Over HTTP the same budget answers 503 to a large declared body.
    let mut post = TcpStream::connect(http).await.unwrap();
    post.write_all(
        format!(
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Type: avro/binary\r\nContent-Length: {}\r\n\r\n",
            500 * KIB
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(BOUND, post.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("budget"), "{answer}");
    assert_eq!(budget.refused(), 3);
    // A chunked body (no length to charge up front) is charged as it
    // arrives: 256 KiB fit beside the first frame, one byte more does not.
    let mut chunked = TcpStream::connect(http).await.unwrap();
    let mut bytes = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: avro/binary\r\n\
                      Transfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    for _ in 0..16 {
        bytes.extend_from_slice(format!("{:x}\r\n", 16 * KIB).as_bytes());
        bytes.resize(bytes.len() + 16 * KIB, 0);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"1\r\nx\r\n");
    chunked.write_all(&bytes).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(BOUND, chunked.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("total budget"), "{answer}");
    assert_eq!(budget.refused(), 4);

    // The first frame completes: its charge is released (the message is
    // handled like any other; all zeros read as a handshake and a ping).
    first.write_all(&vec![0u8; 200 * KIB]).await.unwrap();
    eventually("released once the frame completed", || budget.in_use() == 0).await;
    drop(first);

    // And a well-behaved client is served throughout.
    let client = avro_rpc::Client::new(
        greeter(),
        avro_rpc::transport::socket::SocketTransport::connect(socket)
            .await
            .unwrap(),
    );
    let reply = client
        .call(call(
            &client,
            "hello",
            &[(
                "name",
                avro_rpc::export::apache_avro::types::Value::String("x".into()),
            )],
        ))
        .await
        .unwrap();
    assert!(reply.result.is_ok(), "{reply:?}");
}

#[tokio::test]
async fn a_closed_connection_gives_its_charge_back() {
    let _ = metrics();
    let (socket, _, responder) = servers().await;
    let budget = responder.frame_budget();
    let held = partial_frame(socket, 400 * KIB, 100 * KIB).await;
    eventually("charged", || budget.in_use() >= 400 * KIB).await;
    drop(held);
    eventually("released when the peer went away", || budget.in_use() == 0).await;
    assert_eq!(budget.refused(), 0);
}
