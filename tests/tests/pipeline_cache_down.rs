//! Both zones of the consumers' idempotency cache go down for part of the
//! run (SIGKILL: connections reset, every done marker lost) and come back
//! empty: the enricher and the recommender degrade to "process anyway", the
//! effects stay idempotent by version, and reconciliation still reaches
//! zero differences with every acknowledged review reflected.
//!
//! The cache is two memcached processes of this test's own, never the
//! shared stack's.

mod pipeline_common;

use std::time::{Duration, Instant};

use cinerec_tests::pipeline::proof::settle;
use cinerec_tests::pipeline::{OwnMemcached, Pipeline, PipelineConfig, Service};
use loadgen::replay::{self, ReplayConfig, ReplayStart};
use pipeline_common::{Load, acked, start_load, total, wait_writes, with_logs};

const OPS: u64 = 3_000;
/// Upper bound of the wait after the load (it ends earlier without progress).
const SETTLE_DEADLINE: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_reconcile_to_zero_through_a_cache_outage() -> anyhow::Result<()> {
    let mut zones = [OwnMemcached::start().await?, OwnMemcached::start().await?];
    let mut config = PipelineConfig::new("cachedown");
    config.cache_urls = Some(zones.iter().map(OwnMemcached::url).collect());
    let mut p = Pipeline::start(config).await?;
    let result = run(&mut p, &mut zones).await;
    with_logs(&p, result)?;
    p.cleanup().await
}

async fn run(p: &mut Pipeline, zones: &mut [OwnMemcached; 2]) -> anyhow::Result<()> {
    let started = Instant::now();
    let load = start_load(
        p,
        Load {
            ops: OPS,
            rate: 300.0,
            duplicate_share: 0.10,
            edit_share: 0.05,
            delete_share: 0.01,
            seed: 11,
        },
    )?;
    wait_writes(p, OPS / 4).await?;
    for z in zones.iter_mut() {
        z.kill();
    }
    let down = Instant::now();
    eprintln!("{:?}: both cache zones down", started.elapsed());
    // The outage lasts while a third of the load passes through.
    wait_writes(p, OPS * 7 / 12).await?;
    // Redeliveries while the cache cannot say "done": the effects alone must
    // absorb them.
    let during = replay::replay(&ReplayConfig {
        brokers: p.stack().kafka_brokers.clone(),
        topic: p.names().changes_topic.clone(),
        partitions: None,
        start: ReplayStart::Offset(0),
        count: u64::MAX,
    })
    .await?;
    for z in zones.iter_mut() {
        z.restart().await?;
    }
    eprintln!(
        "{:?}: cache zones back (down {:.1}s), {} change events replayed during the outage",
        started.elapsed(),
        down.elapsed().as_secs_f64(),
        during.replayed
    );

    let report = load.await?;
    eprint!("{}", report.summary());
    anyhow::ensure!(
        report.failed == 0,
        "{} operations got no answer",
        report.failed
    );

    let acked = acked(&report)?;
    let settled = settle(p, &acked, SETTLE_DEADLINE).await?;
    if let Some(r) = &settled.reconciled {
        eprint!("{}", r.report);
    }
    let settle_took = settled.took;
    let degraded_enricher = total(
        p,
        Service::Enricher,
        "cinerec_stream_cache_degraded_total",
        &[],
    )
    .await;
    let degraded_recommender = total(
        p,
        Service::Recommender,
        "cinerec_stream_cache_degraded_total",
        &[],
    )
    .await;
    eprintln!(
        "cache down: {} acknowledged reviews; degraded claims: enricher {degraded_enricher}, \
         recommender {degraded_recommender}; settled {:.1}s after the load, total {:.1}s",
        acked.len(),
        settle_took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    anyhow::ensure!(settled.ok(), "{}", settled.problems());
    anyhow::ensure!(
        degraded_enricher > 0.0 && degraded_recommender > 0.0,
        "both consumers ran degraded during the outage (enricher {degraded_enricher}, \
         recommender {degraded_recommender})"
    );
    Ok(())
}
