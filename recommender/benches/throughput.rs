//! Recommender throughput on the local stack: a backlog of `EVENTS` enriched
//! events (`USERS` users, `MOVIES` movies with Zipf-like popularity, a
//! J-shaped rating mix, 10 % edits of earlier reviews) is published first,
//! then one recommender drains it. Reports events/s until every event is
//! handled (its state in the changelog, its offset stored), the time until
//! the flush work is done (the quiescence point), the model's size and peak
//! RSS. (`cinerec-bench recommender` measures N instances as processes under
//! a steady offered rate.)
//!
//! `cargo bench -p recommender --bench throughput` (with `dev/stack up`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use uuid::Uuid;

const EVENTS: usize = 20_000;
const USERS: i64 = 2_000;
const MOVIES: i64 = 1_000;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let world = common::World::start("rec_bench", 6).await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    // Movie rank r drawn with weight 1/r (Zipf s = 1).
    let weights: Vec<f64> = (1..=MOVIES).map(|r| 1.0 / r as f64).collect();
    let total: f64 = weights.iter().sum();
    let ratings = [
        (5.0, 0.25),
        (4.5, 0.1),
        (4.0, 0.25),
        (3.5, 0.1),
        (3.0, 0.15),
        (2.0, 0.08),
        (1.0, 0.07),
    ];
    let mut events = Vec::with_capacity(EVENTS);
    while events.len() < EVENTS {
        let rating = {
            let mut x: f64 = rng.random();
            let mut pick = 3.0;
            for (r, p) in ratings {
                if x < p {
                    pick = r;
                    break;
                }
                x -= p;
            }
            pick
        };
        if !events.is_empty() && rng.random_bool(0.1) {
            let i = rng.random_range(0..events.len());
            let base: &cinerec_events::EnrichedReview = &events[i];
            let ev = common::event(
                base.review_id,
                base.user_id,
                base.movie_id,
                Some(rating),
                base.version + 1,
            );
            events.push(ev);
            continue;
        }
        let mut x = rng.random::<f64>() * total;
        let mut movie = MOVIES;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                movie = i as i64 + 1;
                break;
            }
            x -= w;
        }
        let user = rng.random_range(1..=USERS);
        events.push(common::event(Uuid::new_v4(), user, movie, Some(rating), 1));
    }
    let producer = &world.producer;
    let mut pending = Vec::with_capacity(EVENTS);
    for ev in &events {
        let payload = ev.encode()?;
        let key = ev.key();
        let record = rdkafka::producer::FutureRecord::to(&world.topic)
            .key(&key)
            .payload(&payload);
        pending.push(producer.send_result(record).map_err(|(e, _)| e)?);
    }
    for p in pending {
        p.await?.map_err(|(e, _)| e)?;
    }

    let mut config = world.config();
    config.kafka.batch_size = 1_000;
    config.kafka.batch_linger_ms = 5;
    config.cache.in_flight_ttl_ms = 10_000;
    let (shutdown, handle, task) = world.spawn(config).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    while handle.stats().handled() < EVENTS as u64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "not drained: {:?}",
            handle.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = started.elapsed();
    let idle = handle.stats().idle_refreshes;
    while handle.stats().idle_refreshes <= idle {
        anyhow::ensure!(
            Instant::now() < deadline,
            "refresh not done: {:?}",
            handle.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let quiet = started.elapsed();
    let stats = handle.stats();
    world.check_matches(&events).await?;
    shutdown.trigger();
    task.await??;
    let metrics = cinerec_service_kit::telemetry::metrics_handle().render();
    let pick = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    };
    println!(
        "recommender throughput: {EVENTS} events ({} applied, {} stale) in {:.2} s = {:.0} events/s; \
         {} batches; quiescent after {:.2} s ({} refresh ticks); peak RSS {} MiB",
        stats.applied,
        stats.stale,
        drained.as_secs_f64(),
        EVENTS as f64 / drained.as_secs_f64(),
        stats.batches,
        quiet.as_secs_f64(),
        stats.refreshes,
        peak_rss_kib() / 1024,
    );
    println!("{}", pick("recommender_model_likes"));
    println!("{}", pick("recommender_model_pairs"));
    for name in [
        "recommender_batch_seconds_sum",
        "recommender_batch_seconds_count",
        "recommender_event_latency_seconds_sum",
        "recommender_event_latency_seconds_count",
    ] {
        println!("{}", pick(name));
    }
    Ok(())
}
