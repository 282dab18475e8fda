//! Shared set-up of review-svc's real-stack tests: a fresh keyspace and topic
//! per test, the API router called in-process (no port), a relay task, and
//! a Kafka consumer of the change topic.
//!
//! The user/movie directory is the seeded catalogue (users and movies
//! `1..=CATALOG_SIZE` exist), so most tests need neither user-svc nor
//! movie-svc; `directory_rpc.rs` runs the API over the real Avro RPC
//! directory with [`Harness::with_directory`].

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use cinerec_service_kit::{Shutdown, telemetry};
use cinerec_tests::{POLL_DEADLINE, Stack, unique_name, unreachable};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use review_svc::api::{self, AppState};
use review_svc::auth::{Authenticator, Minter};
use review_svc::config::{AuthArgs, CqlArgs, KafkaArgs, RelayArgs};
use review_svc::directory::{CatalogDirectory, Directory};
use review_svc::event::ReviewChanged;
use review_svc::model::{Content, Rating};
use review_svc::relay::{self, Relay, RelayError};
use review_svc::store::{self, ReviewStore};
use tower::ServiceExt;

/// Users and movies `1..=CATALOG_SIZE` exist.
pub const CATALOG_SIZE: u64 = 1_000;
/// Issuer and audience of test tokens.
pub const ISSUER: &str = "cinerec-test";
/// Audience of test tokens.
pub const AUDIENCE: &str = "review-svc";

/// One test's keyspace, topic, store and API.
pub struct Harness {
    pub stack: Stack,
    pub cql: CqlArgs,
    pub kafka: KafkaArgs,
    pub store: Arc<ReviewStore>,
    pub app: Router,
    /// Signs HS256 tokens the API accepts.
    pub minter: Minter,
    pub secret: String,
}

/// Auth config of a harness: an HS256 secret, and optionally an RS256 public key.
pub fn auth_args(secret: &str, rs256_public_key: Option<std::path::PathBuf>) -> AuthArgs {
    AuthArgs {
        jwt_issuer: ISSUER.into(),
        jwt_audience: AUDIENCE.into(),
        jwt_hs256_secret: Some(secret.into()),
        jwt_rs256_public_key: rs256_public_key,
    }
}

impl Harness {
    /// Fresh keyspace + topic, migrated; HS256 auth.
    pub async fn new(prefix: &str) -> anyhow::Result<Harness> {
        Harness::with_auth(prefix, None).await
    }

    /// Like [`Harness::new`], also accepting RS256 tokens of `rs256_public_key`.
    pub async fn with_auth(
        prefix: &str,
        rs256_public_key: Option<std::path::PathBuf>,
    ) -> anyhow::Result<Harness> {
        let catalog = Arc::new(CatalogDirectory::new(CATALOG_SIZE, CATALOG_SIZE));
        Harness::build(prefix, rs256_public_key, catalog).await
    }

    /// Like [`Harness::new`], with `directory` answering which users and
    /// movies exist.
    pub async fn with_directory(
        prefix: &str,
        directory: Arc<dyn Directory>,
    ) -> anyhow::Result<Harness> {
        Harness::build(prefix, None, directory).await
    }

    async fn build(
        prefix: &str,
        rs256_public_key: Option<std::path::PathBuf>,
        directory: Arc<dyn Directory>,
    ) -> anyhow::Result<Harness> {
        telemetry::init("review-svc-test", "warn", telemetry::LogFormat::Text)?;
        let stack = Stack::from_env();
        let name = unique_name(prefix);
        let cql = CqlArgs::local(stack.cql_nodes.clone(), &name);
        let kafka = KafkaArgs {
            kafka_brokers: stack.kafka_brokers.clone(),
            changes_topic: name.clone(),
            topic_partitions: 3,
        };
        let session = store::connect(&cql)
            .await
            .map_err(|e| unreachable("Cassandra", &stack.cql_nodes.join(","), e))?;
        store::migrate(&session, &cql).await?;
        relay::ensure_topic(&kafka)
            .await
            .map_err(|e| unreachable("Kafka", &stack.kafka_brokers, e))?;
        let store = Arc::new(ReviewStore::new(session, &cql).await?);
        let secret = unique_name("secret");
        let state = AppState {
            store: store.clone(),
            auth: Arc::new(Authenticator::from_args(&auth_args(
                &secret,
                rs256_public_key,
            ))?),
            directory,
        };
        Ok(Harness {
            stack,
            cql,
            kafka,
            store,
            app: api::router(state),
            minter: Minter::hs256(&secret, ISSUER, AUDIENCE),
            secret,
        })
    }

    /// A valid token for `sub`.
    pub fn token(&self, sub: &str, scopes: &[&str]) -> String {
        self.minter
            .mint(sub, scopes, Duration::from_secs(600))
            .unwrap_or_default()
    }

    /// Calls the API in-process: status, headers, JSON body (`Null` if none).
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> anyhow::Result<(StatusCode, HeaderMap, serde_json::Value)> {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some()
            && !headers
                .iter()
                .any(|(h, _)| h.eq_ignore_ascii_case("content-type"))
        {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body.map(Body::from).unwrap_or_else(Body::empty))?;
        let response = self.app.clone().oneshot(request).await?;
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await?;
        let json = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .with_context(|| format!("non-JSON body: {}", String::from_utf8_lossy(&bytes)))?
        };
        Ok((parts.status, parts.headers, json))
    }

    /// POSTs a review as its author; returns the created review JSON.
    pub async fn create(
        &self,
        user_id: i64,
        movie_id: i64,
        rating: f64,
        text: &str,
    ) -> anyhow::Result<serde_json::Value> {
        let body = serde_json::json!({"user_id": user_id, "movie_id": movie_id, "rating": rating, "text": text});
        let (status, _, json) = self
            .call(
                Method::POST,
                "/v1/reviews",
                Some(&self.token(&user_id.to_string(), &[])),
                &[],
                Some(body.to_string()),
            )
            .await?;
        anyhow::ensure!(status == StatusCode::CREATED, "create: {status} {json}");
        Ok(json)
    }

    /// Runs the relay in this process until the returned shutdown fires.
    pub fn start_relay(
        &self,
        args: RelayArgs,
    ) -> anyhow::Result<(Shutdown, tokio::task::JoinHandle<Result<(), RelayError>>)> {
        let relay = Relay::new(
            self.store.clone(),
            relay::producer(&self.kafka)?,
            &self.kafka.changes_topic,
            args,
        );
        let shutdown = Shutdown::new();
        let task = tokio::spawn(relay.run(shutdown.clone()));
        Ok((shutdown, task))
    }

    /// Runs one more relay replica (its own member id) in this process.
    pub fn start_relay_replica(&self, args: RelayArgs) -> anyhow::Result<RelayReplica> {
        let relay = Relay::new(
            self.store.clone(),
            relay::producer(&self.kafka)?,
            &self.kafka.changes_topic,
            args,
        );
        let (member, health) = (relay.member(), relay.health());
        let shutdown = Shutdown::new();
        let task = tokio::spawn(relay.run(shutdown.clone()));
        Ok(RelayReplica {
            member,
            health,
            shutdown,
            task,
        })
    }

    /// A consumer of the change topic from its beginning.
    pub fn consumer(&self) -> anyhow::Result<StreamConsumer> {
        self.consumer_of(&self.kafka.changes_topic)
    }

    /// A consumer of `topic` from its beginning.
    pub fn consumer_of(&self, topic: &str) -> anyhow::Result<StreamConsumer> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.kafka.kafka_brokers)
            .set("group.id", unique_name("review_test"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()?;
        consumer.subscribe(&[topic])?;
        Ok(consumer)
    }

    /// Drops the keyspace and the topic.
    pub async fn cleanup(self) -> anyhow::Result<()> {
        self.store
            .session()
            .query_unpaged(
                format!("DROP KEYSPACE IF EXISTS {}", self.cql.keyspace),
                &[],
            )
            .await?;
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.kafka.kafka_brokers)
            .create()?;
        admin
            .delete_topics(
                &[
                    self.kafka.changes_topic.as_str(),
                    relay::dlq_topic(&self.kafka.changes_topic).as_str(),
                ],
                &AdminOptions::new(),
            )
            .await?;
        Ok(())
    }
}

/// A relay replica running in this process.
pub struct RelayReplica {
    pub member: uuid::Uuid,
    /// Its owned shards.
    pub health: review_svc::relay::RelayHealth,
    pub shutdown: Shutdown,
    pub task: tokio::task::JoinHandle<Result<(), RelayError>>,
}

/// Polls `probe` until it returns `Some` or [`POLL_DEADLINE`] passes.
pub async fn poll_until<T, F, Fut>(what: &str, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + POLL_DEADLINE;
    loop {
        if let Some(value) = probe().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("{what}: not reached within {POLL_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One record of the change topic.
#[derive(Debug, Clone)]
pub struct Received {
    pub key: String,
    pub payload: Vec<u8>,
    pub event: ReviewChanged,
}

/// Reads records until `done(&all_so_far)` or [`POLL_DEADLINE`].
pub async fn receive_until(
    consumer: &StreamConsumer,
    done: impl Fn(&[Received]) -> bool,
) -> anyhow::Result<Vec<Received>> {
    let mut received = Vec::new();
    let deadline = Instant::now() + POLL_DEADLINE;
    while !done(&received) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            bail!("after {POLL_DEADLINE:?} only these arrived: {received:#?}");
        }
        let Ok(message) = tokio::time::timeout(remaining, consumer.recv()).await else {
            continue;
        };
        let message = message?;
        let key = String::from_utf8(message.key().context("record without key")?.to_vec())?;
        let payload = message
            .payload()
            .context("record without payload")?
            .to_vec();
        let event = ReviewChanged::decode(&payload)?;
        received.push(Received {
            key,
            payload,
            event,
        });
    }
    Ok(received)
}

/// Reads whatever records arrive within `window` (to show that nothing more
/// comes, e.g. no duplicate after everything expected arrived).
pub async fn receive_for(
    consumer: &StreamConsumer,
    window: Duration,
) -> anyhow::Result<Vec<ReviewChanged>> {
    let mut received = Vec::new();
    let end = Instant::now() + window;
    loop {
        let remaining = end.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Ok(received);
        }
        let Ok(message) = tokio::time::timeout(remaining, consumer.recv()).await else {
            return Ok(received);
        };
        let message = message?;
        let payload = message.payload().context("record without payload")?;
        received.push(ReviewChanged::decode(payload)?);
    }
}

/// The rendered Prometheus metrics of this process.
pub fn metrics_text() -> String {
    telemetry::metrics_handle().render()
}

/// The value of one counter series in [`metrics_text`] (`series` is the name
/// with its labels as rendered, e.g. `foo_total{code="x"}`); 0 if absent.
pub fn counter(series: &str) -> f64 {
    metrics_text()
        .lines()
        .filter_map(|line| line.strip_prefix(series))
        .filter_map(|rest| rest.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `review_svc_requests_rejected_total{code}` now.
pub fn rejected(code: &str) -> f64 {
    counter(&format!(
        "review_svc_requests_rejected_total{{code=\"{code}\"}}"
    ))
}

/// Relay pacing for tests: quick polls and sweeps, the shortest safe
/// settle, a short lease TTL (takeovers within ~2 s).
pub fn fast_relay() -> RelayArgs {
    RelayArgs {
        relay_poll_ms: 10,
        relay_idle_poll_ms: 10,
        relay_settle_ms: 3_000,
        relay_sweep_ms: 200,
        relay_lookback_ms: 500,
        relay_lease_ttl_ms: 2_000,
        relay_lease_tick_ms: 250,
        relay_member_id: None,
    }
}

/// Serves `h`'s API with `args` on a loopback port, as `serve` does
/// (guards included), until the returned shutdown fires.
pub async fn serve_api(
    h: &Harness,
    args: review_svc::http_server::HttpArgs,
) -> anyhow::Result<(std::net::SocketAddr, Shutdown)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shutdown = Shutdown::new();
    let app = review_svc::http_server::guard(h.app.clone(), &args);
    tokio::spawn(review_svc::http_server::serve(
        listener,
        app,
        args,
        shutdown.clone(),
    ));
    Ok((addr, shutdown))
}

/// One HTTP/1.1 response read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// The head, lower-cased.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The body as JSON (`Null` if empty or not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Reads one response (head, then `content-length` bytes of body) within
/// `bound`; an error if the connection closes first or the bound passes.
pub async fn read_response(
    stream: &mut tokio::net::TcpStream,
    bound: Duration,
) -> anyhow::Result<RawResponse> {
    use tokio::io::AsyncReadExt;
    tokio::time::timeout(bound, async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).await?;
            anyhow::ensure!(
                n > 0,
                "closed before a response head: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("status line")?;
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = buf[head_end..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut chunk).await?;
            anyhow::ensure!(n > 0, "closed inside the body");
            body.extend_from_slice(&chunk[..n]);
        }
        body.truncate(length);
        Ok(RawResponse { status, head, body })
    })
    .await
    .map_err(|_| anyhow::anyhow!("no response within {bound:?}"))?
}

/// Whether the peer closes `stream` within `bound` (reading and discarding
/// whatever it still sends).
pub async fn closed_within(stream: &mut tokio::net::TcpStream, bound: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    tokio::time::timeout(bound, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// `review_svc_requests_failed_total{code}` now.
pub fn failed(code: &str) -> f64 {
    counter(&format!(
        "review_svc_requests_failed_total{{code=\"{code}\"}}"
    ))
}

/// The `review-svc relay` binary `bin` as a child on `cql`'s keyspace and
/// `kafka`'s topic, with quick test pacing, killed when dropped (the caller
/// adds its admin address and member id, then spawns it).
pub fn relay_command(bin: &str, cql: &CqlArgs, kafka: &KafkaArgs) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("relay")
        .env("CINEREC_CQL_NODES", cql.cql_nodes.join(","))
        .env("REVIEW_SVC_KEYSPACE", &cql.keyspace)
        .env("CINEREC_KAFKA_BROKERS", &kafka.kafka_brokers)
        .env("REVIEW_SVC_CHANGES_TOPIC", &kafka.changes_topic)
        .env("REVIEW_SVC_RELAY_POLL_MS", "10")
        .env("REVIEW_SVC_RELAY_SETTLE_MS", "3000")
        .env("REVIEW_SVC_RELAY_SWEEP_MS", "200")
        .env("CINEREC_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    cmd
}

/// The content of the `i`-th write of a test writer (ratings cycle 0.5–5).
pub fn content(i: usize) -> anyhow::Result<Content> {
    Ok(Content {
        rating: Rating::parse(0.5 * (1 + i % 10) as f64)?,
        text: format!("take {i}"),
    })
}
