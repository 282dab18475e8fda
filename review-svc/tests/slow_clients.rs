//! Slow clients over real sockets: a connection that starts a request head
//! and never finishes it (slowloris) is closed after the header timeout
//! while the API keeps serving others; an idle keep-alive connection is
//! closed after the idle timeout; a request whose body stalls is answered
//! 408 `{error, reason}` after the request timeout. Each is counted.
//!
//! The bounds only catch a server that never closes; they are far above the
//! configured timeouts and are not latency checks.

mod common;

use std::time::Duration;

use common::{Harness, closed_within, counter, read_response, rejected, serve_api};
use review_svc::http_server::HttpArgs;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const BOUND: Duration = Duration::from_secs(20);
const SLOWLORIS: usize = 200;

fn closed(reason: &str) -> f64 {
    counter(&format!(
        "review_svc_http_connections_closed_total{{reason=\"{reason}\"}}"
    ))
}

const GET_OPENAPI: &[u8] = b"GET /openapi.json HTTP/1.1\r\nHost: test\r\n\r\n";

#[tokio::test]
async fn half_sent_heads_are_closed_and_the_api_keeps_serving() -> anyhow::Result<()> {
    let h = Harness::new("rv_slowloris").await?;
    let args = HttpArgs {
        http_header_timeout_ms: 500,
        ..HttpArgs::default()
    };
    let (addr, shutdown) = serve_api(&h, args).await?;
    let before = closed("header_timeout");
    let mut slow = Vec::new();
    for _ in 0..SLOWLORIS {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"GET /v1/reviews/x HTTP/1.1\r\nHost: test\r\nX-Slow: ")
            .await?;
        slow.push(s);
    }
    // While they hang, another client is served.
    let mut ok = TcpStream::connect(addr).await?;
    ok.write_all(GET_OPENAPI).await?;
    assert_eq!(read_response(&mut ok, BOUND).await?.status, 200);
    for (i, s) in slow.iter_mut().enumerate() {
        assert!(closed_within(s, BOUND).await, "slow connection {i} closed");
    }
    assert_eq!(closed("header_timeout") - before, SLOWLORIS as f64);
    // The served keep-alive connection is still usable (not a header stall).
    ok.write_all(GET_OPENAPI).await?;
    assert_eq!(read_response(&mut ok, BOUND).await?.status, 200);
    shutdown.trigger();
    h.cleanup().await
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() -> anyhow::Result<()> {
    let h = Harness::new("rv_idle").await?;
    let args = HttpArgs {
        http_idle_timeout_ms: 500,
        ..HttpArgs::default()
    };
    let (addr, shutdown) = serve_api(&h, args).await?;
    let before = closed("idle_timeout");
    let mut used = TcpStream::connect(addr).await?;
    used.write_all(GET_OPENAPI).await?;
    assert_eq!(read_response(&mut used, BOUND).await?.status, 200);
    let mut silent = TcpStream::connect(addr).await?;
    assert!(
        closed_within(&mut used, BOUND).await,
        "idle after a request"
    );
    assert!(closed_within(&mut silent, BOUND).await, "never sent a byte");
    assert_eq!(closed("idle_timeout") - before, 2.0);
    shutdown.trigger();
    h.cleanup().await
}

#[tokio::test]
async fn a_stalled_body_gets_408_with_a_reason() -> anyhow::Result<()> {
    let h = Harness::new("rv_stall_body").await?;
    let args = HttpArgs {
        http_request_timeout_ms: 500,
        ..HttpArgs::default()
    };
    let (addr, shutdown) = serve_api(&h, args).await?;
    let token = h.token("5", &[]);
    let before = rejected("request_timeout");
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(
        format!(
            "POST /v1/reviews HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"user_id\":"
        )
        .as_bytes(),
    )
    .await?;
    let response = read_response(&mut s, BOUND).await?;
    assert_eq!(response.status, 408, "{response:?}");
    assert_eq!(response.json()["error"], "request_timeout");
    assert!(
        response.json()["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    assert!(
        response.head.contains("connection: close"),
        "{}",
        response.head
    );
    assert!(closed_within(&mut s, BOUND).await);
    assert_eq!(rejected("request_timeout") - before, 1.0);
    shutdown.trigger();
    h.cleanup().await
}
