//! movie-svc over the socket transport: `getMovie` and `getMovies(16 ids)`,
//! with the read-through cache warm and cold (disabled, so every call reaches
//! PostgreSQL). The server runs on one runtime thread (so calls/s is per
//! server core); the client on another, 16 calls in flight on one connection.
//! Needs `dev/stack up`; seeds 50k movies into schema `movie_svc_bench`.
//!
//!     cargo bench -p movie-svc --bench rpc [-- SECONDS]
//!
//! With the allocator the movie-svc binary runs with (mimalloc), so the
//! figures are the service's.

use std::time::{Duration, Instant};

use avro_rpc::transport::socket::SocketTransport;
use cinerec_service_kit::db::{self, DbArgs};
use cinerec_service_kit::rpc::{RpcAddrs, RpcListeners};
use cinerec_service_kit::{Shutdown, telemetry};
use futures::StreamExt;
use movie_svc::rpc::proto::MovieServiceClient;
use movie_svc::service::movies;
use movie_svc::store::MovieStore;
use rand::{Rng, SeedableRng};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MOVIES: u64 = 50_000;
const IN_FLIGHT: usize = 16;

fn main() -> anyhow::Result<()> {
    let seconds: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3.0);
    telemetry::init("movie-svc-bench", "warn", telemetry::LogFormat::Text)?;
    println!(
        "movie-svc rpc bench: socket transport, {IN_FLIGHT} in flight, {seconds}s per row, 1 server thread"
    );
    println!(
        "{:<28} {:>10} {:>9} {:>9}",
        "scenario", "calls/s", "p50", "p99"
    );
    for (cache, capacity) in [("warm", 100_000_u64), ("cold", 0)] {
        let server = start_server(capacity)?;
        let client_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        client_rt.block_on(async {
            let client =
                MovieServiceClient::new(SocketTransport::connect(server.addrs.socket).await?)?;
            if capacity > 0 {
                // Warm every id so the measured calls are all cache hits.
                for chunk in (1..=MOVIES as i64).collect::<Vec<_>>().chunks(1000) {
                    client
                        .get_movies(chunk.to_vec())
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                }
            }
            for batch in [1_usize, 16] {
                let (rate, p50, p99) =
                    run(&client, batch, Duration::from_secs_f64(seconds)).await?;
                let name = if batch == 1 {
                    "getMovie".to_owned()
                } else {
                    format!("getMovies({batch})")
                };
                println!(
                    "{:<28} {:>10.0} {:>7.0}µs {:>7.0}µs",
                    format!("{name}, cache {cache}"),
                    rate,
                    p50.as_secs_f64() * 1e6,
                    p99.as_secs_f64() * 1e6
                );
            }
            anyhow::Ok(())
        })?;
        server.stop();
    }
    println!(
        "peak RSS {:.1} MiB (client + server in this process)",
        peak_rss_mib()
    );
    Ok(())
}

async fn run(
    client: &MovieServiceClient,
    batch: usize,
    duration: Duration,
) -> anyhow::Result<(f64, Duration, Duration)> {
    let started = Instant::now();
    let mut latencies: Vec<Duration> = Vec::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(batch as u64);
    let calls = futures::stream::iter(std::iter::from_fn(|| {
        (started.elapsed() < duration).then(|| {
            (0..batch)
                .map(|_| rng.random_range(1..=MOVIES as i64))
                .collect::<Vec<_>>()
        })
    }))
    .map(|ids| async move {
        let t = Instant::now();
        let ok = if ids.len() == 1 {
            client
                .get_movie(ids[0])
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            client
                .get_movies(ids)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        ok.map(|()| t.elapsed())
    })
    .buffer_unordered(IN_FLIGHT);
    futures::pin_mut!(calls);
    while let Some(latency) = calls.next().await {
        latencies.push(latency.map_err(|e| anyhow::anyhow!("call failed: {e}"))?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Ok((latencies.len() as f64 / elapsed, pct(0.50), pct(0.99)))
}

struct Server {
    addrs: RpcAddrs,
    shutdown: Shutdown,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    fn stop(self) {
        self.shutdown.trigger();
        if let Ok(Err(e)) = self.thread.join() {
            eprintln!("server: {e}");
        }
    }
}

fn start_server(cache_capacity: u64) -> anyhow::Result<Server> {
    let (tx, rx) = std::sync::mpsc::channel();
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let args = DbArgs {
                database_url: cinerec_tests::Stack::from_env().database_url,
                db_pool_size: 8,
            };
            let store = MovieStore::new(db::connect(&args, "movie_svc_bench").await?);
            store.migrate().await?;
            if store.count().await? != MOVIES as i64 {
                movie_svc::seed::seed(
                    &store,
                    &cinerec_catalog::Catalog::new(1, MOVIES, 1),
                    u64::MAX,
                )
                .await?;
            }
            // Capacity 0 with a tiny TTL keeps nothing: every call hits the database.
            let ttl = if cache_capacity == 0 {
                Duration::from_millis(1)
            } else {
                Duration::from_secs(600)
            };
            let (responder, metrics) =
                movie_svc::rpc::responder(movies(store, cache_capacity, ttl))?;
            let listeners = RpcListeners::bind(RpcAddrs {
                socket: "127.0.0.1:0".parse()?,
                http: "127.0.0.1:0".parse()?,
            })
            .await?;
            tx.send(listeners.local_addrs()?)?;
            listeners.serve(responder, metrics, stop).await?
        })
    });
    let addrs = rx
        .recv()
        .map_err(|_| anyhow::anyhow!("server failed to start"))?;
    Ok(Server {
        addrs,
        shutdown,
        thread,
    })
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
