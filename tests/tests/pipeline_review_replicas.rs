//! The proof with review-svc scaled out (issue 13 point 4): three review-svc
//! replicas share the relay's change-log shards; mid-load one of them (not
//! the one taking the load) is SIGKILLed, so it releases nothing. The
//! survivors take its shards over after the lease TTL; afterwards every
//! acknowledged review is on `reviews.changed` at its acknowledged version,
//! the recommender's changelog reflects every one, and reconciliation finds
//! zero differences. Prints the takeover time (kill → survivors own all 8
//! shards) and the duplicates the survivors counted.

mod pipeline_common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use cinerec_events::ReviewChanged;
use cinerec_tests::pipeline::proof::{Acked, poll, settle};
use cinerec_tests::pipeline::{Pipeline, PipelineConfig, Service};
use pipeline_common::{Load, acked, start_load, total, wait_writes, with_logs};
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use uuid::Uuid;

const OPS: u64 = 4_000;
/// Change-log shards (review-svc's `CHANGE_SHARDS`).
const SHARDS: f64 = 8.0;
const SETTLE_DEADLINE: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_review_replicas_one_sigkilled_lose_nothing() -> anyhow::Result<()> {
    let mut p = Pipeline::start(PipelineConfig::new("rvreplicas")).await?;
    let result = run(&mut p).await;
    with_logs(&p, result)?;
    p.cleanup().await
}

/// Shards owned by the main review-svc and each running replica in `ids`.
async fn owned(p: &Pipeline, ids: &[usize]) -> anyhow::Result<Vec<f64>> {
    let mut out = vec![
        p.scrape(Service::ReviewSvc)
            .await?
            .sum("review_svc_relay_shards_owned", &[]),
    ];
    for &id in ids {
        out.push(
            p.replica_metric(id, "review_svc_relay_shards_owned", &[])
                .await?,
        );
    }
    Ok(out)
}

async fn run(p: &mut Pipeline) -> anyhow::Result<()> {
    let started = Instant::now();
    let victim = p.add_replica(Service::ReviewSvc).await?;
    let other = p.add_replica(Service::ReviewSvc).await?;
    let split = poll(
        Duration::from_secs(120),
        Duration::from_millis(200),
        || async {
            let shares = owned(p, &[victim, other]).await?;
            let all = shares.iter().sum::<f64>() == SHARDS;
            Ok(if all && shares.iter().all(|&n| n > 0.0) {
                Ok(shares)
            } else {
                Err(format!("shards owned {shares:?}"))
            })
        },
    )
    .await?;
    eprintln!(
        "{:?}: 3 review-svc replicas own {split:?} shards",
        started.elapsed()
    );

    // The load goes to the main review-svc's API, which stays up.
    let load = start_load(
        p,
        Load {
            ops: OPS,
            rate: 400.0,
            duplicate_share: 0.05,
            edit_share: 0.05,
            delete_share: 0.01,
            seed: 13,
        },
    )?;
    wait_writes(p, OPS / 3).await?;
    p.kill9_replica(victim).await?;
    let killed = Instant::now();
    let takeover = poll(
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async {
            let shares = owned(p, &[other]).await?;
            Ok(if shares.iter().sum::<f64>() == SHARDS {
                Ok(killed.elapsed())
            } else {
                Err(format!("survivors own {shares:?}"))
            })
        },
    )
    .await?;
    eprintln!(
        "{:?}: review-svc replica SIGKILLed; survivors owned all shards {:.2} s later",
        started.elapsed(),
        takeover.as_secs_f64()
    );

    let report = load.await?;
    eprint!("{}", report.summary());
    anyhow::ensure!(
        report.failed == 0,
        "{} operations got no answer",
        report.failed
    );
    let acked = acked(&report)?;
    on_kafka(p, &acked).await?;
    let settled = settle(p, &acked, SETTLE_DEADLINE).await?;
    if let Some(r) = &settled.reconciled {
        eprint!("{}", r.report);
    }
    let takeovers = total(
        p,
        Service::ReviewSvc,
        "review_svc_relay_lease_takeovers_total",
        &[],
    )
    .await;
    let republished = total(
        p,
        Service::ReviewSvc,
        "review_svc_relay_duplicates_republished_total",
        &[],
    )
    .await;
    eprintln!(
        "review replicas: {} acknowledged ({} reviews), takeover {:.2} s after kill -9, \
         {takeovers} lease takeovers, {republished} duplicates republished; settled {:.1}s, \
         total {:.1}s",
        report.accepted(),
        acked.len(),
        takeover.as_secs_f64(),
        settled.took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    anyhow::ensure!(settled.ok(), "{}", settled.problems());
    anyhow::ensure!(takeovers >= 1.0, "the survivors counted no takeover");
    Ok(())
}

/// Reads `reviews.changed` from the beginning until every acknowledged
/// review's acknowledged version is on it (or a minute passes).
async fn on_kafka(p: &Pipeline, acked: &HashMap<Uuid, Acked>) -> anyhow::Result<()> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &p.stack().kafka_brokers)
        .set("group.id", cinerec_tests::unique_name("replicas_check"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[p.names().changes_topic.as_str()])?;
    let mut missing: HashSet<(Uuid, i64)> = acked.iter().map(|(id, a)| (*id, a.version)).collect();
    let deadline = Instant::now() + cinerec_tests::POLL_DEADLINE;
    while !missing.is_empty() {
        let remaining = deadline.saturating_duration_since(Instant::now());
        anyhow::ensure!(
            !remaining.is_zero(),
            "{} acknowledged reviews never reached {}, e.g. {:?}",
            missing.len(),
            p.names().changes_topic,
            missing.iter().take(5).collect::<Vec<_>>()
        );
        let Ok(message) = tokio::time::timeout(remaining, consumer.recv()).await else {
            continue;
        };
        let message = message?;
        let payload = message.payload().context("change record without payload")?;
        let event = ReviewChanged::decode(payload)?;
        missing.remove(&(event.review_id, event.version));
    }
    Ok(())
}
