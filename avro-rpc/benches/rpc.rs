//! Throughput and latency of a small call (≈100 B each way) through the
//! generated typed client and server, over the socket transport and over
//! HTTP, on loopback TCP, at 1, 16 and 256 calls in flight.
//!
//! `cargo bench -p avro-rpc --bench rpc` (add `-- --quick` for a short run).
//! Prints one line per transport × concurrency: calls/s, p50, p99, and the
//! process's peak RSS at the end. Client and server share the process (and
//! the machine's cores), so calls/s is for the pair, not per server core.

use std::sync::Arc;
use std::time::{Duration, Instant};

use avro_rpc::codegen::HandlerError;
use avro_rpc::transport::http::{HttpTransport, serve_http};
use avro_rpc::transport::socket::{SocketTransport, serve_socket};
use std::convert::Infallible;

mod greeter {
    avro_rpc::include_protocol!("greeter");
}
use greeter::*;

struct Bench;

impl Greeter for Bench {
    async fn hello(&self, name: String) -> Result<String, HandlerError<Infallible>> {
        Ok(name)
    }
    async fn echo(&self, greeting: Greeting) -> Result<Greeting, HandlerError<Infallible>> {
        Ok(greeting)
    }
    async fn add(&self, a: i32, b: i64) -> Result<i64, HandlerError<Infallible>> {
        Ok(i64::from(a).wrapping_add(b))
    }
    async fn refuse(&self, _code: i32) -> Result<(), HandlerError<RefuseError>> {
        Ok(())
    }
    async fn wait(&self, key: String) -> Result<String, HandlerError<Infallible>> {
        Ok(key)
    }
    async fn notify(&self, _event: String) -> Result<(), HandlerError<Infallible>> {
        Ok(())
    }
}

/// Runs `total` calls with `in_flight` concurrent workers; returns calls/s and sorted latencies.
async fn run(client: &GreeterClient, in_flight: usize, total: usize) -> (f64, Vec<Duration>) {
    let payload: String = "x".repeat(96);
    // Warm up: handshake, allocator, connection pools.
    for _ in 0..200 {
        client.hello(payload.clone()).await.expect("warm-up call");
    }
    let per_worker = total / in_flight;
    let start = Instant::now();
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let client = client.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_worker);
                for _ in 0..per_worker {
                    let t = Instant::now();
                    let r = client.hello(payload.clone()).await.expect("call");
                    lat.push(t.elapsed());
                    debug_assert_eq!(r.len(), 96);
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    let elapsed = start.elapsed();
    all.sort();
    (all.len() as f64 / elapsed.as_secs_f64(), all)
}

fn pct(lat: &[Duration], p: f64) -> Duration {
    let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
    lat[i]
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let socket_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let socket_addr = socket_listener.local_addr().expect("addr");
        let responder = Arc::new(GreeterServer::new(Bench).responder().expect("protocol"));
        tokio::spawn(serve_socket(socket_listener, responder.clone()));
        let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let http_addr = http_listener.local_addr().expect("addr");
        tokio::spawn(serve_http(http_listener, responder));

        let socket = GreeterClient::new(
            SocketTransport::connect(socket_addr)
                .await
                .expect("connect"),
        )
        .expect("protocol");
        let http =
            GreeterClient::new(HttpTransport::new(&format!("http://{http_addr}/")).expect("uri"))
                .expect("protocol");

        println!("transport  in-flight      calls/s    p50(us)    p99(us)");
        for (name, client) in [("socket", &socket), ("http", &http)] {
            for in_flight in [1usize, 16, 256] {
                let total = match (quick, in_flight) {
                    (true, 1) => 2_000,
                    (true, _) => 10_240,
                    (false, 1) => 20_000,
                    (false, _) => 102_400,
                };
                let (rate, lat) = run(client, in_flight, total).await;
                println!(
                    "{name:<9} {in_flight:>10} {rate:>12.0} {:>10} {:>10}",
                    pct(&lat, 0.50).as_micros(),
                    pct(&lat, 0.99).as_micros()
                );
            }
        }
        if let Some(kib) = peak_rss_kib() {
            println!("peak RSS: {} MiB", kib / 1024);
        }
    });
}
