//! Overload and oversized input over real sockets: connections past the
//! limit get 503 `too_many_connections`, requests past the in-flight limit
//! are shed with 503 `overloaded`, oversized heads get 431 and an oversized
//! body streamed for real gets 413 — each with the `{error, reason}` body
//! and counted — hyper's own refusals too (a head past its buffer, a request
//! line that is not HTTP), whose empty bodies the server replaces with ours.

mod common;

use std::time::Duration;

use common::{Harness, failed, read_response, rejected, serve_api};
use review_svc::http_server::HttpArgs;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const BOUND: Duration = Duration::from_secs(20);
const GET_OPENAPI: &[u8] = b"GET /openapi.json HTTP/1.1\r\nHost: test\r\n\r\n";

#[tokio::test]
async fn connections_past_the_limit_get_503_until_one_closes() -> anyhow::Result<()> {
    let h = Harness::new("rv_conn_limit").await?;
    let args = HttpArgs {
        http_max_connections: 2,
        ..HttpArgs::default()
    };
    let (addr, shutdown) = serve_api(&h, args).await?;
    // Two connections held open (each answered once, so both are accepted).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(GET_OPENAPI).await?;
        assert_eq!(read_response(&mut s, BOUND).await?.status, 200);
        held.push(s);
    }
    let before = failed("too_many_connections");
    let mut third = TcpStream::connect(addr).await?;
    third.write_all(GET_OPENAPI).await?;
    let refused = read_response(&mut third, BOUND).await?;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.json()["error"], "too_many_connections");
    assert!(
        refused.json()["reason"]
            .as_str()
            .is_some_and(|r| r.contains('2'))
    );
    assert_eq!(failed("too_many_connections") - before, 1.0);

    // One closes: a new connection is served again (the permit comes back
    // when the server sees the close, so poll).
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(GET_OPENAPI).await?;
        if read_response(&mut s, BOUND).await?.status == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never served again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.trigger();
    h.cleanup().await
}

#[tokio::test]
async fn requests_past_the_in_flight_limit_are_shed() -> anyhow::Result<()> {
    let h = Harness::new("rv_shed").await?;
    let args = HttpArgs {
        http_max_in_flight: 1,
        ..HttpArgs::default()
    };
    let (addr, shutdown) = serve_api(&h, args).await?;
    let token = h.token("5", &[]);
    let body = r#"{"user_id":5,"movie_id":9,"rating":4.0,"text":"held"}"#;
    let (first, rest) = body.split_at(10);
    // A request that holds the only slot: its body arrives in two parts.
    let mut holder = TcpStream::connect(addr).await?;
    holder
        .write_all(
            format!(
                "POST /v1/reviews HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
                body.len()
            )
            .as_bytes(),
        )
        .await?;
    let before = failed("overloaded");
    let mut other = TcpStream::connect(addr).await?;
    let deadline = tokio::time::Instant::now() + BOUND;
    let shed = loop {
        other.write_all(GET_OPENAPI).await?;
        let r = read_response(&mut other, BOUND).await?;
        if r.status == 503 {
            break r;
        }
        // The holder's request may not have reached the router yet.
        assert_eq!(r.status, 200, "{r:?}");
        assert!(tokio::time::Instant::now() < deadline, "never shed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(shed.json()["error"], "overloaded", "{shed:?}");
    assert!(
        shed.json()["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    assert_eq!(failed("overloaded") - before, 1.0);
    // The holder finishes: it is answered, and the slot is free again.
    holder.write_all(rest.as_bytes()).await?;
    let written = read_response(&mut holder, BOUND).await?;
    assert_eq!(written.status, 201, "{written:?}");
    other.write_all(GET_OPENAPI).await?;
    assert_eq!(read_response(&mut other, BOUND).await?.status, 200);
    shutdown.trigger();
    h.cleanup().await
}

#[tokio::test]
async fn oversized_heads_and_garbage_are_refused_and_counted() -> anyhow::Result<()> {
    let h = Harness::new("rv_heads").await?;
    let (addr, shutdown) = serve_api(&h, HttpArgs::default()).await?;

    // Past our header limit, inside hyper's buffer: our 431 body.
    let before = rejected("headers_too_large");
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(
        format!(
            "GET /openapi.json HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\n\r\n",
            "a".repeat(20 * 1024)
        )
        .as_bytes(),
    )
    .await?;
    let r = read_response(&mut s, BOUND).await?;
    assert_eq!(r.status, 431, "{r:?}");
    assert_eq!(r.json()["error"], "headers_too_large");
    assert!(
        r.json()["reason"]
            .as_str()
            .is_some_and(|r| r.contains("16384"))
    );
    assert_eq!(rejected("headers_too_large") - before, 1.0);

    // Past hyper's buffer: hyper refuses the head itself; our body, counted.
    let before = rejected("headers_too_large");
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(
        format!(
            "GET /openapi.json HTTP/1.1\r\nHost: test\r\nX-Huge: {}\r\n\r\n",
            "a".repeat(1024 * 1024)
        )
        .as_bytes(),
    )
    .await?;
    let r = read_response(&mut s, BOUND).await?;
    assert_eq!(r.status, 431, "{r:?}");
    assert_eq!(r.json()["error"], "headers_too_large", "{r:?}");
    assert!(
        r.json()["reason"]
            .as_str()
            .is_some_and(|r| r.contains("65536")),
        "{r:?}"
    );
    wait_for(|| rejected("headers_too_large") - before == 1.0).await;

    // Not HTTP at all: hyper's 400, with our body, counted.
    let before = rejected("malformed_request");
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"HELLO THERE\r\n\r\n").await?;
    let r = read_response(&mut s, BOUND).await?;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["error"], "malformed_request", "{r:?}");
    assert!(r.json()["reason"].as_str().is_some_and(|r| !r.is_empty()));
    wait_for(|| rejected("malformed_request") - before == 1.0).await;
    shutdown.trigger();
    h.cleanup().await
}

/// A real oversized body streamed over a socket, chunked (no length to
/// check up front, so the limit must cut it off while streaming) and with a
/// `Content-Length`: 413 `body_too_large` both times, nothing stored.
#[tokio::test]
async fn an_oversized_body_streamed_over_a_socket_gets_413() -> anyhow::Result<()> {
    let h = Harness::new("rv_413").await?;
    let (addr, shutdown) = serve_api(&h, HttpArgs::default()).await?;
    let token = h.token("5", &[]);
    let body = format!(
        r#"{{"user_id":5,"movie_id":9,"rating":3.0,"text":"{}"}}"#,
        "y".repeat(64 * 1024)
    );
    let head = |framing: &str| {
        format!(
            "POST /v1/reviews HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\n{framing}\r\n\r\n"
        )
    };

    let before = rejected("body_too_large");
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(head("Transfer-Encoding: chunked").as_bytes())
        .await?;
    // 4 KiB chunks, as a client streaming a file would send them; the
    // server may answer and close before all are sent.
    for chunk in body.as_bytes().chunks(4096) {
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(chunk);
        framed.extend_from_slice(b"\r\n");
        if s.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let r = read_response(&mut s, BOUND).await?;
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.json()["error"], "body_too_large");
    assert_eq!(rejected("body_too_large") - before, 1.0);

    let before = rejected("body_too_large");
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(head(&format!("Content-Length: {}", body.len())).as_bytes())
        .await?;
    let _ = s.write_all(body.as_bytes()).await;
    let r = read_response(&mut s, BOUND).await?;
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.json()["error"], "body_too_large");
    assert_eq!(rejected("body_too_large") - before, 1.0);

    let (_, _, page) = h
        .call(
            axum::http::Method::GET,
            "/v1/users/5/reviews",
            None,
            &[],
            None,
        )
        .await?;
    assert_eq!(page["reviews"].as_array().map(Vec::len), Some(0), "{page}");
    shutdown.trigger();
    h.cleanup().await
}

/// hyper reports its own refusals when the connection ends, just after the
/// client read the answer: poll briefly for the count.
async fn wait_for(done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "not counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
