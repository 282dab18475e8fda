//! `cinerec-bench recommender`: the recommender alone at N instances (issue
//! 12 point 5). For each N: a fresh `reviews.enriched` (6 partitions),
//! keyspace, group and cache namespace; N `recommender run` processes of the
//! binary next to this executable; `EnrichedReview`s produced straight to the
//! topic at a steady rate (open loop, paced every 10 ms) for the step; then
//! a drain until every event is handled. Reported per N: sustained events/s,
//! p50/p99 from the record's Kafka timestamp to its user's serving row being
//! durable (the instances' histograms summed), CPU per instance and of
//! Cassandra and Kafka, Cassandra writes per event, peak RSS per instance.
//!
//! `--restore N` also measures a restart: N review states appended to a
//! fresh changelog topic, one recommender started on it, the time until it is
//! ready (its model restored) and its peak RSS; then a handover: a second
//! instance joins, the first is SIGKILLed, and the time until the survivor
//! holds every partition's lease.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use cinerec_tests::pipeline::{Metrics, bin_dir, free_addrs, http};
use cinerec_tests::{Stack, unique_name};
use clap::{Args, ValueEnum};
use rdkafka::producer::{FutureRecord, Producer};

use crate::latency::{Buckets, show};
use crate::load::{
    self, Events, PARTITIONS, create_topic, offer, producer, ready_producer, stack_dir,
};
use crate::procs::{self, CpuSnapshot, Watched};

/// The latency histogram.
const LATENCY: &str = "recommender_event_latency_seconds";
/// Every event handled, by outcome.
const EVENTS: &str = "cinerec_stream_events_total";
/// Cassandra writes (successful attempts).
const WRITES: &str = "recommender_cassandra_write_seconds_count";
/// `cinerec-bench recommender` flags.
#[derive(Debug, Args)]
pub struct RecommenderArgs {
    /// Instance counts to measure, one step each.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    instances: Vec<usize>,
    /// Offered events/s.
    #[arg(long, default_value_t = 5_000)]
    pub rate: u64,
    /// Offered rates, events/s, one step each (overrides `--rate`; with
    /// `--peer`, each rate runs on both systems).
    #[arg(long, value_delimiter = ',')]
    pub rates: Option<Vec<u64>>,
    /// Also run the same job on a peer system, in the same run, on the same
    /// Kafka, Cassandra and events, and print both side by side (one
    /// recommender instance per rate).
    #[arg(long, value_enum)]
    pub peer: Option<Peer>,
    /// With `--peer`: a rate is sustained when its p99 is within this, ms,
    /// and every event was handled within the drain.
    #[arg(long, default_value_t = 100.0)]
    pub p99_limit_ms: f64,
    /// Length of the load, seconds.
    #[arg(long, default_value_t = 20)]
    pub secs: u64,
    /// Longest wait for the instances to catch up after the load, seconds.
    #[arg(long, default_value_t = 60)]
    pub drain_secs: u64,
    /// Users the events are spread over (uniform; each has a few hundred
    /// candidate movies).
    #[arg(long, default_value_t = 20_000)]
    pub users: i64,
    /// Movies (Zipf-like popularity).
    #[arg(long, default_value_t = 5_000)]
    pub movies: i64,
    /// Flush interval of the instances (`--refresh-interval-ms`).
    #[arg(long, default_value_t = 100)]
    pub flush_ms: u64,
    /// Background refresh budget per flush (`--refresh-max-users`; unset:
    /// the recommender's default, 300). With `--peer flink` the job gets the
    /// same budget (its `--refresh-max-rows`, whose default is the same 300).
    #[arg(long)]
    pub refresh_max_users: Option<usize>,
    /// Also measure a restart with this many review states in the changelog (0: skip).
    #[arg(long, default_value_t = 0)]
    restore: u64,
    /// Seed of the events.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The systems `--peer` can compare with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Peer {
    /// The Flink 2.2 job of bench/peers/flink (a local MiniCluster).
    Flink,
}

/// One N's figures.
#[derive(Debug)]
pub struct Step {
    /// Events/s offered.
    pub offered: u64,
    instances: usize,
    pub produced: u64,
    pub handled: u64,
    pub load_secs: f64,
    pub drain_secs: f64,
    pub latency: Buckets,
    pub writes: f64,
    /// Cores used per watched process over load and drain.
    pub cpu: BTreeMap<String, f64>,
    /// Cores busy with processes not watched (builds of others on the box).
    pub others: Option<f64>,
    pub rss_kib: Vec<u64>,
    /// Means over the step: (flush s, Cassandra write s, batch s, events per batch).
    pub means: (f64, f64, f64, f64),
    /// p99 over the step: (flush, batch).
    pub p99s: (Option<f64>, Option<f64>),
}

impl RecommenderArgs {
    /// The offered rates: `--rates`, else `--rate`.
    pub fn offered(&self) -> Vec<u64> {
        self.rates.clone().unwrap_or_else(|| vec![self.rate])
    }
}

/// One running instance.
struct Instance {
    child: Child,
    admin: SocketAddr,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> anyhow::Result<PathBuf> {
    let path = bin_dir()?.join("recommender");
    anyhow::ensure!(
        path.is_file(),
        "{} is not built: cargo build --release -p recommender -p cinerec-bench",
        path.display()
    );
    Ok(path)
}

fn spawn(
    stack: &Stack,
    run: &str,
    name: &str,
    args: &RecommenderArgs,
    logs: &Path,
    changelog: Option<&str>,
) -> anyhow::Result<Instance> {
    let flush_ms = args.flush_ms;
    let admin = free_addrs(1)?[0];
    let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
    let mut cmd = Command::new(binary()?);
    cmd.arg("run")
        .args(["--brokers", &stack.kafka_brokers])
        .args(["--group", &format!("{run}_rec")])
        .args(["--source-topic", &format!("{run}.enriched")])
        .args(["--cache-urls", &stack.memcached_urls.join(",")])
        .args(["--cache-namespace", &format!("{run}_rec")])
        .args(["--cql-nodes", &stack.cql_nodes.join(",")])
        .args(["--keyspace", &format!("{run}_rec")])
        .args(["--instance", name])
        .args(["--refresh-interval-ms", &flush_ms.to_string()])
        .args(["--admin-addr", &admin.to_string()])
        .env("CINEREC_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if let Some(topic) = changelog {
        cmd.args(["--changelog-topic", topic]);
    }
    if let Some(max) = args.refresh_max_users {
        cmd.args(["--refresh-max-users", &max.to_string()]);
    }
    Ok(Instance {
        child: cmd.spawn().context("starting the recommender")?,
        admin,
    })
}

async fn ready(i: &Instance, within: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        if let Ok((200, _)) = http::get(i.admin, "/readyz").await {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            started.elapsed() < within,
            "instance at {} not ready within {within:?}",
            i.admin
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn scrape(instances: &[Instance]) -> anyhow::Result<Vec<Metrics>> {
    let mut out = Vec::new();
    for i in instances {
        let (_, body) = http::get(i.admin, "/metrics").await?;
        out.push(Metrics::parse(&body)?);
    }
    Ok(out)
}

fn sum(pages: &[Metrics], name: &str) -> f64 {
    pages.iter().map(|p| p.sum(name, &[])).sum()
}

/// N instances on a fresh topic, `rate` events/s for `args.secs`, then the drain.
pub async fn step(
    args: &RecommenderArgs,
    n: usize,
    rate: u64,
    logs: &Path,
) -> anyhow::Result<Step> {
    let stack = Stack::from_env();
    let run = unique_name("benchrec");
    let topic = format!("{run}.enriched");
    create_topic(&stack, &topic, false).await?;
    let step_logs = logs.join(format!("n{n}-{rate}"));
    std::fs::create_dir_all(&step_logs)?;
    let mut instances = Vec::new();
    for k in 0..n {
        instances.push(spawn(
            &stack,
            &run,
            &format!("i{k}"),
            args,
            &step_logs,
            None,
        )?);
        // One at a time: each joins the group once the previous is consuming.
        ready(
            instances.last().context("just pushed")?,
            Duration::from_secs(120),
        )
        .await?;
    }
    // Let the group settle: cooperative rebalances take two rounds; load
    // only once every partition's lease is held and has been for 2 s (a
    // step that starts mid-rebalance measures the handover, not the rate).
    let settling = Instant::now();
    let mut settled_since: Option<Instant> = None;
    loop {
        let owned = sum(&scrape(&instances).await?, "recommender_owned_partitions");
        if owned >= f64::from(PARTITIONS) {
            let since = *settled_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_secs(2) {
                break;
            }
        } else {
            settled_since = None;
        }
        anyhow::ensure!(
            settling.elapsed() < Duration::from_secs(120),
            "the group did not settle: {owned} of {PARTITIONS} partitions leased"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut watched: Vec<Watched> = instances
        .iter()
        .enumerate()
        .map(|(k, i)| Watched {
            label: format!("recommender-{k}"),
            pid: i.child.id(),
        })
        .collect();
    if let Some(dir) = stack_dir() {
        for part in ["cassandra", "kafka"] {
            if let Some(pid) = procs::stack_pid(&dir, part) {
                watched.push(Watched {
                    label: part.to_owned(),
                    pid,
                });
            }
        }
    }
    let producer = ready_producer(&stack, &topic).await?;
    let before = scrape(&instances).await?;
    let cpu_before = CpuSnapshot::take(&watched);
    let mut events = Events::new(args.seed, args.users, args.movies);
    let started = Instant::now();
    let produced = offer(&producer, &topic, &mut events, rate, args.secs).await?;
    let load_secs = started.elapsed().as_secs_f64();
    let handled_before = sum(&before, EVENTS);
    let drain_started = Instant::now();
    let mut after = scrape(&instances).await?;
    while sum(&after, EVENTS) - handled_before < produced as f64
        && drain_started.elapsed() < Duration::from_secs(args.drain_secs)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = scrape(&instances).await?;
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();
    // The last flush of the last batch.
    tokio::time::sleep(Duration::from_millis(args.flush_ms * 3)).await;
    let cpu_after = CpuSnapshot::take(&watched);
    let after = scrape(&instances).await?;
    let mut latency = Buckets::default();
    for (b, a) in before.iter().zip(&after) {
        latency = latency.plus(&Buckets::scrape(a, LATENCY).since(&Buckets::scrape(b, LATENCY)));
    }
    let used = cpu_before.until(&cpu_after, procs::clock_ticks());
    let others = used.others();
    let cpu = used.per_process;
    let rss_kib = instances
        .iter()
        .map(|i| procs::peak_rss_kib(i.child.id()).unwrap_or(0))
        .collect();
    let delta = |name: &str| sum(&after, name) - sum(&before, name);
    let mean =
        |name: &str| delta(&format!("{name}_sum")) / delta(&format!("{name}_count")).max(1.0);
    let means = (
        mean("recommender_refresh_seconds"),
        mean("recommender_cassandra_write_seconds"),
        mean("cinerec_stream_batch_seconds"),
        mean("cinerec_stream_batch_events"),
    );
    let p99 = |name: &str| {
        let mut b = Buckets::default();
        for (x, y) in before.iter().zip(&after) {
            b = b.plus(&Buckets::scrape(y, name).since(&Buckets::scrape(x, name)));
        }
        b.quantile(0.99)
    };
    let p99s = (
        p99("recommender_refresh_seconds"),
        p99("cinerec_stream_batch_seconds"),
    );
    let step = Step {
        means,
        p99s,
        instances: n,
        offered: rate,
        produced,
        handled: (sum(&after, EVENTS) - handled_before).max(0.0) as u64,
        load_secs,
        drain_secs,
        latency,
        writes: sum(&after, WRITES) - sum(&before, WRITES),
        cpu,
        others,
        rss_kib,
    };
    drop(instances);
    load::cleanup(&stack, &run, "rec").await;
    Ok(step)
}

/// A restart over `states` review states: append them to a fresh changelog,
/// start one instance on it, time its readiness.
async fn restore(
    args: &RecommenderArgs,
    logs: &Path,
) -> anyhow::Result<(Duration, u64, f64, Duration)> {
    let stack = Stack::from_env();
    let run = unique_name("benchrestore");
    create_topic(&stack, &format!("{run}.enriched"), false).await?;
    let changelog = format!("{run}_rec-review-states-changelog");
    create_topic(&stack, &changelog, true).await?;
    let producer = producer(&stack)?;
    let mut events = Events::new(args.seed, args.users, args.movies);
    let started = Instant::now();
    for _ in 0..args.restore {
        let ev = events.next();
        let payload = ev.encode()?;
        let p = i32::try_from(ev.user_id.rem_euclid(i64::from(PARTITIONS)))?;
        loop {
            let record = FutureRecord::to(&changelog)
                .partition(p)
                .key(ev.review_id.as_bytes().as_slice())
                .payload(&payload);
            match producer.send_result(record) {
                Ok(_) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    eprintln!(
        "bench: {} states appended to {changelog} in {:.1} s",
        args.restore,
        started.elapsed().as_secs_f64()
    );
    let dir = logs.join("restore");
    std::fs::create_dir_all(&dir)?;
    let instance = spawn(&stack, &run, "restore", args, &dir, Some(&changelog))?;
    let took = ready(&instance, Duration::from_secs(600)).await?;
    let pages = scrape(std::slice::from_ref(&instance)).await?;
    let restore_secs = sum(&pages, "recommender_rebuild_seconds");
    let rss = procs::peak_rss_kib(instance.child.id()).unwrap_or(0);
    // Handover: a second instance joins (restores too), then the first is
    // SIGKILLed; how long until the survivor holds every partition's lease.
    let second = spawn(&stack, &run, "survivor", args, &dir, Some(&changelog))?;
    ready(&second, Duration::from_secs(600)).await?;
    let owned = |i: &Instance| {
        let i = i.admin;
        async move {
            let (_, body) = http::get(i, "/metrics").await?;
            Ok::<f64, anyhow::Error>(
                Metrics::parse(&body)?.sum("recommender_owned_partitions", &[]),
            )
        }
    };
    let settle = Instant::now();
    while owned(&second).await? < 1.0 && settle.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut first = instance;
    first.child.kill()?;
    first.child.wait()?;
    let killed = Instant::now();
    while owned(&second).await? < f64::from(PARTITIONS) {
        anyhow::ensure!(
            killed.elapsed() < Duration::from_secs(120),
            "the survivor did not take every partition within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let handover = killed.elapsed();
    drop(first);
    drop(second);
    load::cleanup(&stack, &run, "rec").await;
    Ok((took, rss, restore_secs, handover))
}

/// Runs every step and prints the table.
pub async fn run(args: RecommenderArgs) -> anyhow::Result<()> {
    if args.peer == Some(Peer::Flink) {
        return crate::flink::run(args).await;
    }
    let logs = bin_dir()?
        .join("bench-logs")
        .join(unique_name("recommender"));
    std::fs::create_dir_all(&logs)?;
    eprintln!("bench: logs in {}", logs.display());
    let mut steps = Vec::new();
    for rate in args.offered() {
        for &n in &args.instances {
            eprintln!(
                "bench: {n} instance(s), {rate} events/s for {} s",
                args.secs
            );
            let s = step(&args, n, rate, &logs).await?;
            eprintln!("bench: {s:?}");
            steps.push(s);
        }
    }
    println!(
        "recommender alone, events offered for {} s, {} users, {} movies, flush every {} ms, background budget {} rows per flush",
        args.secs,
        args.users,
        args.movies,
        args.flush_ms,
        args.refresh_max_users
            .map_or_else(|| "default".to_owned(), |n| n.to_string())
    );
    println!(
        "| offered/s | N | produced | handled | sustained ev/s | p50 | p99 | recommender CPU (cores, each) | CPU ms / 1k events (all instances) | Cassandra CPU | Kafka CPU | Cassandra writes / event | peak RSS MiB (each) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for s in &steps {
        let busy_secs = s.load_secs + s.drain_secs;
        let rec: Vec<f64> = s
            .cpu
            .iter()
            .filter(|(k, _)| k.starts_with("recommender"))
            .map(|(_, v)| *v)
            .collect();
        let rec_total: f64 = rec.iter().sum();
        let per_k = rec_total * busy_secs * 1e3 / (s.handled.max(1) as f64 / 1e3);
        println!(
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
            s.offered,
            s.instances,
            s.produced,
            s.handled,
            s.handled as f64 / busy_secs.max(1e-3),
            show(s.latency.quantile(0.5)),
            show(s.latency.quantile(0.99)),
            rec.iter()
                .map(|c| format!("{c:.2}"))
                .collect::<Vec<_>>()
                .join(" "),
            per_k,
            s.cpu.get("cassandra").copied().unwrap_or(0.0),
            s.cpu.get("kafka").copied().unwrap_or(0.0),
            s.writes / s.handled.max(1) as f64,
            s.rss_kib
                .iter()
                .map(|k| format!("{:.0}", *k as f64 / 1024.0))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    for s in &steps {
        println!(
            "{}/s, N = {}: mean flush {:.0} ms (p99 {}), mean Cassandra write {:.1} ms, mean batch {:.0} ms (p99 {}) of {:.0} events",
            s.offered,
            s.instances,
            s.means.0 * 1e3,
            show(s.p99s.0),
            s.means.1 * 1e3,
            s.means.2 * 1e3,
            show(s.p99s.1),
            s.means.3
        );
    }
    if args.restore > 0 {
        let (took, rss, restore_secs, handover) = restore(&args, &logs).await?;
        println!(
            "restart over {} review states: ready after {:.1} s (restore itself {:.1} s), peak RSS {:.0} MiB; \
             handover after a SIGKILL of one of two instances: the survivor holds all {PARTITIONS} leases {:.1} s later \
             (the group's session timeout, 10 s, is most of it)",
            args.restore,
            took.as_secs_f64(),
            restore_secs,
            rss as f64 / 1024.0,
            handover.as_secs_f64()
        );
    }
    Ok(())
}
