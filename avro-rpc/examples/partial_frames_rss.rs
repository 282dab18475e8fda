//! Measures what peers sending half of a large frame cost a server: starts a
//! socket server in this process with the default `Limits`, opens N
//! connections that each declare a 16 MiB frame and send 8 MiB of it, and
//! prints the process's RSS before and after, with the server's budget in
//! use and its refusals (`cargo run --release -p avro-rpc --example
//! partial_frames_rss -- 8`).

use std::sync::Arc;
use std::time::Duration;

use avro_rpc::export::apache_avro::types::Value;
use avro_rpc::{Protocol, Request, Responder, Response};
use tokio::io::AsyncWriteExt;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(8);
    let protocol = Protocol::parse(include_str!("../tests/protocols/greeter.avpr"))?;
    let handler = tower::service_fn(|_req: Request| async move {
        Ok::<_, std::convert::Infallible>(Response::ok(Value::Null))
    });
    let responder = Arc::new(Responder::new(protocol, handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(avro_rpc::transport::socket::serve_socket(
        listener,
        responder.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib();
    let mut held = Vec::new();
    for _ in 0..n {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let mut head = Vec::new();
        head.extend_from_slice(&1_i32.to_be_bytes());
        head.extend_from_slice(&1_i32.to_be_bytes());
        head.extend_from_slice(&(16_i32 * 1024 * 1024).to_be_bytes());
        s.write_all(&head).await?;
        // A refused connection is closed by the server: stop sending there.
        let _ = s.write_all(&vec![7u8; 8 * 1024 * 1024]).await;
        held.push(s);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib();
    println!(
        "{n} connections x (16 MiB declared, 8 MiB sent): RSS {} MiB -> {} MiB (+{} MiB); \
         budget in use {} MiB of {} MiB, {} refused",
        before / 1024,
        after / 1024,
        after.saturating_sub(before) / 1024,
        responder.frame_budget().in_use() / (1024 * 1024),
        responder.limits().max_incomplete_bytes_total / (1024 * 1024),
        responder.frame_budget().refused()
    );
    drop(held);
    Ok(())
}
