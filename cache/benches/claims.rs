//! Claim throughput and latency on the real local servers, single and
//! batched, memcached and Redis, next to a plain `redis-benchmark` and a plain
//! memcached `set` loop against the same servers in the same run.
//!
//! `cargo bench -p cinerec-cache --bench claims` (needs `dev/stack up`, or the
//! `CINEREC_MEMCACHED_URL` / `CINEREC_REDIS_URL` servers). The client runs on
//! one tokio thread, so "claims/s" is per client core.

use std::process::Command;
use std::time::{Duration, Instant};

use cinerec_cache::{Backend, Cache, CacheConfig, Claim, ZoneAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Claims expire soon so repeated runs do not fill the servers.
const TTL: Duration = Duration::from_secs(10);
const SINGLE_SEQ: usize = 20_000;
const SINGLE_CONC_TASKS: usize = 64;
const SINGLE_CONC: usize = 200_000;
const BATCH: usize = 100;
const BATCHES: usize = 5_000;
const BATCH_CONC_TASKS: usize = 4;

struct Figures {
    ops: usize,
    elapsed: Duration,
    /// Latency of each call (one claim, or one batch).
    lat: Vec<Duration>,
}

impl Figures {
    fn print(&mut self, what: &str) {
        self.lat.sort_unstable();
        let pct = |p: f64| {
            let i = ((self.lat.len() as f64 * p) as usize).min(self.lat.len().saturating_sub(1));
            self.lat.get(i).copied().unwrap_or_default()
        };
        println!(
            "  {what:<44} {:>10.0} claims/s   p50 {:>8.1} µs   p99 {:>8.1} µs",
            self.ops as f64 / self.elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e6,
            pct(0.99).as_secs_f64() * 1e6,
        );
    }
}

fn expect_claimed(c: &Claim) {
    assert!(
        matches!(c, Claim::Claimed { degraded: false }),
        "unexpected {c:?}: is the server up?"
    );
}

async fn single_sequential(cache: &Cache, run: &str) -> Figures {
    let mut lat = Vec::with_capacity(SINGLE_SEQ);
    let start = Instant::now();
    for i in 0..SINGLE_SEQ {
        let t = Instant::now();
        let c = cache
            .claim(&format!("{run}-s-{i}"), TTL)
            .await
            .expect("claim");
        lat.push(t.elapsed());
        expect_claimed(&c);
    }
    Figures {
        ops: SINGLE_SEQ,
        elapsed: start.elapsed(),
        lat,
    }
}

async fn single_concurrent(cache: &Cache, run: &str) -> Figures {
    let per_task = SINGLE_CONC / SINGLE_CONC_TASKS;
    let start = Instant::now();
    let tasks: Vec<_> = (0..SINGLE_CONC_TASKS)
        .map(|t| {
            let cache = cache.clone();
            let run = run.to_owned();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_task);
                for i in 0..per_task {
                    let s = Instant::now();
                    let c = cache
                        .claim(&format!("{run}-c-{t}-{i}"), TTL)
                        .await
                        .expect("claim");
                    lat.push(s.elapsed());
                    expect_claimed(&c);
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(SINGLE_CONC);
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    Figures {
        ops: per_task * SINGLE_CONC_TASKS,
        elapsed: start.elapsed(),
        lat,
    }
}

async fn batched(cache: &Cache, run: &str, tasks: usize) -> Figures {
    let per_task = BATCHES / tasks;
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let cache = cache.clone();
            let run = run.to_owned();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_task);
                let mut keys: Vec<String> = Vec::with_capacity(BATCH);
                for b in 0..per_task {
                    keys.clear();
                    keys.extend((0..BATCH).map(|i| format!("{run}-b{tasks}-{t}-{b}-{i}")));
                    let s = Instant::now();
                    let got = cache.claim_many(&keys, TTL).await.expect("claim_many");
                    lat.push(s.elapsed());
                    got.iter().for_each(expect_claimed);
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for h in handles {
        lat.extend(h.await.expect("task"));
    }
    Figures {
        ops: per_task * tasks * BATCH,
        elapsed: start.elapsed(),
        lat,
    }
}

/// Plain `set` loop on one connection, `depth` commands per write, for a
/// baseline of what the memcached server does without any claim logic.
async fn memcached_set_loop(addr: &str, total: usize, depth: usize) -> f64 {
    let mut s = TcpStream::connect(addr).await.expect("connect memcached");
    s.set_nodelay(true).expect("nodelay");
    let mut req = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let start = Instant::now();
    let mut done = 0;
    while done < total {
        req.clear();
        for i in 0..depth {
            req.extend_from_slice(format!("set plain-{} 0 10 1\r\nx\r\n", done + i).as_bytes());
        }
        s.write_all(&req).await.expect("write");
        let want = depth * b"STORED\r\n".len();
        let mut got = 0;
        while got < want {
            let n = s.read(&mut buf).await.expect("read");
            assert!(n > 0, "memcached closed the connection");
            got += n;
        }
        done += depth;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

fn redis_benchmark(port: u16, extra: &[&str]) {
    let port = port.to_string();
    let mut args = vec!["-q", "-p", &port, "-t", "set", "-n", "100000"];
    args.extend_from_slice(extra);
    match Command::new("redis-benchmark").args(&args).output() {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            // redis-benchmark -q redraws progress with \r; keep the final line.
            let last = text.rsplit('\r').next().unwrap_or_default().trim();
            println!(
                "  redis-benchmark {:<28} {last}",
                args[1..].join(" ").replace("-q ", "")
            );
        }
        Err(e) => println!("  redis-benchmark not runnable: {e}"),
    }
}

fn peak_rss_mib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l[6..].trim().to_owned())
        })
        .unwrap_or_else(|| "n/a".into())
}

async fn backend_figures(url: &str, run: &str) {
    let addr = ZoneAddr::parse(url).expect("url");
    if std::net::TcpStream::connect(addr.socket_addr()).is_err() {
        panic!("{url} is unreachable: start the local stack with `dev/stack up`");
    }
    let config = CacheConfig::new("bench", url)
        .expect("config")
        .op_timeout(Duration::from_secs(2));
    let cache = Cache::new(&config).expect("cache");
    println!("{url}");
    single_sequential(&cache, run)
        .await
        .print("claim, 1 in flight");
    single_concurrent(&cache, run).await.print(&format!(
        "claim, {SINGLE_CONC_TASKS} tasks (auto-pipelined)"
    ));
    batched(&cache, run, 1)
        .await
        .print(&format!("claim_many x{BATCH}, 1 in flight (p = per batch)"));
    batched(&cache, run, BATCH_CONC_TASKS).await.print(&format!(
        "claim_many x{BATCH}, {BATCH_CONC_TASKS} in flight (p = per batch)"
    ));
    match addr.backend {
        Backend::Redis => {
            redis_benchmark(addr.port, &[]);
            redis_benchmark(addr.port, &["-P", "100"]);
        }
        Backend::Memcached => {
            let a = addr.socket_addr();
            println!(
                "  plain memcached set loop, 1 in flight       {:>10.0} sets/s",
                memcached_set_loop(&a, 20_000, 1).await
            );
            println!(
                "  plain memcached set loop, 100 per write     {:>10.0} sets/s",
                memcached_set_loop(&a, 500_000, 100).await
            );
        }
    }
    let s = cache.stats();
    assert_eq!(
        s.claimed_degraded + s.in_flight + s.already_done,
        0,
        "{s:?}"
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let urls = [
        std::env::var("CINEREC_MEMCACHED_URL")
            .unwrap_or_else(|_| "memcached://127.0.0.1:11311".into()),
        std::env::var("CINEREC_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:16379".into()),
    ];
    println!("cinerec-cache claims bench: client on one tokio thread, in-flight TTL {TTL:?}");
    rt.block_on(async {
        for url in &urls {
            backend_figures(url, &run).await;
        }
    });
    println!("peak RSS of the bench process: {}", peak_rss_mib());
}
