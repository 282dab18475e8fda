//! `cinerec-bench pipeline`: the end-to-end benchmark of issue 7 (DESIGN.md
//! §7). Starts the five services as real child processes on the local stack
//! (the test harness, `cinerec_tests::pipeline`, with the run's own topics,
//! keyspaces and ports), seeds a catalogue, then offers reviews in steps of
//! increasing rate and prints, per step: offered and accepted rate, the
//! recommender's p50/p99 from the review's Kafka timestamp to its effects in
//! Cassandra, consumer lag, CPU per process and peak memory per process. It
//! stops stepping when p99 exceeds the limit or less than 90 % of the offered
//! rate is accepted, prints a verdict and deletes the run's data.
#![forbid(unsafe_code)]

mod kafka_source;
mod latency;
mod procs;
mod recommender;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use cinerec_tests::pipeline::{
    JWT_AUDIENCE, JWT_ISSUER, PARTITIONS, Pipeline, PipelineConfig, Service, bin_dir, repo_root,
};
use clap::{Args, Parser, Subcommand, ValueEnum};
use loadgen::driver::{self, DriverConfig};
use loadgen::workload::{DIURNAL_AMPLITUDE, PEAK_HOUR, Workload, WorkloadConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::kafka_source::KafkaSource;
use crate::latency::{Buckets, show};
use crate::procs::{CpuSnapshot, CpuUse, Watched};

/// The recommender's end-to-end latency histogram.
const LATENCY: &str = "recommender_event_latency_seconds";
/// Every event the enricher finished with (all outcomes).
const ENRICHER_EVENTS: &str = "cinerec_stream_events_total";
/// Every event the recommender finished with (all outcomes).
const RECOMMENDER_EVENTS: &str = "cinerec_stream_events_total";
/// Default HTTP steps (reviews/s offered).
const HTTP_RATES: &str = "250,500,1000,2000,4000,8000,16000,32000,64000";
/// Default Kafka steps (events/s offered).
const KAFKA_RATES: &str = "1000,2000,4000,8000,16000,32000,64000";
/// A step fails when less than this share of the offered rate is accepted.
const MIN_ACCEPTED_SHARE: f64 = 0.9;
/// The rate DESIGN.md §7 asks for.
const TARGET_RATE: f64 = 50_000.0;
/// A simulated day so long that the diurnal curve is flat over a run: the
/// workload starts at its peak hour, where the rate's derivative is zero.
const FLAT_DAY: Duration = Duration::from_secs(10_000_000);

#[derive(Debug, Parser)]
#[command(
    name = "cinerec-bench",
    about = "End-to-end benchmarks of cinerec on the real local stack (dev/stack up)",
    after_help = "Measure release binaries: build them first, next to this executable, with\n  \
                  cargo build --release -p review-svc -p movie-svc -p user-svc -p enricher -p recommender -p cinerec-bench\n\
                  then run `cargo run --release -p cinerec-bench -- pipeline`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Steps the offered review rate through the whole pipeline and reports
    /// the highest rate sustained with p99 within the limit.
    ///
    /// Uses the binaries of the five services next to this executable
    /// (target/release when run with --release: build them first with
    /// `cargo build --release -p review-svc -p movie-svc -p user-svc -p enricher
    /// -p recommender -p cinerec-bench`).
    Pipeline(PipelineArgs),
    /// The recommender alone at N instances: EnrichedReviews produced
    /// straight to a fresh reviews.enriched at a steady rate; sustained
    /// events/s, p50/p99 to the serving write, CPU, Cassandra writes per
    /// event and peak RSS per instance, for each N (and optionally a restart
    /// over a large changelog).
    Recommender(recommender::RecommenderArgs),
}

/// Where the reviews enter the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Source {
    /// Through review-svc's HTTP API (loadgen's open-loop driver): the whole path.
    Http,
    /// Reviews pre-created in bulk in review-svc's table, their change events
    /// produced straight to the run's reviews.changed: the consumers alone.
    Kafka,
}

#[derive(Debug, Args)]
struct PipelineArgs {
    /// Where reviews enter.
    #[arg(long, value_enum, default_value_t = Source::Http)]
    source: Source,
    /// Offered rates per step, reviews/s (default: 250…64000 for http,
    /// 1000…64000 for kafka).
    #[arg(long, value_delimiter = ',')]
    rates: Option<Vec<u64>>,
    /// Length of each step's load, seconds.
    #[arg(long, default_value_t = 20)]
    step_secs: u64,
    /// Warm-up at the first rate before the measured steps, seconds (not reported).
    #[arg(long, default_value_t = 10)]
    warmup_secs: u64,
    /// Longest wait after a step's load for the consumers to catch up, seconds
    /// (its events' latencies count in the step).
    #[arg(long, default_value_t = 60)]
    drain_secs: u64,
    /// A step passes when its p99 is within this, milliseconds.
    #[arg(long, default_value_t = 100.0)]
    p99_limit_ms: f64,
    /// Movies seeded.
    #[arg(long, default_value_t = 5_000)]
    movies: u64,
    /// Users seeded.
    #[arg(long, default_value_t = 20_000)]
    users: u64,
    /// HTTP requests outstanding at most (http source).
    #[arg(long, default_value_t = 1_024)]
    concurrency: usize,
    /// Seed of the world and the workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep stepping past a p99 above the limit; stop only when less than
    /// 90 % of the offered rate is accepted or the consumers cannot catch up
    /// (finds the throughput ceiling whatever the latency).
    #[arg(long)]
    until_saturated: bool,
    /// Keep the run's topics, keyspaces and schemas afterwards (logs always stay).
    #[arg(long)]
    keep: bool,
}

/// The figures of one step.
#[derive(Debug)]
struct StepReport {
    offered_rate: u64,
    offered: u64,
    accepted: u64,
    /// The step's length plus how far behind schedule its last review was
    /// sent: the time the accepted reviews took to offer.
    load_secs: f64,
    handled_in_load: u64,
    latency: Buckets,
    enricher_lag: u64,
    recommender_lag: u64,
    drain_secs: f64,
    drained: bool,
    cpu: CpuUse,
    peak_kib: BTreeMap<String, u64>,
    note: String,
    /// Batch sizes and times of each consumer, Cassandra write times.
    stages: String,
}

/// Count and mean of a histogram over an interval (`_count`, `_sum` differences).
fn mean_of(
    before: &cinerec_tests::pipeline::Metrics,
    after: &cinerec_tests::pipeline::Metrics,
    name: &str,
) -> Option<(u64, f64)> {
    let count =
        after.sum(&format!("{name}_count"), &[]) - before.sum(&format!("{name}_count"), &[]);
    let sum = after.sum(&format!("{name}_sum"), &[]) - before.sum(&format!("{name}_sum"), &[]);
    (count > 0.0).then(|| (count as u64, sum / count))
}

/// "N of mean E events, mean S ms" for a consumer's `<prefix>_batch_*` histograms.
fn batches(
    before: &cinerec_tests::pipeline::Metrics,
    after: &cinerec_tests::pipeline::Metrics,
    prefix: &str,
) -> String {
    match (
        mean_of(before, after, &format!("{prefix}_batch_events")),
        mean_of(before, after, &format!("{prefix}_batch_seconds")),
    ) {
        (Some((n, events)), Some((_, secs))) => {
            format!("{n} of mean {events:.0} events, {:.1} ms", secs * 1e3)
        }
        _ => "-".to_owned(),
    }
}

impl StepReport {
    fn accepted_rate(&self) -> f64 {
        self.accepted as f64 / self.load_secs.max(1e-9)
    }
    fn p99(&self) -> Option<f64> {
        self.latency.quantile(0.99)
    }
    /// Accepted ≥ 90 % of the offered rate and the consumers caught up.
    fn keeps_up(&self) -> bool {
        self.drained && self.accepted_rate() >= MIN_ACCEPTED_SHARE * self.offered_rate as f64
    }
    fn passes(&self, limit_secs: f64) -> bool {
        self.keeps_up() && self.p99().is_some_and(|p| p <= limit_secs)
    }
    /// The process using the most CPU, and how much.
    fn busiest(&self) -> Option<(&str, f64)> {
        self.cpu
            .per_process
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(l, c)| (l.as_str(), *c))
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match cli.command {
        Command::Pipeline(args) => runtime.block_on(pipeline(args)),
        Command::Recommender(args) => runtime.block_on(recommender::run(args)),
    }
}

/// Fails with the build command when a service binary is missing.
fn check_binaries() -> anyhow::Result<PathBuf> {
    let dir = bin_dir()?;
    let missing: Vec<&str> = Service::ALL
        .iter()
        .map(|s| s.name())
        .filter(|n| !dir.join(n).is_file())
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "{} not built in {}; build the services next to this executable first:\n  \
         cargo build --release -p review-svc -p movie-svc -p user-svc -p enricher -p recommender -p cinerec-bench",
        missing.join(", "),
        dir.display()
    );
    Ok(dir)
}

async fn pipeline(args: PipelineArgs) -> anyhow::Result<()> {
    let dir = check_binaries()?;
    let release = dir.ends_with("release");
    let rates = args.rates.clone().unwrap_or_else(|| {
        let defaults = match args.source {
            Source::Http => HTTP_RATES,
            Source::Kafka => KAFKA_RATES,
        };
        defaults.split(',').filter_map(|r| r.parse().ok()).collect()
    });
    anyhow::ensure!(
        !rates.is_empty() && rates.iter().all(|r| *r > 0),
        "--rates needs positive rates"
    );
    anyhow::ensure!(args.step_secs > 0, "--step-secs must be positive");
    println!(
        "cinerec-bench pipeline: source {:?}, {} binaries in {}{}",
        args.source,
        if release { "release" } else { "NON-RELEASE" },
        dir.display(),
        if release {
            ""
        } else {
            " (figures of unoptimised binaries are not the pipeline's)"
        }
    );
    let mut config = PipelineConfig::new("bench");
    config.movies = args.movies;
    config.users = args.users;
    config.world_seed = args.seed;
    config.log = "warn".to_owned();
    let started = Instant::now();
    let pipeline = Pipeline::start(config)
        .await
        .context("starting the pipeline")?;
    println!(
        "pipeline {} up in {:.0}s ({} movies, {} users); logs in {}",
        pipeline.names().run,
        started.elapsed().as_secs_f64(),
        args.movies,
        args.users,
        pipeline.log_dir().display()
    );
    let outcome = run_steps(&pipeline, &args, &rates).await;
    if args.keep {
        println!("kept the run's data (--keep): {}", pipeline.names().run);
        drop(pipeline);
    } else if let Err(e) = pipeline.cleanup().await {
        eprintln!("cleaning up the run's topics/keyspaces failed: {e:#}");
    }
    let reports = outcome?;
    print_table(&reports, args.source);
    print_verdict(&reports, &args, release);
    Ok(())
}

/// The processes to watch: the five services, this process (the load
/// driver), and the stack's Kafka and Cassandra.
fn watched(p: &Pipeline) -> Vec<Watched> {
    let mut out: Vec<Watched> = Service::ALL
        .iter()
        .filter_map(|s| {
            p.pid(*s).map(|pid| Watched {
                label: s.name().to_owned(),
                pid,
            })
        })
        .collect();
    out.push(Watched {
        label: "bench".to_owned(),
        pid: std::process::id(),
    });
    let stack_dir = std::env::var_os("CINEREC_STACK_DIR")
        .map(PathBuf::from)
        .or_else(|| repo_root().ok().map(|r| r.join(".stack")));
    if let Some(dir) = stack_dir {
        for part in ["kafka", "cassandra"] {
            if let Some(pid) = procs::stack_pid(&dir, part) {
                out.push(Watched {
                    label: part.to_owned(),
                    pid,
                });
            }
        }
    }
    out
}

/// Σ high watermarks of a topic's partitions: records ever written to it.
async fn topic_end(brokers: &str, topic: &str) -> anyhow::Result<u64> {
    let brokers = brokers.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .context("creating a watermark client")?;
        let mut total = 0_u64;
        for p in 0..PARTITIONS {
            let (_, high) = consumer
                .fetch_watermarks(&topic, p, Duration::from_secs(10))
                .with_context(|| format!("watermarks of {topic}/{p}"))?;
            total += u64::try_from(high).unwrap_or(0);
        }
        anyhow::Ok(total)
    })
    .await?
}

/// Events written to each stage's source topic and not yet finished by it:
/// (enricher, recommender). Counted as records in the topic minus events the
/// consumer counted in any outcome, so uncommitted progress is not lag.
async fn lags(p: &Pipeline) -> anyhow::Result<(u64, u64)> {
    let brokers = &p.stack().kafka_brokers;
    let names = p.names();
    let (changes, enriched) = tokio::try_join!(
        topic_end(brokers, &names.changes_topic),
        topic_end(brokers, &names.enriched_topic)
    )?;
    let enricher = p.scrape(Service::Enricher).await?.sum(ENRICHER_EVENTS, &[]) as u64;
    let recommender = p
        .scrape(Service::Recommender)
        .await?
        .sum(RECOMMENDER_EVENTS, &[]) as u64;
    Ok((
        changes.saturating_sub(enricher),
        enriched.saturating_sub(recommender),
    ))
}

fn workload(
    args: &PipelineArgs,
    step: usize,
    rate: u64,
    source: Source,
) -> anyhow::Result<Workload> {
    let (edit_share, delete_share) = match source {
        Source::Http => (0.05, 0.01),
        Source::Kafka => (0.0, 0.0),
    };
    Workload::new(WorkloadConfig {
        world_seed: args.seed,
        run_seed: args.seed.wrapping_mul(1_000).wrapping_add(step as u64),
        movies: args.movies,
        users: args.users,
        // Started at the peak hour of a very long day, the arrival rate is
        // flat at mean × (1 + amplitude): ask for the mean that gives `rate`.
        mean_rate: rate as f64 / (1.0 + DIURNAL_AMPLITUDE),
        day_length: FLAT_DAY,
        start_hour: PEAK_HOUR,
        edit_share,
        delete_share,
    })
    .map_err(|e| anyhow::anyhow!("bad workload: {e}"))
}

async fn run_steps(
    p: &Pipeline,
    args: &PipelineArgs,
    rates: &[u64],
) -> anyhow::Result<Vec<StepReport>> {
    let limit = args.p99_limit_ms / 1e3;
    let kafka = match args.source {
        Source::Kafka => {
            let session = cinerec_tests::pipeline::proof::cql_session(p).await?;
            Some(
                KafkaSource::new(
                    Arc::new(session),
                    &p.names().review_keyspace,
                    &p.stack().kafka_brokers,
                    &p.names().changes_topic,
                )
                .await?,
            )
        }
        Source::Http => None,
    };
    // Warm-up: consumer groups assigned, connections and prepared
    // statements made, caches of the services filled; not reported.
    if args.warmup_secs > 0 {
        let warm = run_step(p, args, kafka.as_ref(), 0, rates[0], args.warmup_secs).await?;
        println!(
            "warm-up: {} reviews at {}/s, p99 {} (not counted)",
            warm.offered,
            warm.offered_rate,
            show(warm.p99())
        );
    }
    let mut reports = Vec::new();
    for (step, &rate) in rates.iter().enumerate() {
        let report = run_step(p, args, kafka.as_ref(), step + 1, rate, args.step_secs).await?;
        print_step(step + 1, &report, args.source);
        let go_on = if args.until_saturated {
            report.keeps_up()
        } else {
            report.passes(limit)
        };
        reports.push(report);
        if !go_on {
            break;
        }
    }
    Ok(reports)
}

/// One step: `secs` of load at `rate`, then the drain; its figures.
async fn run_step(
    p: &Pipeline,
    args: &PipelineArgs,
    kafka: Option<&KafkaSource>,
    step: usize,
    rate: u64,
    secs: u64,
) -> anyhow::Result<StepReport> {
    let ticks = procs::clock_ticks();
    let step_len = Duration::from_secs(secs);
    let secret = &p.names().jwt_secret;
    {
        let ops: Vec<_> = workload(args, step, rate, args.source)?
            .take_while(|op| op.at < step_len)
            .collect();
        let offered = ops.len() as u64;
        // Kafka: the step's reviews are written before its clock starts.
        let plan = match kafka {
            Some(k) => {
                let t = Instant::now();
                let plan = k.precreate(&ops).await?;
                println!(
                    "{}: pre-created {} reviews in {:.1}s",
                    if step == 0 {
                        "warm-up".to_owned()
                    } else {
                        format!("step {step}")
                    },
                    plan.len(),
                    t.elapsed().as_secs_f64()
                );
                plan
            }
            None => Vec::new(),
        };
        let watch = watched(p);
        let rec_before = p.scrape(Service::Recommender).await?;
        let enr_before = p.scrape(Service::Enricher).await?;
        let hist_before = Buckets::scrape(&rec_before, LATENCY);
        let handled_before = rec_before.sum(RECOMMENDER_EVENTS, &[]);
        let cpu_before = CpuSnapshot::take(&watch);
        let (accepted, load_secs, note) = match kafka {
            Some(k) => {
                let produced = k.produce(&plan).await?;
                (
                    produced.acked,
                    secs as f64 + produced.max_lag.as_secs_f64(),
                    if produced.unsent > 0 {
                        format!("{} events never sent (producer behind)", produced.unsent)
                    } else {
                        String::new()
                    },
                )
            }
            None => {
                let token = loadgen::token::admin_token(
                    secret,
                    JWT_ISSUER,
                    JWT_AUDIENCE,
                    step_len + Duration::from_secs(600),
                )?;
                let report = driver::run(
                    workload(args, step, rate, args.source)?,
                    DriverConfig {
                        api: p.review_api(),
                        token,
                        concurrency: args.concurrency,
                        duration: step_len,
                        max_ops: u64::MAX,
                        duplicate_share: 0.0,
                        run_id: format!("{}-{step}", p.names().run),
                    },
                    std::future::pending(),
                )
                .await;
                (
                    report.accepted(),
                    secs as f64 + report.max_lag.as_secs_f64(),
                    format!(
                        "{} failed, {} skipped, max send lag {:.1}s",
                        report.failed,
                        report.skipped,
                        report.max_lag.as_secs_f64()
                    ),
                )
            }
        };
        let cpu = cpu_before.until(&CpuSnapshot::take(&watch), ticks);
        let (enricher_lag, recommender_lag) = lags(p).await?;
        let handled_in_load = (p
            .scrape(Service::Recommender)
            .await?
            .sum(RECOMMENDER_EVENTS, &[])
            - handled_before) as u64;
        let drain_started = Instant::now();
        let drain_deadline = drain_started + Duration::from_secs(args.drain_secs);
        let drained = loop {
            let (e, r) = lags(p).await?;
            if e == 0 && r == 0 {
                break true;
            }
            if Instant::now() > drain_deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let rec_after = p.scrape(Service::Recommender).await?;
        let enr_after = p.scrape(Service::Enricher).await?;
        let latency = Buckets::scrape(&rec_after, LATENCY).since(&hist_before);
        let stages = format!(
            "enricher batches: {}; recommender batches: {}; recommender Cassandra writes: {}",
            batches(&enr_before, &enr_after, "cinerec_stream"),
            batches(&rec_before, &rec_after, "cinerec_stream"),
            mean_of(
                &rec_before,
                &rec_after,
                "recommender_cassandra_write_seconds"
            )
            .map_or("-".to_owned(), |(n, mean)| format!(
                "{n} of mean {:.1} ms",
                mean * 1e3
            )),
        );
        let peak_kib = watch
            .iter()
            .filter_map(|w| procs::peak_rss_kib(w.pid).map(|k| (w.label.clone(), k)))
            .collect();
        let report = StepReport {
            offered_rate: rate,
            offered,
            accepted,
            load_secs,
            handled_in_load,
            latency,
            enricher_lag,
            recommender_lag,
            drain_secs: drain_started.elapsed().as_secs_f64(),
            drained,
            cpu,
            peak_kib,
            note,
            stages,
        };
        Ok(report)
    }
}

fn mib(kib: Option<&u64>) -> String {
    kib.map_or("-".to_owned(), |k| format!("{}", k / 1024))
}

fn print_step(n: usize, r: &StepReport, source: Source) {
    let unit = match source {
        Source::Http => "accepted (2xx)",
        Source::Kafka => "acked by Kafka",
    };
    println!(
        "step {n}: offered {}/s ({} in {:.1}s), {unit} {:.0}/s, recommender handled {:.0}/s during the load; \
         latency p50 {} p99 {} over {} events; lag at end of load: enricher {} recommender {}; \
         drained {} in {:.1}s; box CPU {}; {}",
        r.offered_rate,
        r.offered,
        r.load_secs,
        r.accepted_rate(),
        r.handled_in_load as f64 / r.load_secs.max(1e-9),
        show(r.latency.quantile(0.5)),
        show(r.p99()),
        r.latency.count(),
        r.enricher_lag,
        r.recommender_lag,
        if r.drained { "yes" } else { "NO" },
        r.drain_secs,
        match (r.cpu.box_busy, r.cpu.others()) {
            (Some(b), Some(o)) => format!(
                "{b:.2}/{} cores, of which {o:.2} by processes outside the run",
                r.cpu.cores
            ),
            _ => "-".to_owned(),
        },
        r.note,
    );
    let cpu: Vec<String> = r
        .cpu
        .per_process
        .iter()
        .map(|(l, c)| format!("{l} {:.0}%", c * 100.0))
        .collect();
    println!("  CPU (% of one core): {}", cpu.join(", "));
    let mem: Vec<String> = r
        .peak_kib
        .iter()
        .map(|(l, k)| format!("{l} {}", k / 1024))
        .collect();
    println!("  peak RSS (VmHWM, MiB): {}", mem.join(", "));
    println!("  {}", r.stages);
}

fn print_table(reports: &[StepReport], source: Source) {
    let labels = [
        "review-svc",
        "movie-svc",
        "user-svc",
        "enricher",
        "recommender",
        "bench",
        "kafka",
        "cassandra",
    ];
    println!();
    println!(
        "source {source:?}; latency = recommender_event_latency_seconds over load + drain, \
         reported as the upper bound of its bucket (…, 25, 50, 100, 250 ms, …)"
    );
    println!(
        "{:>8} {:>9} {:>9} {:>7} {:>7} {:>8} {:>8} {:>7} | CPU % of a core: {} | peak RSS MiB: {}",
        "offered",
        "accepted",
        "handled",
        "p50",
        "p99",
        "enr-lag",
        "rec-lag",
        "drained",
        labels.join(" "),
        labels.join(" ")
    );
    for r in reports {
        let cpu: Vec<String> = labels
            .iter()
            .map(|l| {
                r.cpu
                    .per_process
                    .get(*l)
                    .map_or("-".to_owned(), |c| format!("{:.0}", c * 100.0))
            })
            .collect();
        let mem: Vec<String> = labels.iter().map(|l| mib(r.peak_kib.get(*l))).collect();
        println!(
            "{:>8} {:>9.0} {:>9.0} {:>7} {:>7} {:>8} {:>8} {:>7} | {} | {}",
            r.offered_rate,
            r.accepted_rate(),
            r.handled_in_load as f64 / r.load_secs.max(1e-9),
            show(r.latency.quantile(0.5)),
            show(r.p99()),
            r.enricher_lag,
            r.recommender_lag,
            if r.drained {
                format!("{:.0}s", r.drain_secs)
            } else {
                "NO".to_owned()
            },
            cpu.join(" "),
            mem.join(" ")
        );
    }
}

fn print_verdict(reports: &[StepReport], args: &PipelineArgs, release: bool) {
    let limit = args.p99_limit_ms / 1e3;
    let best = reports
        .iter()
        .filter(|r| r.passes(limit))
        .map(|r| r.accepted_rate())
        .fold(None, |a: Option<f64>, r| Some(a.map_or(r, |a| a.max(r))));
    let last = reports.last();
    let why = last
        .filter(|r| !r.passes(limit))
        .map(|r| {
            let mut reasons = Vec::new();
            if !r.p99().is_some_and(|p| p <= limit) {
                reasons.push(format!("p99 {}", show(r.p99())));
            }
            if r.accepted_rate() < MIN_ACCEPTED_SHARE * r.offered_rate as f64 {
                reasons.push(format!(
                    "accepted {:.0}/s of {} offered",
                    r.accepted_rate(),
                    r.offered_rate
                ));
            }
            if !r.drained {
                reasons.push("consumers did not catch up".to_owned());
            }
            format!(
                "last step, {}/s offered, failed: {}",
                r.offered_rate,
                reasons.join(", ")
            )
        })
        .unwrap_or_else(|| "every step passed (raise --rates)".to_owned());
    let bottleneck = last
        .map(|r| {
            let lag = if r.enricher_lag > r.recommender_lag && r.enricher_lag > 0 {
                format!("; the enricher lagged most ({} events)", r.enricher_lag)
            } else if r.recommender_lag > 0 {
                format!(
                    "; the recommender lagged most ({} events)",
                    r.recommender_lag
                )
            } else {
                String::new()
            };
            let busiest = r.busiest().map_or("-".to_owned(), |(l, c)| {
                format!("{l} at {:.0}% of a core", c * 100.0)
            });
            let others = r.cpu.others().map_or(String::new(), |o| {
                format!(", {o:.2} cores of it by processes outside the run")
            });
            let box_busy = r.cpu.box_busy.map_or("-".to_owned(), |b| {
                format!(
                    "box {:.0}% busy ({:.2} of {} cores)",
                    b / r.cpu.cores as f64 * 100.0,
                    b,
                    r.cpu.cores
                )
            });
            format!("busiest process {busiest}, {box_busy}{others}{lag}")
        })
        .unwrap_or_default();
    let ceiling = reports
        .iter()
        .filter(|r| r.keeps_up())
        .map(|r| r.accepted_rate())
        .fold(0.0_f64, f64::max);
    let why = format!("{why}; highest rate kept up with (any latency): {ceiling:.0}/s");
    println!(
        "verdict ({}{:?} source): highest sustained rate with p99 ≤ {} ms: {} vs the {:.0}/s target; {why}; bottleneck: {bottleneck}",
        if release {
            ""
        } else {
            "NON-RELEASE binaries, "
        },
        args.source,
        args.p99_limit_ms,
        best.map_or("none".to_owned(), |b| format!("{b:.0}/s")),
        TARGET_RATE,
    );
}
