//! What the pipeline tests share: the load generator driven against the run's
//! review-svc, waiting on review-svc's write counter, and the run summary.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use cinerec_tests::pipeline::proof::Acked;
use cinerec_tests::pipeline::{JWT_AUDIENCE, JWT_ISSUER, Pipeline, Service};
use loadgen::driver::{self, DriverConfig, Report};
use loadgen::workload::{Workload, WorkloadConfig};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How the load generator is driven.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Operations (creations, edits, deletes) to send.
    pub ops: u64,
    /// Mean operations per second.
    pub rate: f64,
    /// Share of creations sent twice with the same key.
    pub duplicate_share: f64,
    /// Share of operations that edit an earlier review.
    pub edit_share: f64,
    /// Share of operations that delete an earlier review.
    pub delete_share: f64,
    /// Seed of the run's choices.
    pub seed: u64,
}

/// Starts loadgen's driver against `p`'s review-svc in a task.
pub fn start_load(p: &Pipeline, load: Load) -> anyhow::Result<JoinHandle<Report>> {
    let config = p.config();
    let workload = Workload::new(WorkloadConfig {
        world_seed: config.world_seed,
        run_seed: load.seed,
        movies: config.movies,
        users: config.users,
        mean_rate: load.rate,
        day_length: Duration::from_secs(60),
        edit_share: load.edit_share,
        delete_share: load.delete_share,
        ..WorkloadConfig::default()
    })
    .map_err(|e| anyhow::anyhow!("bad workload: {e}"))?;
    let token = loadgen::token::admin_token(
        &p.names().jwt_secret,
        JWT_ISSUER,
        JWT_AUDIENCE,
        Duration::from_secs(3_600),
    )?;
    let driver_config = DriverConfig {
        api: p.review_api(),
        token,
        concurrency: 32,
        duration: Duration::from_secs(3_600),
        max_ops: load.ops,
        duplicate_share: load.duplicate_share,
        run_id: p.names().run.clone(),
    };
    Ok(tokio::spawn(driver::run(
        workload,
        driver_config,
        std::future::pending(),
    )))
}

/// Waits until review-svc has stored at least `writes` writes (creations,
/// edits, deletes) — the load's progress, for placing faults.
pub async fn wait_writes(p: &Pipeline, writes: u64) -> anyhow::Result<()> {
    cinerec_tests::pipeline::proof::poll(
        Duration::from_secs(600),
        Duration::from_millis(200),
        || async {
            let m = p
                .metric_total(Service::ReviewSvc, "review_svc_writes_total", &[])
                .await?;
            Ok(if m >= writes as f64 {
                Ok(())
            } else {
                Err(format!("{m} of {writes} writes"))
            })
        },
    )
    .await
}

/// The acknowledged state of every review the load wrote.
pub fn acked(report: &Report) -> anyhow::Result<HashMap<Uuid, Acked>> {
    report
        .acked
        .iter()
        .map(|(id, a)| {
            Ok((
                Uuid::parse_str(id).with_context(|| format!("review id {id:?}"))?,
                Acked {
                    version: a.version,
                    deleted: a.deleted,
                },
            ))
        })
        .collect()
}

/// A counter of `service` summed over its lives (0 when absent).
pub async fn total(p: &Pipeline, service: Service, name: &str, labels: &[(&str, &str)]) -> f64 {
    p.metric_total(service, name, labels).await.unwrap_or(0.0)
}

/// Duplicates skipped by the enricher and the recommender, in their own
/// event counters and in their idempotency caches' claims.
#[derive(Debug, Clone, Copy, Default)]
pub struct Duplicates {
    /// `cinerec_stream_events_total{operator="enricher",outcome="duplicate"}`.
    pub enricher: f64,
    /// `cinerec_cache_claims_total{namespace=<enricher's>,outcome="already_done"}`.
    pub enricher_cache: f64,
    /// `recommender_events_total{outcome="duplicate"}`.
    pub recommender: f64,
    /// `cinerec_cache_claims_total{namespace=<recommender's>,outcome="already_done"}`.
    pub recommender_cache: f64,
}

/// Reads [`Duplicates`] over every life of the two consumers.
pub async fn duplicates(p: &Pipeline) -> Duplicates {
    let enr_ns = p.names().enricher_cache_namespace.clone();
    let rec_ns = p.names().recommender_cache_namespace.clone();
    Duplicates {
        enricher: total(
            p,
            Service::Enricher,
            "cinerec_stream_events_total",
            &[("outcome", "duplicate")],
        )
        .await,
        enricher_cache: total(
            p,
            Service::Enricher,
            "cinerec_cache_claims_total",
            &[("namespace", &enr_ns), ("outcome", "already_done")],
        )
        .await,
        recommender: total(
            p,
            Service::Recommender,
            "cinerec_stream_events_total",
            &[("operator", "recommender"), ("outcome", "duplicate")],
        )
        .await,
        recommender_cache: total(
            p,
            Service::Recommender,
            "cinerec_cache_claims_total",
            &[("namespace", &rec_ns), ("outcome", "already_done")],
        )
        .await,
    }
}

/// Passes `result` through; on an error prints the run's log tails first.
pub fn with_logs<T>(p: &Pipeline, result: anyhow::Result<T>) -> anyhow::Result<T> {
    if let Err(e) = &result {
        eprintln!("FAILED: {e:#}");
        eprint!("{}", p.log_tails());
    }
    result
}
