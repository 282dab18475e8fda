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

mod flink;
mod kafka_source;
mod latency;
mod load;
mod procs;
mod recommender;
mod report;

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
use crate::procs::{CpuSnapshot, Watched};
use crate::report::{StepReport, batches, mean_of, print_step, print_table, print_verdict};

/// The recommender's latency histogram: the enriched record's Kafka
/// timestamp → its user's serving row written.
const LATENCY: &str = "recommender_event_latency_seconds";
/// The whole pipeline's: review-svc accepted the version → its user's
/// serving row written (POST to recommendation, but for the request's own
/// handling before its commit).
const REVIEW_LATENCY: &str = "recommender_review_latency_seconds";
/// review-svc's CDC lag: a change committed → Kafka acknowledged it.
const CDC_LAG: &str = "review_svc_cdc_lag_seconds";
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
    /// over a large changelog). With `--peer flink`: per `--rates` step, the
    /// recommender and then the Flink job of bench/peers/flink on the same
    /// events, side by side, and a verdict against issue 16's goal.
    Recommender(recommender::RecommenderArgs),
}

/// Which latency a step's p99 limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Judged {
    /// The recommender's: from the enriched record's Kafka timestamp.
    Recommender,
    /// The whole pipeline's: from review-svc's acceptance of the review
    /// (http source only: pre-created reviews were accepted long before).
    EndToEnd,
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
    /// Which latency `--p99-limit-ms` applies to (`end-to-end` needs the
    /// http source).
    #[arg(long, value_enum, default_value_t = Judged::Recommender)]
    judge: Judged,
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
    anyhow::ensure!(
        !(args.judge == Judged::EndToEnd && args.source == Source::Kafka),
        "--judge end-to-end needs --source http: pre-created reviews were accepted before the step"
    );
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
        let rev_before = p.scrape(Service::ReviewSvc).await?;
        let hist_before = Buckets::scrape(&rec_before, LATENCY);
        let e2e_before = Buckets::scrape(&rec_before, REVIEW_LATENCY);
        let cdc_before = Buckets::scrape(&rev_before, CDC_LAG);
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
        let rev_after = p.scrape(Service::ReviewSvc).await?;
        let latency = Buckets::scrape(&rec_after, LATENCY).since(&hist_before);
        let end_to_end = Buckets::scrape(&rec_after, REVIEW_LATENCY).since(&e2e_before);
        let cdc_lag = Buckets::scrape(&rev_after, CDC_LAG).since(&cdc_before);
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
            end_to_end,
            cdc_lag,
            judged: args.judge,
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
