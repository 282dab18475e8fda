//! Issue 8 point 2: after a short run through the whole pipeline, each of
//! the five services' `/metrics` holds the families an operator needs, and
//! they moved during the run: RPC calls, latency and errors per message
//! (servers and clients), cache claims by outcome, events processed, skipped
//! and dead-lettered, consumer lag per partition, produce latency, CDC lag,
//! HTTP requests per route, database pool usage.
//!
//! "Moved" is measured against a scrape taken before the load: a counter or
//! a histogram's `_count` grew. Gauges (lag, pool) must be present; error
//! outcomes that a healthy run never reaches must exist as series (at 0).
//! Skips and dead letters are provoked: after the load the test replays one
//! record of each topic (a duplicate for each consumer) and writes one
//! undecodable record to each (a DLQ entry for each consumer).
//!
//! A failure lists every missing or unmoved family at once.

mod pipeline_common;

use std::time::{Duration, Instant};

use anyhow::Context;
use cinerec_tests::pipeline::proof::poll;
use cinerec_tests::pipeline::{Metrics, Pipeline, PipelineConfig, Service};
use pipeline_common::{Load, start_load, with_logs};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// What a family must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// The samples matching the labels sum higher than before the load
    /// (counters, a histogram's `_count`).
    Moved,
    /// A sample matching the labels exists (gauges; error series at 0).
    Present,
    /// A sample matching the labels exists and carries a `partition` label.
    PerPartition,
}

/// One expectation: `service` exports `family` with samples matching
/// `labels`, checked as `check` says.
struct Expect {
    service: Service,
    what: &'static str,
    family: &'static str,
    labels: &'static [(&'static str, &'static str)],
    check: Check,
}

const fn e(
    service: Service,
    what: &'static str,
    family: &'static str,
    labels: &'static [(&'static str, &'static str)],
    check: Check,
) -> Expect {
    Expect {
        service,
        what,
        family,
        labels,
        check,
    }
}

use Check::{Moved, PerPartition, Present};
use Service::{Enricher, MovieSvc, Recommender, ReviewSvc, UserSvc};

/// RPC servers: calls per message and outcome, latency, and the error
/// series (present at 0 once a message was served).
macro_rules! rpc_server {
    ($svc:expr, $message:literal) => {
        [
            e(
                $svc,
                concat!("RPC calls served (", $message, ")"),
                "cinerec_rpc_server_requests_total",
                &[("message", $message), ("outcome", "ok")],
                Moved,
            ),
            e(
                $svc,
                concat!("RPC latency served (", $message, ")"),
                "cinerec_rpc_server_duration_seconds_count",
                &[("message", $message)],
                Moved,
            ),
            e(
                $svc,
                concat!("RPC declared errors served (", $message, ")"),
                "cinerec_rpc_server_requests_total",
                &[("message", $message), ("outcome", "declared_error")],
                Present,
            ),
            e(
                $svc,
                concat!("RPC system errors served (", $message, ")"),
                "cinerec_rpc_server_requests_total",
                &[("message", $message), ("outcome", "system_error")],
                Present,
            ),
        ]
    };
}

/// RPC clients: calls to `callee` per message and outcome, latency, and the
/// error series.
macro_rules! rpc_client {
    ($svc:expr, $callee:literal, $message:literal) => {
        [
            e(
                $svc,
                concat!("RPC calls to ", $callee, " (", $message, ")"),
                "cinerec_rpc_client_requests_total",
                &[
                    ("service", $callee),
                    ("message", $message),
                    ("outcome", "ok"),
                ],
                Moved,
            ),
            e(
                $svc,
                concat!("RPC latency to ", $callee, " (", $message, ")"),
                "cinerec_rpc_client_duration_seconds_count",
                &[("service", $callee), ("message", $message)],
                Moved,
            ),
            e(
                $svc,
                concat!("RPC timeouts to ", $callee, " (", $message, ")"),
                "cinerec_rpc_client_requests_total",
                &[
                    ("service", $callee),
                    ("message", $message),
                    ("outcome", "timeout"),
                ],
                Present,
            ),
            e(
                $svc,
                concat!("RPC unavailable ", $callee, " (", $message, ")"),
                "cinerec_rpc_client_requests_total",
                &[
                    ("service", $callee),
                    ("message", $message),
                    ("outcome", "unavailable"),
                ],
                Present,
            ),
            e(
                $svc,
                concat!("RPC system errors from ", $callee, " (", $message, ")"),
                "cinerec_rpc_client_requests_total",
                &[
                    ("service", $callee),
                    ("message", $message),
                    ("outcome", "system_error"),
                ],
                Present,
            ),
        ]
    };
}

/// The metadata services: the read-through cache and the database pool.
macro_rules! metadata_service {
    ($svc:expr) => {
        [
            e(
                $svc,
                "read-through cache hits/misses",
                "cinerec_read_through_total",
                &[],
                Moved,
            ),
            e(
                $svc,
                "DB pool size",
                "cinerec_db_pool_max_connections",
                &[],
                Present,
            ),
            e(
                $svc,
                "DB pool busy",
                "cinerec_db_pool_connections",
                &[("state", "busy")],
                Present,
            ),
            e(
                $svc,
                "DB pool idle",
                "cinerec_db_pool_connections",
                &[("state", "idle")],
                Present,
            ),
        ]
    };
}

/// Everything the run must show, by service.
fn expected() -> Vec<Expect> {
    let mut v = Vec::new();
    // movie-svc and user-svc: the enricher's multi-gets and review-svc's
    // existence checks, the read-through cache, the pool.
    v.extend(rpc_server!(MovieSvc, "getMovies"));
    v.extend(rpc_server!(MovieSvc, "getMovie"));
    v.extend(metadata_service!(MovieSvc));
    v.extend(rpc_server!(UserSvc, "getUsers"));
    v.extend(rpc_server!(UserSvc, "getUser"));
    v.extend(metadata_service!(UserSvc));
    // review-svc: the HTTP API per route, writes, CDC publishing, produce
    // latency and lag, the directory's RPC calls, getReviews served.
    v.extend([
        e(
            ReviewSvc,
            "HTTP requests by route/status",
            "cinerec_http_server_requests_total",
            &[
                ("method", "POST"),
                ("route", "/v1/reviews"),
                ("status", "2xx"),
            ],
            Moved,
        ),
        e(
            ReviewSvc,
            "HTTP latency by route",
            "cinerec_http_server_duration_seconds_count",
            &[("route", "/v1/reviews")],
            Moved,
        ),
        e(
            ReviewSvc,
            "writes by op",
            "review_svc_writes_total",
            &[("op", "CREATE")],
            Moved,
        ),
        e(
            ReviewSvc,
            "write latency",
            "review_svc_write_seconds_count",
            &[],
            Moved,
        ),
        e(
            ReviewSvc,
            "idempotent replays",
            "review_svc_idempotent_replays_total",
            &[],
            Moved,
        ),
        e(
            ReviewSvc,
            "CDC events published",
            "review_svc_relay_published_total",
            &[],
            Moved,
        ),
        e(
            ReviewSvc,
            "relay produce latency",
            "review_svc_relay_produce_seconds_count",
            &[("outcome", "ok")],
            Moved,
        ),
        e(
            ReviewSvc,
            "CDC lag (changed_at → Kafka ack)",
            "review_svc_cdc_lag_seconds_count",
            &[],
            Moved,
        ),
        e(
            ReviewSvc,
            "relay checkpoint age",
            "review_svc_relay_checkpoint_age_seconds",
            &[],
            Present,
        ),
    ]);
    v.extend(rpc_client!(ReviewSvc, "user-svc", "getUser"));
    v.extend(rpc_client!(ReviewSvc, "movie-svc", "getMovie"));
    v.extend(rpc_server!(ReviewSvc, "getReviews"));
    // enricher: events by outcome (skips and dead letters provoked), cache
    // claims by outcome, lag, produce latency, its three RPC clients.
    v.extend([
        e(
            Enricher,
            "events processed",
            "cinerec_stream_events_total",
            &[("outcome", "processed")],
            Moved,
        ),
        e(
            Enricher,
            "events skipped as duplicates",
            "cinerec_stream_events_total",
            &[("outcome", "duplicate")],
            Moved,
        ),
        e(
            Enricher,
            "events sent to the DLQ",
            "cinerec_stream_events_total",
            &[("outcome", "dlq")],
            Moved,
        ),
        e(
            Enricher,
            "events of unknown reviews",
            "cinerec_stream_events_total",
            &[("outcome", "not_found")],
            Present,
        ),
        e(
            Enricher,
            "cache claims: claimed",
            "cinerec_cache_claims_total",
            &[("outcome", "claimed")],
            Moved,
        ),
        e(
            Enricher,
            "cache claims: already done",
            "cinerec_cache_claims_total",
            &[("outcome", "already_done")],
            Moved,
        ),
        e(
            Enricher,
            "consumer lag per partition",
            "cinerec_stream_consumer_lag",
            &[],
            PerPartition,
        ),
        e(
            Enricher,
            "produce latency",
            "cinerec_enricher_produce_seconds_count",
            &[("outcome", "ok")],
            Moved,
        ),
        e(
            Enricher,
            "batch latency",
            "cinerec_stream_batch_seconds_count",
            &[],
            Moved,
        ),
        e(
            Enricher,
            "batch size",
            "cinerec_stream_batch_events_count",
            &[],
            Moved,
        ),
    ]);
    v.extend(rpc_client!(Enricher, "review-svc", "getReviews"));
    v.extend(rpc_client!(Enricher, "movie-svc", "getMovies"));
    v.extend(rpc_client!(Enricher, "user-svc", "getUsers"));
    // recommender: events by outcome, claims, lag, writes, latency, model.
    v.extend([
        e(
            Recommender,
            "events applied",
            "cinerec_stream_events_total",
            &[("operator", "recommender"), ("outcome", "processed")],
            Moved,
        ),
        e(
            Recommender,
            "events skipped as duplicates",
            "cinerec_stream_events_total",
            &[("operator", "recommender"), ("outcome", "duplicate")],
            Moved,
        ),
        e(
            Recommender,
            "events sent to the DLQ",
            "cinerec_stream_events_total",
            &[("operator", "recommender"), ("outcome", "dlq")],
            Moved,
        ),
        e(
            Recommender,
            "cache claims: claimed",
            "cinerec_cache_claims_total",
            &[("outcome", "claimed")],
            Moved,
        ),
        e(
            Recommender,
            "cache claims: already done",
            "cinerec_cache_claims_total",
            &[("outcome", "already_done")],
            Moved,
        ),
        e(
            Recommender,
            "consumer lag per partition",
            "cinerec_stream_consumer_lag",
            &[],
            PerPartition,
        ),
        e(
            Recommender,
            "Cassandra write latency",
            "recommender_cassandra_write_seconds_count",
            &[],
            Moved,
        ),
        e(
            Recommender,
            "event latency (Kafka timestamp → write)",
            "recommender_event_latency_seconds_count",
            &[],
            Moved,
        ),
        e(
            Recommender,
            "batch latency",
            "cinerec_stream_batch_seconds_count",
            &[],
            Moved,
        ),
        e(
            Recommender,
            "model size",
            "recommender_model_likes",
            &[],
            Moved,
        ),
    ]);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_exports_its_families_and_they_move() -> anyhow::Result<()> {
    let mut p = Pipeline::start(PipelineConfig::new("metrics")).await?;
    let result = run(&mut p).await;
    with_logs(&p, result)?;
    p.cleanup().await
}

async fn scrape_all(p: &Pipeline) -> anyhow::Result<Vec<(Service, Metrics)>> {
    let mut pages = Vec::new();
    for s in Service::ALL {
        pages.push((s, p.scrape(s).await?));
    }
    Ok(pages)
}

fn page(pages: &[(Service, Metrics)], s: Service) -> &Metrics {
    pages
        .iter()
        .find(|(x, _)| *x == s)
        .map(|(_, m)| m)
        .expect("every service scraped")
}

async fn run(p: &mut Pipeline) -> anyhow::Result<()> {
    let before = scrape_all(p).await?;
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
    // Wait until the last stage has applied something.
    poll(Duration::from_secs(120), Duration::from_secs(1), || async {
        let m = p.scrape(Service::Recommender).await?;
        let applied = m.sum("cinerec_stream_events_total", &[("outcome", "processed")]);
        Ok(if applied > 0.0 {
            Ok(())
        } else {
            Err("the recommender applied nothing yet".to_owned())
        })
    })
    .await?;
    // Provoke a skip and a dead letter at each consumer, then wait until
    // both consumers have counted them.
    let names = p.names().clone();
    let brokers = p.stack().kafka_brokers.clone();
    replay_one(&brokers, &names.changes_topic).await?;
    replay_one(&brokers, &names.enriched_topic).await?;
    poison(&brokers, &names.changes_topic).await?;
    poison(&brokers, &names.enriched_topic).await?;
    poll(Duration::from_secs(120), Duration::from_secs(1), || async {
        let enricher = p.scrape(Service::Enricher).await?;
        let recommender = p.scrape(Service::Recommender).await?;
        let waiting: Vec<&str> = [
            (
                "enricher duplicate",
                enricher.sum("cinerec_stream_events_total", &[("outcome", "duplicate")]),
            ),
            (
                "enricher dlq",
                enricher.sum("cinerec_stream_events_total", &[("outcome", "dlq")]),
            ),
            (
                "recommender duplicate",
                recommender.sum("cinerec_stream_events_total", &[("outcome", "duplicate")]),
            ),
            (
                "recommender dlq",
                recommender.sum("cinerec_stream_events_total", &[("outcome", "dlq")]),
            ),
        ]
        .into_iter()
        .filter(|(_, n)| *n <= 0.0)
        .map(|(what, _)| what)
        .collect();
        Ok(if waiting.is_empty() {
            Ok(())
        } else {
            Err(format!("not counted yet: {}", waiting.join(", ")))
        })
    })
    .await?;
    // Gauges appear at their first tick (pool gauges are sampled every 5 s,
    // lag every second): scrape until every expectation holds, or fail with
    // what still does not after a bound.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let after = scrape_all(p).await?;
        let (lines, problems) = compare(&before, &after);
        if problems.is_empty() || Instant::now() >= deadline {
            for line in lines {
                eprintln!("{line}");
            }
            anyhow::ensure!(
                problems.is_empty(),
                "{} of {} expectations failed:\n{}",
                problems.len(),
                expected().len(),
                problems.join("\n")
            );
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

/// Each expectation against the scrapes before and after the run: a report
/// line per expectation, and the problems.
fn compare(
    before: &[(Service, Metrics)],
    after: &[(Service, Metrics)],
) -> (Vec<String>, Vec<String>) {
    let (mut lines, mut problems) = (Vec::new(), Vec::new());
    for x in expected() {
        let (was, now) = (page(before, x.service), page(after, x.service));
        let matching: Vec<_> = now
            .samples()
            .iter()
            .filter(|s| s.name == x.family)
            .filter(|s| {
                x.labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|l| l == v))
            })
            .collect();
        let (value, delta) = (
            now.sum(x.family, x.labels),
            now.sum(x.family, x.labels) - was.sum(x.family, x.labels),
        );
        lines.push(format!(
            "{:<12} {:<48} {:<44} {value} (+{delta})",
            x.service.name(),
            x.what,
            x.family
        ));
        let problem = match x.check {
            _ if matching.is_empty() => Some("is not exported"),
            Moved if delta <= 0.0 => Some("did not move"),
            PerPartition if !matching.iter().any(|s| s.labels.contains_key("partition")) => {
                Some("has no partition label")
            }
            _ => None,
        };
        if let Some(problem) = problem {
            problems.push(format!(
                "{}: {} ({}{:?}) {problem}",
                x.service, x.what, x.family, x.labels
            ));
        }
    }
    (lines, problems)
}

/// Reads one record of `topic` (from the beginning, in a group of its own)
/// and writes a copy of it: same key, payload and headers, so its consumer
/// sees an event it has already handled.
async fn replay_one(brokers: &str, topic: &str) -> anyhow::Result<()> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", cinerec_tests::unique_name("metrics_replay"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .with_context(|| format!("no record of {topic} to replay"))??
        .detach();
    let mut record = FutureRecord::<[u8], [u8]>::to(topic);
    if let Some(key) = message.key() {
        record = record.key(key);
    }
    if let Some(payload) = message.payload() {
        record = record.payload(payload);
    }
    if let Some(headers) = message.headers() {
        record = record.headers(headers.clone());
    }
    producer(brokers)?
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| e)
        .with_context(|| format!("replaying a record of {topic}"))?;
    Ok(())
}

/// Writes one record to `topic` that no consumer can decode.
async fn poison(brokers: &str, topic: &str) -> anyhow::Result<()> {
    producer(brokers)?
        .send(
            FutureRecord::to(topic)
                .key("metrics-poison")
                .payload("not an Avro single-object record"),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .with_context(|| format!("writing a poison record to {topic}"))?;
    Ok(())
}

fn producer(brokers: &str) -> anyhow::Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?)
}
