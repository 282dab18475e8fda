//! Issue 8 point 2: after a short run through the whole pipeline, each of
//! the five services' `/metrics` holds the families an operator needs, and
//! they moved: RPC calls and latency per message with their outcome, cache
//! claims by outcome, events processed/skipped, consumer lag, CDC lag and
//! publishing, database pool usage.
//!
//! Families the issue asks for that no service exports yet are listed in
//! [`NOT_EXPORTED_YET`] and printed, not asserted: move one into the table
//! when its service gains it.

mod pipeline_common;

use std::time::Duration;

use cinerec_tests::pipeline::proof::poll;
use cinerec_tests::pipeline::{Metrics, Pipeline, PipelineConfig, Service};
use pipeline_common::{Load, start_load, with_logs};

/// One expectation: `service` exports `family`; with `moved`, the sum of
/// its samples matching `labels` (for a histogram, its `_count`) is > 0.
struct Expect {
    service: Service,
    what: &'static str,
    family: &'static str,
    labels: &'static [(&'static str, &'static str)],
    moved: bool,
}

const fn e(
    service: Service,
    what: &'static str,
    family: &'static str,
    labels: &'static [(&'static str, &'static str)],
    moved: bool,
) -> Expect {
    Expect {
        service,
        what,
        family,
        labels,
        moved,
    }
}

use Service::{Enricher, MovieSvc, Recommender, ReviewSvc, UserSvc};

const EXPECTED: &[Expect] = &[
    // movie-svc and user-svc: RPC served per message and outcome, latency,
    // the read-through cache, the database pool.
    e(
        MovieSvc,
        "RPC calls by message/outcome",
        "cinerec_rpc_server_requests_total",
        &[("outcome", "ok")],
        true,
    ),
    e(
        MovieSvc,
        "RPC latency by message",
        "cinerec_rpc_server_duration_seconds_count",
        &[],
        true,
    ),
    e(
        MovieSvc,
        "read-through cache hits/misses",
        "cinerec_read_through_total",
        &[],
        true,
    ),
    e(
        MovieSvc,
        "DB pool size",
        "cinerec_db_pool_max_connections",
        &[],
        true,
    ),
    e(
        MovieSvc,
        "DB pool busy/idle",
        "cinerec_db_pool_connections",
        &[],
        false,
    ),
    e(
        UserSvc,
        "RPC calls by message/outcome",
        "cinerec_rpc_server_requests_total",
        &[("outcome", "ok")],
        true,
    ),
    e(
        UserSvc,
        "RPC latency by message",
        "cinerec_rpc_server_duration_seconds_count",
        &[],
        true,
    ),
    e(
        UserSvc,
        "read-through cache hits/misses",
        "cinerec_read_through_total",
        &[],
        true,
    ),
    e(
        UserSvc,
        "DB pool size",
        "cinerec_db_pool_max_connections",
        &[],
        true,
    ),
    e(
        UserSvc,
        "DB pool busy/idle",
        "cinerec_db_pool_connections",
        &[],
        false,
    ),
    // review-svc: writes, their latency, CDC publishing and lag, its RPC.
    e(
        ReviewSvc,
        "writes by op",
        "review_svc_writes_total",
        &[("op", "CREATE")],
        true,
    ),
    e(
        ReviewSvc,
        "write latency",
        "review_svc_write_seconds_count",
        &[],
        true,
    ),
    e(
        ReviewSvc,
        "idempotent replays",
        "review_svc_idempotent_replays_total",
        &[],
        true,
    ),
    e(
        ReviewSvc,
        "CDC events published",
        "review_svc_relay_published_total",
        &[],
        true,
    ),
    e(
        ReviewSvc,
        "CDC lag",
        "review_svc_cdc_lag_seconds_count",
        &[],
        true,
    ),
    e(
        ReviewSvc,
        "relay checkpoint age",
        "review_svc_relay_checkpoint_age_seconds",
        &[],
        false,
    ),
    e(
        ReviewSvc,
        "RPC calls (getReviews)",
        "cinerec_rpc_server_requests_total",
        &[("outcome", "ok")],
        true,
    ),
    e(
        ReviewSvc,
        "RPC latency",
        "cinerec_rpc_server_duration_seconds_count",
        &[],
        true,
    ),
    // enricher: events by outcome, cache claims by outcome, batches.
    e(
        Enricher,
        "events processed",
        "cinerec_enricher_events_total",
        &[("outcome", "processed")],
        true,
    ),
    e(
        Enricher,
        "cache claims by outcome",
        "cinerec_cache_claims_total",
        &[("outcome", "claimed")],
        true,
    ),
    e(
        Enricher,
        "batch latency",
        "cinerec_enricher_batch_seconds_count",
        &[],
        true,
    ),
    e(
        Enricher,
        "batch size",
        "cinerec_enricher_batch_events_count",
        &[],
        true,
    ),
    // recommender: events by outcome, claims, lag, writes, latency, model.
    e(
        Recommender,
        "events applied",
        "recommender_events_total",
        &[("outcome", "applied")],
        true,
    ),
    e(
        Recommender,
        "cache claims by outcome",
        "cinerec_cache_claims_total",
        &[("outcome", "claimed")],
        true,
    ),
    e(
        Recommender,
        "consumer lag per partition",
        "recommender_consumer_lag",
        &[],
        false,
    ),
    e(
        Recommender,
        "Cassandra write latency",
        "recommender_cassandra_write_seconds_count",
        &[],
        true,
    ),
    e(
        Recommender,
        "event latency (Kafka timestamp → write)",
        "recommender_event_latency_seconds_count",
        &[],
        true,
    ),
    e(
        Recommender,
        "batch latency",
        "recommender_batch_seconds_count",
        &[],
        true,
    ),
    e(
        Recommender,
        "model size",
        "recommender_model_likes",
        &[],
        true,
    ),
];

/// What issue 8 point 2 asks for that no service exports yet (printed).
const NOT_EXPORTED_YET: &[&str] = &[
    "enricher: consumer lag per partition",
    "enricher and review-svc: Avro RPC client calls/latency/errors per message (only servers count)",
    "review-svc relay and enricher: Kafka produce latency",
    "review-svc: HTTP requests and latency per route and status (only writes, rejections, failures)",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_exports_its_families_and_they_move() -> anyhow::Result<()> {
    let mut p = Pipeline::start(PipelineConfig::new("metrics")).await?;
    let result = run(&mut p).await;
    with_logs(&p, result)?;
    p.cleanup().await
}

async fn run(p: &mut Pipeline) -> anyhow::Result<()> {
    let report = start_load(
        p,
        Load {
            ops: 300,
            rate: 100.0,
            duplicate_share: 0.2,
            edit_share: 0.05,
            delete_share: 0.01,
            seed: 3,
        },
    )?
    .await?;
    anyhow::ensure!(
        report.failed == 0,
        "{} operations got no answer",
        report.failed
    );
    // Wait until the last stage has applied something and every gauge had a
    // tick (pool gauges are sampled every 5 s).
    poll(Duration::from_secs(120), Duration::from_secs(1), || async {
        let m = p.scrape(Service::Recommender).await?;
        let applied = m.sum("recommender_events_total", &[("outcome", "applied")]);
        Ok(if applied > 0.0 {
            Ok(())
        } else {
            Err("the recommender applied nothing yet".to_owned())
        })
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(6)).await;

    let mut pages: Vec<(Service, Metrics)> = Vec::new();
    for s in Service::ALL {
        pages.push((s, p.scrape(s).await?));
    }
    let page = |s: Service| {
        pages
            .iter()
            .find(|(x, _)| *x == s)
            .map(|(_, m)| m)
            .expect("every service scraped")
    };
    let mut problems = Vec::new();
    for x in EXPECTED {
        let m = page(x.service);
        let exists = m.samples().iter().any(|s| s.name == x.family);
        let value = m.sum(x.family, x.labels);
        eprintln!(
            "{:<12} {:<42} {:<48} {value}",
            x.service.name(),
            x.what,
            x.family
        );
        if !exists {
            problems.push(format!(
                "{}: {} ({}) is not exported",
                x.service, x.what, x.family
            ));
        } else if x.moved && value <= 0.0 {
            problems.push(format!(
                "{}: {} ({}{:?}) did not move",
                x.service, x.what, x.family, x.labels
            ));
        }
    }
    for missing in NOT_EXPORTED_YET {
        eprintln!("not exported yet: {missing}");
    }
    anyhow::ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}
