//! The HTTP transport over loopback TCP: calls of every shape, the spec's
//! HTTP rules (POST, `avro/binary`, `Content-Length`, 200 for application
//! errors), and clear 4xx answers to requests that are not Avro RPC.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use avro_rpc::Client;
use avro_rpc::export::apache_avro::types::Value;
use avro_rpc::transport::http::{HttpTransport, serve_http};
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

const GUARD: Duration = Duration::from_secs(30);

async fn server(controls: Controls) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_http(listener, responder(greeter(), controls)));
    addr
}

#[tokio::test]
async fn calls_over_http() {
    tokio::time::timeout(GUARD, async {
        let addr = server(Controls::default()).await;
        let client = Client::new(
            greeter(),
            HttpTransport::new(&format!("http://{addr}/")).unwrap(),
        );
        let r = client
            .call(call(
                &client,
                "hello",
                &[("name", Value::String("web".into()))],
            ))
            .await
            .unwrap();
        assert_eq!(r.result, Ok(Value::String("hello, web".into())));
        let r = client
            .call(call(&client, "echo", &[("greeting", greeting())]))
            .await
            .unwrap();
        assert_eq!(r.result, Ok(greeting()));
        let r = client
            .call(call(&client, "refuse", &[("code", Value::Int(2))]))
            .await
            .unwrap();
        assert!(matches!(
            r.result,
            Err(avro_rpc::RemoteError::Declared { index: 1, .. })
        ));
        let r = client
            .call(call(&client, "refuse", &[("code", Value::Int(7))]))
            .await
            .unwrap();
        assert!(matches!(r.result, Err(avro_rpc::RemoteError::System(_))));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn one_way_over_http_still_gets_an_http_response() {
    tokio::time::timeout(GUARD, async {
        let controls = Controls::default();
        let mut notified = controls.notifications();
        let addr = server(controls).await;
        let client = Client::new(
            greeter(),
            HttpTransport::new(&format!("http://{addr}/")).unwrap(),
        );
        let r = client
            .call(call(
                &client,
                "notify",
                &[("event", Value::String("x".into()))],
            ))
            .await
            .unwrap();
        assert_eq!(r.result, Ok(Value::Null));
        assert_eq!(notified.recv().await.unwrap(), "x");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn concurrent_calls_over_http() {
    tokio::time::timeout(GUARD, async {
        let addr = server(Controls::default()).await;
        let client = Client::new(
            greeter(),
            HttpTransport::new(&format!("http://{addr}/")).unwrap(),
        );
        let calls = (0..64).map(|i| {
            let client = client.clone();
            let c = call(
                &client,
                "add",
                &[("a", Value::Int(i)), ("b", Value::Long(1))],
            );
            async move { (i, client.call(c).await.unwrap()) }
        });
        for (i, r) in futures::future::join_all(calls).await {
            assert_eq!(r.result, Ok(Value::Long(i64::from(i) + 1)));
        }
    })
    .await
    .unwrap();
}

async fn raw(
    addr: SocketAddr,
    method: &str,
    content_type: &str,
    body: &'static [u8],
) -> (u16, String, String) {
    let client = HyperClient::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}/"))
        .header("content-type", content_type)
        .body(Full::new(bytes::Bytes::from_static(body)))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ct, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn non_avro_requests_get_a_4xx_with_a_reason() {
    tokio::time::timeout(GUARD, async {
        let addr = server(Controls::default()).await;
        let (s, _, reason) = raw(addr, "GET", "avro/binary", b"").await;
        assert_eq!(s, 405, "{reason}");
        let (s, _, reason) = raw(addr, "POST", "application/json", b"{}").await;
        assert_eq!(s, 415, "{reason}");
        // Truncated framing.
        let (s, _, reason) = raw(addr, "POST", "avro/binary", b"\x00\x00\x00\x10abc").await;
        assert_eq!(s, 400);
        assert!(reason.contains("truncated"), "{reason}");
        // Well framed, but not a handshake.
        let (s, _, reason) = raw(
            addr,
            "POST",
            "avro/binary",
            b"\x00\x00\x00\x03abc\x00\x00\x00\x00",
        )
        .await;
        assert_eq!(s, 400, "{reason}");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn avro_responses_are_200_with_avro_binary_and_a_length() {
    tokio::time::timeout(GUARD, async {
        let addr = server(Controls::default()).await;
        // A hand-built request: handshake (our hash, no protocol, server hash
        // = ours, no meta), empty call metadata, "refuse", code=1 (zig-zag 2).
        let p = greeter();
        let mut msg = Vec::new();
        avro_rpc::wire::HandshakeRequest {
            client_hash: p.hash(),
            client_protocol: None,
            server_hash: p.hash(),
            meta: None,
        }
        .encode(&mut msg);
        avro_rpc::wire::write_call_header(&mut msg, &Default::default(), "refuse");
        msg.push(2);
        let body = avro_rpc::wire::frame_buffers(&msg, 8192);
        let client = HyperClient::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
        let req = http::Request::post(format!("http://{addr}/"))
            .header("content-type", "avro/binary")
            .body(Full::new(body))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), 200); // an application error is still a 200
        assert_eq!(resp.headers()["content-type"], "avro/binary");
        let len: usize = resp.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), len);
        let reply = avro_rpc::wire::unframe_buffers(&body, &Default::default()).unwrap();
        let mut input = &reply[..];
        let hs =
            avro_rpc::wire::HandshakeResponse::decode(&mut input, &Default::default()).unwrap();
        assert_eq!(hs.match_, avro_rpc::wire::HandshakeMatch::Both);
        let (_, is_error) =
            avro_rpc::wire::read_response_header(&mut input, &Default::default()).unwrap();
        assert!(is_error);
        assert_eq!(input[0], 2); // union branch 1 = Refused (the first declared error)
    })
    .await
    .unwrap();
}
