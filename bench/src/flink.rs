//! `cinerec-bench recommender --peer flink` (issue 16, points 3 and 4): for
//! each offered rate, in one run on the same Kafka and Cassandra, the cinerec
//! recommender (one instance, the `recommender` step) and then the Flink job
//! of bench/peers/flink on the same generated events (the same seed; its own
//! fresh topic, keyspace, changelog topic and group), each loaded for
//! `--secs` and then drained; a side-by-side table per rate, and a verdict
//! against the goal: cinerec ≥ 3× Flink's sustained events/s at the same p99
//! bound, with less memory.
//!
//! It is the sibling of issue 16's `pipeline --source kafka --peer flink`:
//! the recommender is the stage both systems implement, so it is compared
//! alone (review-svc and the enricher would cost both sides the same).
//!
//! Both systems report the same figures on a Prometheus page, read with the
//! same code: the recommender's `recommender_event_latency_seconds` and the
//! job's `flink_peer_event_latency_seconds` have one definition (a record's
//! Kafka timestamp to its user's serving row durable in Cassandra) and the
//! same buckets (bench/peers/flink/README.md, "Metrics").

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use cinerec_tests::pipeline::{Metrics, bin_dir, free_addrs, http, repo_root};
use cinerec_tests::{Stack, unique_name};

use crate::latency::{Buckets, show};
use crate::load::{self, Events, PARTITIONS, create_topic, offer, ready_producer, stack_dir};
use crate::procs::{self, CpuSnapshot, Watched};
use crate::recommender::{RecommenderArgs, Step, step};

/// The job's latency histogram (the recommender's definition and buckets).
const LATENCY: &str = "flink_peer_event_latency_seconds";
/// Events the job finished with, by outcome (`done` once its row is durable).
const EVENTS: &str = "flink_peer_events_total";
/// The job's successful Cassandra writes.
const WRITES: &str = "flink_peer_cassandra_writes_total";
/// Record timestamp → the job's model stage has the event.
const ARRIVAL: &str = "flink_peer_model_arrival_seconds";
/// One flush of the job's model stage.
const FLUSH: &str = "flink_peer_flush_seconds";
/// Rows the job's model stage emitted, by table.
const ROWS: &str = "flink_peer_rows_total";
/// Kafka partitions the job's source holds.
const SOURCE_PARTITIONS: &str = "flink_peer_source_partitions";
/// 1 while the job is RUNNING.
const RUNNING: &str = "flink_peer_job_running";
/// Longest wait for the JVM to start, create its keyspace and hold every
/// partition.
const READY_WITHIN: Duration = Duration::from_secs(180);
/// The goal of issue 16: cinerec sustains this many times Flink's rate.
const GOAL_RATIO: f64 = 3.0;

/// The Flink job of one step. Dropping it (at the end of the step, on an
/// error too) kills its whole process group: the run script's `timeout` and
/// the JVM under it, which a kill of the child alone would orphan.
struct FlinkJob {
    child: Child,
    metrics: SocketAddr,
    log: PathBuf,
}

impl Drop for FlinkJob {
    fn drop(&mut self) {
        // The child leads its own group (`process_group(0)`), and GNU
        // timeout keeps the JVM in it.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The run script (it builds the jar once per source hash).
fn script() -> anyhow::Result<PathBuf> {
    Ok(repo_root()?.join("bench/peers/flink/run"))
}

/// Builds the job jar, or finds it in `~/.cache/cinerec/flink`, before any
/// step is timed.
fn build_jar() -> anyhow::Result<String> {
    let out = Command::new(script()?)
        .arg("--build-only")
        .stdin(Stdio::null())
        .output()
        .context("running bench/peers/flink/run --build-only (needs java 17 and mvn)")?;
    anyhow::ensure!(
        out.status.success(),
        "building the Flink job failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn start(
    stack: &Stack,
    run: &str,
    args: &RecommenderArgs,
    logs: &Path,
    checkpoints: &Path,
) -> anyhow::Result<FlinkJob> {
    let metrics = free_addrs(1)?[0];
    let log = logs.join("flink.log");
    let file = std::fs::File::create(&log)?;
    let cql = stack.cql_nodes.first().context("no CQL node configured")?;
    // The job stops itself after this long whatever happens; the guard
    // kills it as soon as the step is over.
    let seconds = args.secs + args.drain_secs + READY_WITHIN.as_secs() + 60;
    let mut cmd = Command::new(script()?);
    if let Some(max) = args.refresh_max_users {
        cmd.args(["--refresh-max-rows", &max.to_string()]);
    }
    let child = cmd
        .arg("--unbounded")
        .args(["--seconds", &seconds.to_string()])
        .args(["--brokers", &stack.kafka_brokers])
        .args(["--topic", &format!("{run}.enriched")])
        .args(["--group", &format!("{run}_flink")])
        .args(["--cql", cql])
        .args(["--keyspace", &format!("{run}_flink")])
        .arg("--checkpoint-dir")
        .arg(checkpoints)
        .args(["--flush-ms", &args.flush_ms.to_string()])
        .args(["--metrics-addr", &metrics.to_string()])
        .env("FLINK_PEER_TIMEOUT", (seconds + 30).to_string())
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .process_group(0)
        .spawn()
        .context("starting bench/peers/flink/run")?;
    Ok(FlinkJob {
        child,
        metrics,
        log,
    })
}

async fn page(addr: SocketAddr) -> anyhow::Result<Metrics> {
    let (status, body) = http::get(addr, "/metrics").await.with_context(|| {
        format!("scraping the Flink job's metrics at {addr} (has the JVM died?)")
    })?;
    anyhow::ensure!(status == 200, "GET {addr}/metrics: {status}");
    Metrics::parse(&body)
}

/// Waits until the job is RUNNING and its source holds every partition (so
/// no event of the load waits for the JVM or the split assignment).
async fn ready(job: &mut FlinkJob) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        if let Some(status) = job.child.try_wait()? {
            anyhow::bail!(
                "the Flink job exited ({status}) before it was ready; its log: {}",
                job.log.display()
            );
        }
        if let Ok(p) = page(job.metrics).await
            && p.sum(RUNNING, &[]) >= 1.0
            && p.sum(SOURCE_PARTITIONS, &[]) >= f64::from(PARTITIONS)
        {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            started.elapsed() < READY_WITHIN,
            "the Flink job was not ready within {READY_WITHIN:?}; its log: {}",
            job.log.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The JVM under the run script's `timeout`.
async fn jvm_pid(job: &FlinkJob) -> anyhow::Result<u32> {
    for _ in 0..50 {
        if let Some(pid) = procs::children(job.child.id()).first() {
            return Ok(*pid);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("no JVM under the Flink run script (pid {})", job.child.id())
}

/// One system's figures at one rate.
#[derive(Debug)]
struct Side {
    produced: u64,
    handled: u64,
    busy_secs: f64,
    latency: Buckets,
    writes: f64,
    /// Cores: the engine (the recommender, or the Flink JVM), Cassandra, Kafka.
    cpu: (f64, f64, f64),
    /// Cores busy with processes not watched.
    others: Option<f64>,
    rss_kib: u64,
    /// Where the time goes inside the engine, one line.
    inside: String,
}

impl Side {
    fn of_recommender(s: &Step) -> Side {
        let engine = s
            .cpu
            .iter()
            .filter(|(k, _)| k.starts_with("recommender"))
            .map(|(_, v)| *v)
            .sum();
        Side {
            produced: s.produced,
            handled: s.handled,
            busy_secs: s.load_secs + s.drain_secs,
            latency: s.latency.clone(),
            writes: s.writes,
            cpu: (
                engine,
                s.cpu.get("cassandra").copied().unwrap_or(0.0),
                s.cpu.get("kafka").copied().unwrap_or(0.0),
            ),
            others: s.others,
            rss_kib: s.rss_kib.iter().copied().max().unwrap_or(0),
            inside: format!(
                "mean flush {:.0} ms (p99 {}), mean Cassandra write {:.1} ms, mean batch {:.0} ms (p99 {}) of {:.0} events",
                s.means.0 * 1e3,
                show(s.p99s.0),
                s.means.1 * 1e3,
                s.means.2 * 1e3,
                show(s.p99s.1),
                s.means.3
            ),
        }
    }

    fn rate(&self) -> f64 {
        self.handled as f64 / self.busy_secs.max(1e-3)
    }

    /// p99 within the limit and every event handled within the drain.
    fn sustains(&self, p99_limit_ms: f64) -> bool {
        self.produced > 0
            && self.handled >= self.produced
            && self
                .latency
                .quantile(0.99)
                .is_some_and(|p| p * 1e3 <= p99_limit_ms)
    }

    fn cpu_ms_per_k(&self) -> f64 {
        self.cpu.0 * self.busy_secs * 1e3 / (self.handled.max(1) as f64 / 1e3)
    }
}

/// The Flink job at `rate`: its own topic, keyspace and changelog; started,
/// waited for, loaded with the same events as the recommender, drained.
async fn flink_step(args: &RecommenderArgs, rate: u64, logs: &Path) -> anyhow::Result<Side> {
    let stack = Stack::from_env();
    let run = unique_name("benchflink");
    let topic = format!("{run}.enriched");
    create_topic(&stack, &topic, false).await?;
    let dir = logs.join(format!("flink-{rate}"));
    std::fs::create_dir_all(&dir)?;
    let checkpoints = std::env::temp_dir().join(&run);
    let measured = async {
        let mut job = start(&stack, &run, args, &dir, &checkpoints)?;
        let took = ready(&mut job).await?;
        eprintln!(
            "bench: the Flink job holds all {PARTITIONS} partitions after {:.1} s",
            took.as_secs_f64()
        );
        let jvm = jvm_pid(&job).await?;
        let mut watched = vec![Watched {
            label: "flink".to_owned(),
            pid: jvm,
        }];
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
        let before = page(job.metrics).await?;
        let cpu_before = CpuSnapshot::take(&watched);
        let mut events = Events::new(args.seed, args.users, args.movies);
        let started = Instant::now();
        let produced = offer(&producer, &topic, &mut events, rate, args.secs).await?;
        let load_secs = started.elapsed().as_secs_f64();
        let handled_before = before.sum(EVENTS, &[]);
        let drain_started = Instant::now();
        let mut after = page(job.metrics).await?;
        while after.sum(EVENTS, &[]) - handled_before < produced as f64
            && drain_started.elapsed() < Duration::from_secs(args.drain_secs)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
            after = page(job.metrics).await?;
        }
        let drain_secs = drain_started.elapsed().as_secs_f64();
        let cpu_after = CpuSnapshot::take(&watched);
        let used = cpu_before.until(&cpu_after, procs::clock_ticks());
        let cpu = |k: &str| used.per_process.get(k).copied().unwrap_or(0.0);
        let since = |name: &str| Buckets::scrape(&after, name).since(&Buckets::scrape(&before, name));
        let delta = |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
        let (arrival, flush) = (since(ARRIVAL), since(FLUSH));
        let inside = format!(
            "model stage reached after p50 {} / p99 {}; {} flushes, mean {:.0} ms (p99 {}), {:.2} user rows and {:.2} movie rows per event",
            show(arrival.quantile(0.5)),
            show(arrival.quantile(0.99)),
            flush.count(),
            delta(&format!("{FLUSH}_sum"), &[]) / (flush.count().max(1) as f64) * 1e3,
            show(flush.quantile(0.99)),
            delta(ROWS, &[("table", "recommendations_by_user")]) / produced.max(1) as f64,
            delta(ROWS, &[("table", "similar_movies")]) / produced.max(1) as f64,
        );
        let side = Side {
            produced,
            handled: (after.sum(EVENTS, &[]) - handled_before).max(0.0) as u64,
            busy_secs: load_secs + drain_secs,
            latency: Buckets::scrape(&after, LATENCY).since(&Buckets::scrape(&before, LATENCY)),
            writes: after.sum(WRITES, &[]) - before.sum(WRITES, &[]),
            cpu: (cpu("flink"), cpu("cassandra"), cpu("kafka")),
            others: used.others(),
            rss_kib: procs::peak_rss_kib(jvm).unwrap_or(0),
            inside,
        };
        drop(job);
        Ok::<Side, anyhow::Error>(side)
    }
    .await;
    load::cleanup(&stack, &run, "flink").await;
    let _ = std::fs::remove_dir_all(&checkpoints);
    measured
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".to_owned()
    }
}

fn ms(bound: Option<f64>) -> f64 {
    bound.map_or(f64::NAN, |b| b * 1e3)
}

fn print_rate(rate: u64, args: &RecommenderArgs, c: &Side, f: &Side) {
    println!();
    println!(
        "offered {rate} events/s for {} s (seed {}, {} users, {} movies, flush every {} ms, background budget {} rows per flush on both)",
        args.secs,
        args.seed,
        args.users,
        args.movies,
        args.flush_ms,
        args.refresh_max_users
            .map_or_else(|| "default (300)".to_owned(), |n| n.to_string())
    );
    println!("| | cinerec recommender | Flink 2.2.1 job | cinerec / Flink |");
    println!("| --- | --- | --- | --- |");
    let row =
        |name: &str, a: String, b: String, r: String| println!("| {name} | {a} | {b} | {r} |");
    row(
        "handled / produced",
        format!("{} / {}", c.handled, c.produced),
        format!("{} / {}", f.handled, f.produced),
        String::new(),
    );
    row(
        "sustained events/s (handled / (load + drain))",
        format!("{:.0}", c.rate()),
        format!("{:.0}", f.rate()),
        ratio(c.rate(), f.rate()),
    );
    for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
        row(
            name,
            show(c.latency.quantile(q)),
            show(f.latency.quantile(q)),
            ratio(ms(c.latency.quantile(q)), ms(f.latency.quantile(q))),
        );
    }
    let yes = |s: &Side| {
        if s.sustains(args.p99_limit_ms) {
            "yes"
        } else {
            "no"
        }
    };
    row(
        &format!("p99 ≤ {} ms and all handled", args.p99_limit_ms),
        yes(c).to_owned(),
        yes(f).to_owned(),
        String::new(),
    );
    let cores =
        |name: &str, a: f64, b: f64| row(name, format!("{a:.2}"), format!("{b:.2}"), ratio(a, b));
    cores(
        "engine CPU, cores (recommender / Flink JVM)",
        c.cpu.0,
        f.cpu.0,
    );
    row(
        "engine CPU ms per 1k events",
        format!("{:.0}", c.cpu_ms_per_k()),
        format!("{:.0}", f.cpu_ms_per_k()),
        ratio(c.cpu_ms_per_k(), f.cpu_ms_per_k()),
    );
    cores("Cassandra CPU, cores", c.cpu.1, f.cpu.1);
    cores("Kafka CPU, cores", c.cpu.2, f.cpu.2);
    cores(
        "other processes on the box, cores",
        c.others.unwrap_or(f64::NAN),
        f.others.unwrap_or(f64::NAN),
    );
    let wpe = |s: &Side| s.writes / s.handled.max(1) as f64;
    row(
        "Cassandra writes / event",
        format!("{:.2}", wpe(c)),
        format!("{:.2}", wpe(f)),
        ratio(wpe(c), wpe(f)),
    );
    let mib = |s: &Side| s.rss_kib as f64 / 1024.0;
    row(
        "peak RSS MiB (engine)",
        format!("{:.0}", mib(c)),
        format!("{:.0}", mib(f)),
        ratio(mib(c), mib(f)),
    );
    println!("cinerec inside: {}", c.inside);
    println!("Flink inside: {}", f.inside);
}

/// The highest offered rate `side` sustained.
fn sustained(
    steps: &[(u64, Side, Side)],
    limit: f64,
    which: fn(&(u64, Side, Side)) -> &Side,
) -> Option<u64> {
    steps
        .iter()
        .filter(|s| which(s).sustains(limit))
        .map(|s| s.0)
        .max()
}

/// The verdict line: issue 16's goal against the highest rates each side
/// sustained within `limit` ms and their peak memory.
fn verdict(limit: f64, steps: &[(u64, Side, Side)]) -> String {
    let c = sustained(steps, limit, |s| &s.1);
    let f = sustained(steps, limit, |s| &s.2);
    let rss = |which: fn(&(u64, Side, Side)) -> &Side| {
        steps.iter().map(|s| which(s).rss_kib).max().unwrap_or(0) as f64 / 1024.0
    };
    let (rss_c, rss_f) = (rss(|s| &s.1), rss(|s| &s.2));
    let lowest = steps.iter().map(|s| s.0).min().unwrap_or(0);
    let highest = steps.iter().map(|s| s.0).max().unwrap_or(0);
    let less_memory = rss_c < rss_f;
    let (ratio_text, ratio_met) = match (c, f) {
        (Some(c), Some(f)) => {
            let r = c as f64 / f as f64;
            let bound = if c == highest {
                " (cinerec sustained the highest rate offered: a lower bound)"
            } else {
                ""
            };
            (
                format!("cinerec {c}/s vs Flink {f}/s: {r:.2}×{bound}"),
                r >= GOAL_RATIO,
            )
        }
        (Some(c), None) => {
            let r = c as f64 / lowest as f64;
            (
                format!(
                    "cinerec {c}/s; Flink sustained none of the rates offered (lowest {lowest}/s): more than {r:.2}×"
                ),
                r >= GOAL_RATIO,
            )
        }
        (None, Some(f)) => (format!("cinerec sustained none; Flink {f}/s"), false),
        (None, None) => ("neither sustained any rate offered".to_owned(), false),
    };
    format!(
        "verdict — goal: cinerec ≥ {GOAL_RATIO}× Flink's sustained events/s at p99 ≤ {limit} ms, with less memory: {}. {ratio_text}; peak RSS cinerec {rss_c:.0} MiB vs Flink {rss_f:.0} MiB ({})",
        if ratio_met && less_memory {
            "MET"
        } else {
            "NOT MET"
        },
        if less_memory { "less" } else { "not less" },
    )
}

/// Every rate on both systems, then the tables and the verdict.
pub async fn run(args: RecommenderArgs) -> anyhow::Result<()> {
    let jar = build_jar()?;
    eprintln!("bench: the Flink job: {jar}");
    let logs = bin_dir()?
        .join("bench-logs")
        .join(unique_name("recommender-vs-flink"));
    std::fs::create_dir_all(&logs)?;
    eprintln!("bench: logs in {}", logs.display());
    let mut steps = Vec::new();
    for rate in args.offered() {
        eprintln!(
            "bench: cinerec recommender, {rate} events/s for {} s",
            args.secs
        );
        let c = Side::of_recommender(&step(&args, 1, rate, &logs).await?);
        eprintln!("bench: cinerec: {c:?}");
        eprintln!("bench: Flink job, {rate} events/s for {} s", args.secs);
        let f = flink_step(&args, rate, &logs).await?;
        eprintln!("bench: Flink: {f:?}");
        print_rate(rate, &args, &c, &f);
        steps.push((rate, c, f));
    }
    println!();
    println!("{}", verdict(args.p99_limit_ms, &steps));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A side that handled `handled` of 1 000 events, all within `p99_s`.
    fn side(handled: u64, p99_s: f64, rss_mib: u64) -> Side {
        Side {
            produced: 1_000,
            handled,
            busy_secs: 1.0,
            latency: {
                let text = format!(
                    "l_bucket{{le=\"{p99_s}\"}} {handled}\nl_bucket{{le=\"+Inf\"}} {handled}\n"
                );
                Buckets::scrape(&Metrics::parse(&text).expect("a valid page"), "l")
            },
            writes: 0.0,
            cpu: (0.0, 0.0, 0.0),
            others: None,
            rss_kib: rss_mib * 1024,
            inside: String::new(),
        }
    }

    #[test]
    fn a_rate_is_sustained_within_the_bound_with_every_event_handled() {
        assert!(side(1_000, 0.1, 1).sustains(100.0));
        assert!(!side(1_000, 0.25, 1).sustains(100.0), "p99 above the bound");
        assert!(!side(999, 0.1, 1).sustains(100.0), "an event not handled");
    }

    #[test]
    fn the_verdict_compares_the_highest_sustained_rates_and_memory() {
        let steps = vec![
            (1_000, side(1_000, 0.05, 100), side(1_000, 0.1, 500)),
            (2_000, side(1_000, 0.05, 120), side(1_000, 1.0, 600)),
            (4_000, side(1_000, 0.1, 150), side(1_000, 10.0, 800)),
        ];
        let v = verdict(100.0, &steps);
        assert!(v.contains(": MET."), "{v}");
        assert!(v.contains("cinerec 4000/s vs Flink 1000/s: 4.00×"), "{v}");
        assert!(v.contains("a lower bound"), "{v}");
        // At a tighter bound Flink sustains nothing and cinerec 2 000/s:
        // more than 2× the lowest rate offered, short of the goal.
        let v = verdict(50.0, &steps);
        assert!(v.contains("NOT MET"), "{v}");
        assert!(v.contains("Flink sustained none"), "{v}");
        assert!(v.contains("more than 2.00×"), "{v}");
    }

    #[test]
    fn more_memory_fails_the_goal_whatever_the_rate() {
        let steps = vec![(4_000, side(1_000, 0.05, 900), side(0, 10.0, 800))];
        let v = verdict(100.0, &steps);
        assert!(v.contains("NOT MET"), "{v}");
        assert!(v.contains("(not less)"), "{v}");
    }
}
