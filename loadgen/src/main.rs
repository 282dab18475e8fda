//! The loadgen binary: sends the seeded workload to review-svc's API and
//! prints a report. `--help` lists every flag and its env var.

use std::time::Duration;

use cinerec_service_kit::{CommonArgs, defaults, shutdown, telemetry};
use clap::Parser;
use loadgen::driver::{self, DriverConfig};
use loadgen::replay::{self, ReplayConfig, ReplayStart};
use loadgen::workload::{Workload, WorkloadConfig};

/// Writes reviews through review-svc with documented distributions (README.md).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// review-svc's API base URL.
    #[arg(long, env = "LOADGEN_API", default_value = defaults::DEFAULT_REVIEW_API_URL)]
    api: String,
    /// HS256 secret review-svc accepts (its REVIEW_SVC_JWT_HS256_SECRET);
    /// needed unless nothing is sent (`--max-ops 0`, a replay alone).
    #[arg(long, env = "REVIEW_SVC_JWT_HS256_SECRET", hide_env_values = true)]
    hs256_secret: Option<String>,
    /// Token issuer review-svc expects.
    #[arg(long, env = "REVIEW_SVC_JWT_ISSUER", default_value = "cinerec-dev")]
    jwt_issuer: String,
    /// Token audience review-svc expects.
    #[arg(long, env = "REVIEW_SVC_JWT_AUDIENCE", default_value = "review-svc")]
    jwt_audience: String,
    /// Mean operations per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 60)]
    duration_secs: u64,
    /// Stop after this many operations.
    #[arg(long, default_value_t = u64::MAX)]
    max_ops: u64,
    /// Wall-clock seconds one simulated day takes.
    #[arg(long, default_value_t = 600)]
    day_length_secs: u64,
    /// Simulated hour of the day the run starts at.
    #[arg(long, default_value_t = 18.0)]
    start_hour: f64,
    /// Requests outstanding at most.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seed of the synthetic world (as given to the seeders).
    #[arg(long, env = "CINEREC_SEED", default_value_t = 1)]
    world_seed: u64,
    /// Seed of this run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Movies in the world.
    #[arg(long, env = "CINEREC_CATALOG_MOVIES", default_value_t = 50_000)]
    movies: u64,
    /// Users in the world.
    #[arg(long, env = "CINEREC_CATALOG_USERS", default_value_t = 1_000_000)]
    users: u64,
    /// Share of operations that edit an earlier review.
    #[arg(long, default_value_t = 0.05)]
    edit_share: f64,
    /// Share of operations that delete an earlier review.
    #[arg(long, default_value_t = 0.01)]
    delete_share: f64,
    /// Share of creations sent twice with the same Idempotency-Key.
    #[arg(long, default_value_t = 0.0)]
    duplicate_share: f64,
    /// Kafka fault injection: after the load (or alone, with `--max-ops 0`),
    /// read a range of this topic and produce every record of it again
    /// unchanged (same key, value, headers, partition): a redelivery the
    /// consumers must absorb.
    #[arg(long, env = "LOADGEN_REPLAY_TOPIC")]
    replay_topic: Option<String>,
    /// Kafka bootstrap servers of the replay.
    #[arg(long, env = "CINEREC_KAFKA_BROKERS", default_value = cinerec_service_kit::defaults::DEFAULT_BROKERS)]
    replay_brokers: String,
    /// First offset replayed in each partition (default: the oldest retained).
    #[arg(long, conflicts_with = "replay_last")]
    replay_from_offset: Option<i64>,
    /// Replay each partition's most recent N records instead.
    #[arg(long)]
    replay_last: Option<u64>,
    /// Records replayed per partition at most.
    #[arg(long, default_value_t = u64::MAX)]
    replay_count: u64,
    /// Partitions replayed (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    replay_partitions: Option<Vec<i32>>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init("loadgen", &args.common.log, args.common.log_format)?;
    let stop = shutdown::on_signals()?;
    let workload = Workload::new(WorkloadConfig {
        world_seed: args.world_seed,
        run_seed: args.seed,
        movies: args.movies,
        users: args.users,
        mean_rate: args.rate,
        day_length: Duration::from_secs(args.day_length_secs.max(1)),
        start_hour: args.start_hour,
        edit_share: args.edit_share,
        delete_share: args.delete_share,
    })
    .map_err(|e| anyhow::anyhow!("bad workload: {e}"))?;
    let duration = Duration::from_secs(args.duration_secs);
    let sends = args.max_ops > 0 && args.duration_secs > 0;
    let secret = match (&args.hs256_secret, sends) {
        (Some(s), _) => s.clone(),
        (None, false) => String::new(),
        (None, true) => {
            anyhow::bail!("--hs256-secret (REVIEW_SVC_JWT_HS256_SECRET) is needed to send reviews")
        }
    };
    let token = loadgen::token::admin_token(
        &secret,
        &args.jwt_issuer,
        &args.jwt_audience,
        duration + Duration::from_secs(600),
    )?;
    let run_id = format!(
        "lg{}-{}",
        args.seed,
        cinerec_service_kit::clock::now_micros() / 1_000
    );
    let report = if sends {
        eprintln!(
            "loadgen: {} ops/s for {}s against {}",
            args.rate, args.duration_secs, args.api
        );
        let report = driver::run(
            workload,
            DriverConfig {
                api: args.api.trim_end_matches('/').to_owned(),
                token,
                concurrency: args.concurrency,
                duration,
                max_ops: args.max_ops,
                duplicate_share: args.duplicate_share,
                run_id,
            },
            async move { stop.wait().await },
        )
        .await;
        print!("{}", report.summary());
        report
    } else {
        driver::Report::default()
    };
    if let Some(topic) = args.replay_topic {
        let start = match (args.replay_last, args.replay_from_offset) {
            (Some(n), _) => ReplayStart::Last(n),
            (None, Some(o)) => ReplayStart::Offset(o),
            (None, None) => ReplayStart::Offset(0),
        };
        let replayed = replay::replay(&ReplayConfig {
            brokers: args.replay_brokers,
            topic: topic.clone(),
            partitions: args.replay_partitions,
            start,
            count: args.replay_count,
        })
        .await?;
        println!(
            "replayed {} records of {topic}: {:?}",
            replayed.replayed, replayed.ranges
        );
    }
    anyhow::ensure!(
        report.failed == 0,
        "{} operations got no answer",
        report.failed
    );
    Ok(())
}
