//! The admin port answers liveness, readiness (with reasons) and metrics over
//! real HTTP on loopback, and stops on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cinerec_service_kit::{AdminServer, Readiness, Shutdown, telemetry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One HTTP/1.1 GET; returns (status, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("read");
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn healthz_readyz_metrics_and_shutdown() {
    telemetry::init("admin-test", "warn", telemetry::LogFormat::Text).expect("telemetry");
    let db_up = Arc::new(AtomicBool::new(false));
    let readiness = Readiness::new()
        .with_check("always", || async { Ok::<(), String>(()) })
        .with_check("database", {
            let db_up = db_up.clone();
            move || {
                let up = db_up.load(Ordering::SeqCst);
                async move {
                    if up {
                        Ok(())
                    } else {
                        Err("connection refused".to_owned())
                    }
                }
            }
        });
    let server = AdminServer::bind("127.0.0.1:0".parse().unwrap(), readiness)
        .await
        .expect("bind");
    let addr = server.local_addr().expect("addr");
    let shutdown = Shutdown::new();
    let task = server.serve(shutdown.clone());

    assert_eq!(get(addr, "/healthz").await.0, 200);

    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503, "a failing check makes the service not ready");
    assert!(
        body.contains("connection refused"),
        "the reason is in the body: {body}"
    );
    assert!(
        body.contains(r#""always":"ok""#),
        "passing checks are listed: {body}"
    );

    db_up.store(true, Ordering::SeqCst);
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 200, "{body}");

    metrics::counter!("admin_test_events_total").increment(3);
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("admin_test_events_total 3"), "{body}");

    assert_eq!(get(addr, "/nope").await.0, 404);

    shutdown.trigger();
    task.await.expect("join").expect("served cleanly");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the port is closed after shutdown"
    );
}
