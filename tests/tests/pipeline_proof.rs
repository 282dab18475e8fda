//! The proof (issue 7 point 5, issue 12 point 4): 20k operations through the
//! whole pipeline with 10% of creations sent twice, 5% edits and 1% deletes,
//! every change event and a range of enriched events redelivered at the
//! Kafka level, with **two enrichers and three recommenders** in their
//! groups; during the load one enricher and one recommender are SIGKILLed
//! mid-batch and restarted, a fourth recommender joins and one leaves
//! (SIGTERM: revoked, drained) — rebalances under load — and the Kafka
//! broker is restarted once. Afterwards reconciliation finds zero
//! differences, every acknowledged review is in the recommender's changelog
//! at its latest acknowledged version, and both consumers counted duplicates
//! they skipped.
//!
//! This restarts the shared Kafka broker: it is alone in its test binary.

mod pipeline_common;

use std::time::{Duration, Instant};

use cinerec_tests::pipeline::proof::settle;
use cinerec_tests::pipeline::{Pipeline, PipelineConfig, Service};
use loadgen::replay::{self, ReplayConfig, ReplayStart};
use pipeline_common::{Load, acked, duplicates, start_load, total, wait_writes, with_logs};

const OPS: u64 = 20_000;
/// How long the pipeline may take to settle after the load at most (it
/// gives up earlier when it stops making progress: `proof::STALL`).
const SETTLE_DEADLINE: Duration = Duration::from_secs(900);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_broker_restart_and_duplicates_reconcile_to_zero() -> anyhow::Result<()> {
    let mut p = Pipeline::start(PipelineConfig::new("proof")).await?;
    let result = run(&mut p).await;
    with_logs(&p, result)?;
    p.cleanup().await
}

async fn run(p: &mut Pipeline) -> anyhow::Result<()> {
    let started = Instant::now();
    let load = start_load(
        p,
        Load {
            ops: OPS,
            rate: 500.0,
            duplicate_share: 0.10,
            edit_share: 0.05,
            delete_share: 0.01,
            seed: 7,
        },
    )?;

    // Faults while the load runs, placed by its progress.
    wait_writes(p, OPS / 10).await?;
    let leaving = p.add_replica(Service::Recommender).await?;
    p.add_replica(Service::Recommender).await?;
    p.add_replica(Service::Enricher).await?;
    eprintln!(
        "{:?}: 3 recommenders and 2 enrichers running",
        started.elapsed()
    );
    wait_writes(p, OPS / 4).await?;
    p.kill9_and_restart(Service::Enricher).await?;
    eprintln!("{:?}: enricher SIGKILLed and restarted", started.elapsed());
    wait_writes(p, OPS / 2).await?;
    p.kill9_and_restart(Service::Recommender).await?;
    eprintln!(
        "{:?}: recommender SIGKILLed and restarted",
        started.elapsed()
    );
    wait_writes(p, OPS * 6 / 10).await?;
    p.add_replica(Service::Recommender).await?;
    let left = p.stop_replica(leaving).await?;
    anyhow::ensure!(left.success(), "a leaving recommender exits 0: {left}");
    eprintln!(
        "{:?}: a fourth recommender joined, one left ({} replicas + 1)",
        started.elapsed(),
        p.replicas_running(Service::Recommender)
    );
    wait_writes(p, OPS * 7 / 10).await?;
    let away = p.restart_kafka().await?;
    eprintln!(
        "{:?}: Kafka broker restarted (away {away:?})",
        started.elapsed()
    );

    let report = load.await?;
    let load_took = started.elapsed();
    eprint!("{}", report.summary());
    anyhow::ensure!(
        report.failed == 0,
        "{} operations got no answer",
        report.failed
    );
    anyhow::ensure!(
        report.sent.get("duplicate").copied().unwrap_or(0) > 0
            && report.sent.get("edit").copied().unwrap_or(0) > 0,
        "the load sent duplicates and edits: {:?}",
        report.sent
    );

    // Redelivery at the Kafka level: every change event of the run again,
    // and the most recent enriched events of every partition again.
    let names = p.names().clone();
    let brokers = p.stack().kafka_brokers.clone();
    let changes = replay::replay(&ReplayConfig {
        brokers: brokers.clone(),
        topic: names.changes_topic.clone(),
        partitions: None,
        start: ReplayStart::Offset(0),
        count: u64::MAX,
    })
    .await?;
    let enriched = replay::replay(&ReplayConfig {
        brokers,
        topic: names.enriched_topic.clone(),
        partitions: None,
        start: ReplayStart::Last(500),
        count: 500,
    })
    .await?;
    eprintln!(
        "replayed {} change events and {} enriched events",
        changes.replayed, enriched.replayed
    );
    anyhow::ensure!(
        changes.replayed > 0 && enriched.replayed > 0,
        "something was replayed"
    );

    let acked = acked(&report)?;
    let settled = settle(p, &acked, SETTLE_DEADLINE).await?;
    if let Some(r) = &settled.reconciled {
        eprint!("{}", r.report);
    }
    let settle_took = settled.took;

    let dups = duplicates(p).await;
    let dlq_enricher = total(
        p,
        Service::Enricher,
        "cinerec_stream_events_total",
        &[("outcome", "dlq")],
    )
    .await;
    let dlq_recommender = total(
        p,
        Service::Recommender,
        "cinerec_stream_events_total",
        &[("operator", "recommender"), ("outcome", "dlq")],
    )
    .await;
    eprintln!(
        "proof: {} operations sent, {} acknowledged ({} reviews), {} duplicate sends, \
         {} change events and {} enriched events replayed; duplicates skipped: enricher {} \
         (cache already_done {}), recommender {} (cache already_done {}); DLQ: enricher {}, \
         recommender {}; load {:.1}s, settled {:.1}s after it, total {:.1}s",
        report.sent.values().sum::<u64>(),
        report.accepted(),
        acked.len(),
        report.sent.get("duplicate").copied().unwrap_or(0),
        changes.replayed,
        enriched.replayed,
        dups.enricher,
        dups.enricher_cache,
        dups.recommender,
        dups.recommender_cache,
        dlq_enricher,
        dlq_recommender,
        load_took.as_secs_f64(),
        settle_took.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    for s in Service::ALL {
        if p.early_exits(s) > 0 {
            eprintln!(
                "note: {s} exited during start-up {} times",
                p.early_exits(s)
            );
        }
    }
    anyhow::ensure!(settled.ok(), "{}", settled.problems());
    // The replays guarantee both: every change event was redelivered after
    // its first copy was done, and so were recent enriched events.
    anyhow::ensure!(
        dups.enricher > 0.0 && dups.enricher_cache > 0.0,
        "the enricher skipped duplicates, and its cache said so: {dups:?}"
    );
    anyhow::ensure!(
        dups.recommender > 0.0 && dups.recommender_cache > 0.0,
        "the recommender skipped duplicates, and its cache said so: {dups:?}"
    );
    Ok(())
}
