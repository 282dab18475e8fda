//! Enricher throughput on the local stack: a backlog of `EVENTS` distinct
//! ReviewChanged events (over `REVIEWS` reviews stored in review-svc's real
//! store) is published first, then one enricher drains it. Reports events/s,
//! batch-latency percentiles from the instance's own batches, and peak RSS.
//!
//! `cargo bench -p enricher --bench throughput` (with `dev/stack up`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use cinerec_events::ReviewChanged;
use uuid::Uuid;

const REVIEWS: i64 = 200;
const EVENTS: usize = 20_000;

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
    let world = common::World::start("enr_bench").await?;
    let mut reviews = Vec::new();
    for i in 0..REVIEWS {
        reviews.push(world.create(1 + i % 100, 1 + i % 100, 4.0).await?);
    }
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &world.stack.kafka_brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()?;
    let mut pending = Vec::with_capacity(EVENTS);
    for i in 0..EVENTS {
        let base = reviews[i % reviews.len()];
        let ev = ReviewChanged {
            event_id: Uuid::new_v4(),
            ..base
        };
        let payload = ev.encode()?;
        let key = ev.key();
        let record = rdkafka::producer::FutureRecord::to(&world.source_topic)
            .key(&key)
            .payload(&payload);
        match producer.send_result(record) {
            Ok(d) => pending.push(d),
            Err((e, _)) => anyhow::bail!("enqueue: {e}"),
        }
    }
    for d in pending {
        d.await?.map_err(|(e, _)| e)?;
    }

    for batch_size in [100, 500] {
        let mut config = world.config();
        config.kafka.group = format!("{}_{batch_size}", config.kafka.group);
        config.cache.cache_namespace = format!("{}_{batch_size}", config.cache.cache_namespace);
        config.kafka.batch_size = batch_size;
        config.kafka.batch_linger_ms = 5;
        let started = Instant::now();
        let (shutdown, handle, task) = world.spawn_enricher(config).await?;
        let stats = world
            .wait_stats(&handle, "backlog drained", |s| {
                s.processed as usize >= EVENTS
            })
            .await?;
        let took = started.elapsed();
        shutdown.trigger();
        task.await??;
        println!(
            "batch-size {batch_size}: {EVENTS} events in {:.2}s = {:.0} events/s ({} batches, mean {:.0} events/batch), peak RSS {} MiB (whole process: stack services in-process)",
            took.as_secs_f64(),
            EVENTS as f64 / took.as_secs_f64(),
            stats.batches,
            EVENTS as f64 / stats.batches.max(1) as f64,
            peak_rss_kib() / 1024,
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
