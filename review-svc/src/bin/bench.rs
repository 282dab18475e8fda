//! Throughput and latency of review-svc on the real stack: accepted reviews/s
//! through the HTTP API (p50/p99 request latency), CDC lag from write to
//! Kafka (p50/p99, measured by a consumer of the change topic as receive
//! time − `changed_at`), and the process's peak RSS.
//!
//! Server, relay, load client and lag consumer run in this one process on a
//! fresh keyspace and topic (so RSS covers all four), over loopback HTTP/1.1
//! with one keep-alive connection per client task.
//!
//! `cargo run --release -p review-svc --bin bench -- --duration-secs 20 --concurrency 32`

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use cinerec_service_kit::clock::now_micros;
use cinerec_service_kit::{Shutdown, telemetry};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use review_svc::api::{self, AppState};
use review_svc::auth::{Authenticator, Minter};
use review_svc::config;
use review_svc::config::{AuthArgs, CqlArgs, KafkaArgs, RelayArgs};
use review_svc::directory::CatalogDirectory;
use review_svc::event::ReviewChanged;
use review_svc::relay::{self, Relay};
use review_svc::store::{self, ReviewStore};

/// Benchmark of the review API and its CDC relay.
#[derive(Debug, Parser)]
struct Args {
    /// Seconds of load.
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Cassandra contact points.
    #[arg(long, env = "CINEREC_CQL_NODES", default_value = cinerec_service_kit::defaults::DEFAULT_CQL_NODES)]
    cql_nodes: String,
    /// Kafka bootstrap servers.
    #[arg(long, env = "CINEREC_KAFKA_BROKERS", default_value = cinerec_service_kit::defaults::DEFAULT_BROKERS)]
    kafka_brokers: String,
    /// Users and movies that exist (ids 1..=N).
    #[arg(long, default_value_t = 10_000)]
    catalog: u64,
    /// Keep the bench keyspace and topics afterwards.
    #[arg(long)]
    keep: bool,
    /// Send every POST with a fresh `Idempotency-Key` (as loadgen does): a
    /// keyed create pays a lightweight transaction, an unkeyed one does not.
    #[arg(long)]
    idempotency_keys: bool,
    /// Cassandra's pid (`cut -d' ' -f1 .stack/run/cassandra.pid`): prints its
    /// CPU time per accepted review over the load.
    #[arg(long)]
    cassandra_pid: Option<u32>,
}

/// CPU seconds (user + system, all threads) `pid` has used, from
/// `/proc/<pid>/stat` (clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name, which may contain spaces: state is
    // field 3, utime 14, stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("/proc/<pid>/stat without a command name")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i - 3)
            .context("short /proc/<pid>/stat")?
            .parse::<f64>()?)
    };
    Ok((ticks(14)? + ticks(15)?) / 100.0)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init("review-svc-bench", "warn", telemetry::LogFormat::Text)?;
    let name = format!("bench_{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
    let cql = CqlArgs::local(
        args.cql_nodes.split(',').map(str::to_owned).collect(),
        &name,
    );
    let kafka = KafkaArgs {
        kafka_brokers: args.kafka_brokers.clone(),
        changes_topic: name.clone(),
        topic_partitions: 6,
    };
    let session = store::connect(&cql).await?;
    store::migrate(&session, &cql).await?;
    relay::ensure_topic(&kafka).await?;
    let store = Arc::new(ReviewStore::new(session.clone(), &cql).await?);
    let secret = format!("bench-{:020}", rand::random::<u64>());
    let auth = AuthArgs {
        jwt_issuer: config::DEFAULT_JWT_ISSUER.into(),
        jwt_audience: config::DEFAULT_JWT_AUDIENCE.into(),
        jwt_hs256_secret: Some(secret.clone()),
        jwt_rs256_public_key: None,
    };
    let state = AppState {
        store: store.clone(),
        auth: Arc::new(Authenticator::from_args(&auth)?),
        directory: Arc::new(CatalogDirectory::new(args.catalog, args.catalog)),
    };
    let shutdown = Shutdown::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = {
        let shutdown = shutdown.clone();
        // The production server with its default limits (the load stays
        // far below them), so the figures include its watchdog and guards.
        let http = review_svc::http_server::HttpArgs::default();
        let app = review_svc::http_server::guard(api::router(state), &http);
        tokio::spawn(review_svc::http_server::serve(
            listener, app, http, shutdown,
        ))
    };
    let relay_task = tokio::spawn(
        Relay::new(
            store.clone(),
            relay::producer(&kafka)?,
            &name,
            RelayArgs::default(),
        )
        .run(shutdown.clone()),
    );

    // The lag consumer.
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.kafka_brokers)
        .set("group.id", format!("{name}_lag"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[&name])?;
    let received = Arc::new(AtomicU64::new(0));
    let lags = {
        let received = received.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut lags = Vec::new();
            loop {
                let message = tokio::select! {
                    m = consumer.recv() => m,
                    _ = shutdown.wait() => break,
                };
                let Ok(message) = message else { continue };
                let Some(Ok(event)) = message.payload().map(ReviewChanged::decode) else {
                    continue;
                };
                lags.push((now_micros() - event.changed_at_us).max(0) as u64);
                received.fetch_add(1, Ordering::Relaxed);
            }
            lags
        })
    };

    let admin_token = Minter::hs256(
        &secret,
        config::DEFAULT_JWT_ISSUER,
        config::DEFAULT_JWT_AUDIENCE,
    )
    .mint("bench", &["admin"], Duration::from_secs(3600))?;
    let cassandra_before = args.cassandra_pid.map(cpu_seconds).transpose()?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration_secs);
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let token = admin_token.clone();
        let catalog = args.catalog;
        clients.spawn(client(
            addr,
            token,
            catalog,
            deadline,
            args.idempotency_keys,
        ));
    }
    let (mut latencies, mut accepted, mut failed) = (Vec::new(), 0_u64, 0_u64);
    while let Some(joined) = clients.join_next().await {
        let (l, a, f) = joined??;
        latencies.extend(l);
        accepted += a;
        failed += f;
    }
    let elapsed = started.elapsed();
    let cassandra_cpu = match (args.cassandra_pid, cassandra_before) {
        (Some(pid), Some(before)) => Some(cpu_seconds(pid)? - before),
        _ => None,
    };

    // Wait for the relay to publish everything accepted.
    let drain_deadline = Instant::now() + Duration::from_secs(60);
    while received.load(Ordering::Relaxed) < accepted && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.trigger();
    let mut lags = lags.await?;
    server.await??;
    relay_task.await??;
    latencies.sort_unstable();
    lags.sort_unstable();

    println!(
        "review-svc bench: {}s, {} connections, {} creates, keyspace {name}",
        args.duration_secs,
        args.concurrency,
        if args.idempotency_keys {
            "keyed (Idempotency-Key)"
        } else {
            "unkeyed"
        }
    );
    println!(
        "accepted reviews: {accepted} ({:.0}/s), failed requests: {failed}",
        accepted as f64 / elapsed.as_secs_f64()
    );
    println!(
        "POST latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 0.50) as f64 / 1000.0,
        percentile(&latencies, 0.99) as f64 / 1000.0,
        latencies.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    println!(
        "CDC lag (changed_at → consumer receive), {} events: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lags.len(),
        percentile(&lags, 0.50) as f64 / 1000.0,
        percentile(&lags, 0.99) as f64 / 1000.0,
        lags.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    println!(
        "peak RSS (server + relay + client + consumer): {:.0} MiB",
        peak_rss_mib()
    );
    if let Some(cpu) = cassandra_cpu {
        println!(
            "Cassandra CPU over the load: {cpu:.1} s ({:.0} % of a core), {:.3} ms per accepted review",
            100.0 * cpu / elapsed.as_secs_f64(),
            1000.0 * cpu / accepted.max(1) as f64
        );
    }
    let metrics = telemetry::metrics_handle().render();
    for line in metrics.lines().filter(|l| {
        !l.starts_with('#')
            && (l.contains("late_changes")
                || l.contains("predecessor")
                || l.contains("publish_failures")
                || l.contains("version_contention"))
    }) {
        println!("  {line}");
    }
    if !args.keep {
        session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {name}"), &[])
            .await
            .context("dropping the bench keyspace")?;
        let dlq = relay::dlq_topic(&name);
        cinerec_service_kit::kafka::delete_topics(&args.kafka_brokers, &[name.as_str(), &dlq])
            .await
            .context("deleting the bench topics")?;
    }
    Ok(())
}

/// One keep-alive connection POSTing reviews until `deadline`: latencies
/// (µs) of accepted requests, accepted count, failed count.
async fn client(
    addr: SocketAddr,
    token: String,
    catalog: u64,
    deadline: Instant,
    idempotency_keys: bool,
) -> anyhow::Result<(Vec<u64>, u64, u64)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let (mut latencies, mut accepted, mut failed) = (Vec::new(), 0, 0);
    let authorization = format!("Bearer {token}");
    while Instant::now() < deadline {
        let body = serde_json::json!({
            "user_id": rand::random_range(1..=catalog),
            "movie_id": rand::random_range(1..=catalog),
            "rating": 0.5 * rand::random_range(1..=10) as f64,
            "text": "benchmark review text of a typical length: the plot held up and the cast was fine",
        })
        .to_string();
        let mut request = hyper::Request::post("/v1/reviews");
        if idempotency_keys {
            request = request.header("idempotency-key", uuid::Uuid::new_v4().to_string());
        }
        let request = request
            .header("host", "bench")
            .header("content-type", "application/json")
            .header("authorization", &authorization)
            .body(Full::new(Bytes::from(body)))?;
        let sent = Instant::now();
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        if status == hyper::StatusCode::CREATED {
            latencies.push(sent.elapsed().as_micros() as u64);
            accepted += 1;
        } else {
            failed += 1;
        }
    }
    Ok((latencies, accepted, failed))
}
