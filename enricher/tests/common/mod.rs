//! Shared set-up of the enricher's real-stack tests: movie-svc and user-svc
//! served in-process on port 0 over a fresh PostgreSQL schema each, reviews in
//! review-svc's real store (fresh Cassandra keyspace) served as ReviewService
//! over real Avro RPC, fresh topics, a Redis cache namespace and a consumer
//! group per test.
//!
//! ReviewService: review-svc does not serve it over Avro RPC yet, so
//! [`ReviewRpc`] implements the generated server trait over
//! `review_svc::store::ReviewStore` — the real store, the real protocol.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cinerec_catalog::Catalog;
use cinerec_events::{ChangeOp, EnrichedReview, ReviewChanged};
use cinerec_service_kit::db::{self, DbArgs};
use cinerec_service_kit::rpc::{RpcAddrs, RpcListeners};
use cinerec_service_kit::{Shutdown, telemetry};
use cinerec_tests::{POLL_DEADLINE, Stack, unique_name, unreachable};
use enricher::{Config, Enricher, Handle};
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use review_svc::config::CqlArgs;
use review_svc::model::{Content, EditReview, Review};
use review_svc::store::{self, ReviewStore};
use uuid::Uuid;

/// Seed of the synthetic world (movies and users).
pub const SEED: u64 = 7;
/// Movies `1..=MOVIES` exist in movie-svc.
pub const MOVIES: u64 = 100;
/// Users `1..=USERS` exist in user-svc.
pub const USERS: u64 = 100;
/// Partitions of the source topic.
pub const PARTITIONS: i32 = 3;

/// One test's world.
pub struct World {
    pub stack: Stack,
    pub catalog: Catalog,
    pub store: Arc<ReviewStore>,
    /// review-svc's keyspace of this world (dropped by [`World::cleanup`]).
    keyspace: String,
    pub source_topic: String,
    pub sink_topic: String,
    pub dlq_topic: String,
    pub cache_namespace: String,
    pub endpoints: enricher::rpc::Endpoints,
    producer: FutureProducer,
    services: Shutdown,
    review_server: tokio::task::JoinHandle<()>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.services.trigger();
        self.review_server.abort();
    }
}

async fn serve_movies(stack: &Stack, shutdown: &Shutdown) -> anyhow::Result<RpcAddrs> {
    let args = DbArgs {
        database_url: stack.database_url.clone(),
        db_pool_size: 2,
    };
    let pool = db::connect(&args, &unique_name("enr_movies"))
        .await
        .map_err(|e| unreachable("PostgreSQL", &stack.database_url, e))?;
    let store = movie_svc::store::MovieStore::new(pool);
    store.migrate().await?;
    movie_svc::seed::seed(&store, &Catalog::new(SEED, MOVIES, 1), u64::MAX).await?;
    let movies = movie_svc::service::movies(store, 1_000, Duration::from_secs(60));
    let (responder, metrics) = movie_svc::rpc::responder(movies)?;
    let listeners = RpcListeners::bind(local_rpc_addrs()).await?;
    let addrs = listeners.local_addrs()?;
    drop(listeners.serve(responder, metrics, shutdown.clone()));
    Ok(addrs)
}

async fn serve_users(stack: &Stack, shutdown: &Shutdown) -> anyhow::Result<RpcAddrs> {
    let args = DbArgs {
        database_url: stack.database_url.clone(),
        db_pool_size: 2,
    };
    let pool = db::connect(&args, &unique_name("enr_users"))
        .await
        .map_err(|e| unreachable("PostgreSQL", &stack.database_url, e))?;
    let store = user_svc::store::UserStore::new(pool);
    store.migrate().await?;
    user_svc::seed::seed(&store, &Catalog::new(SEED, 1, USERS), u64::MAX).await?;
    let users = user_svc::service::users(store, 1_000, Duration::from_secs(60));
    let (responder, metrics) = user_svc::rpc::responder(users)?;
    let listeners = RpcListeners::bind(local_rpc_addrs()).await?;
    let addrs = listeners.local_addrs()?;
    drop(listeners.serve(responder, metrics, shutdown.clone()));
    Ok(addrs)
}

fn local_rpc_addrs() -> RpcAddrs {
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    RpcAddrs {
        socket: any,
        http: any,
    }
}

async fn create_topic(stack: &Stack, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .create()?;
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .map_err(|e| unreachable("Kafka", &stack.kafka_brokers, e))?;
    for r in results {
        r.map_err(|(t, code)| anyhow::anyhow!("creating topic {t}: {code}"))?;
    }
    Ok(())
}

/// A record read back from the sink or the DLQ.
#[derive(Debug, Clone)]
pub struct Received {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: HashMap<String, String>,
    pub partition: i32,
}

impl Received {
    fn from(m: &OwnedMessage) -> Received {
        let mut headers = HashMap::new();
        if let Some(h) = m.headers() {
            for header in h.iter() {
                headers.insert(
                    header.key.to_owned(),
                    String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                );
            }
        }
        Received {
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers,
            partition: m.partition(),
        }
    }

    /// The payload as an EnrichedReview.
    pub fn enriched(&self) -> anyhow::Result<EnrichedReview> {
        Ok(EnrichedReview::decode(
            self.payload.as_deref().unwrap_or_default(),
        )?)
    }
}

impl World {
    /// Drops this world's keyspace, so a long test run does not fill the
    /// shared Cassandra with schemas (each table costs it memory, and schema
    /// changes slow down as they pile up). Call it last in a passing test;
    /// a failed test keeps its data for inspection.
    pub async fn cleanup(&self) -> anyhow::Result<()> {
        self.store
            .session()
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", self.keyspace), &[])
            .await?;
        Ok(())
    }

    /// Starts movie-svc, user-svc and ReviewService, creates the keyspace and
    /// the source topic.
    pub async fn start(prefix: &str) -> anyhow::Result<World> {
        telemetry::init("enricher-test", "warn", telemetry::LogFormat::Text)?;
        let stack = Stack::from_env();
        let name = unique_name(prefix);
        let services = Shutdown::new();
        let movies = serve_movies(&stack, &services).await?;
        let users = serve_users(&stack, &services).await?;

        let cql = CqlArgs::local(stack.cql_nodes.clone(), &name);
        let session = store::connect(&cql)
            .await
            .map_err(|e| unreachable("Cassandra", &stack.cql_nodes.join(","), e))?;
        store::migrate(&session, &cql).await?;
        let store = Arc::new(ReviewStore::new(session, &cql).await?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let review_addr = listener.local_addr()?;
        // review-svc's own ReviewService over the real store.
        let (responder, _metrics) = review_svc::rpc::responder(store.clone())?;
        let review_server = tokio::spawn(async move {
            if let Err(e) = avro_rpc::transport::socket::serve_socket(listener, responder).await {
                tracing::error!(error = %e, "ReviewService stopped");
            }
        });

        let source_topic = format!("{name}.changed");
        create_topic(&stack, &source_topic, PARTITIONS).await?;
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &stack.kafka_brokers)
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "30000")
            .create()?;
        Ok(World {
            catalog: Catalog::new(SEED, MOVIES, USERS),
            store,
            keyspace: name.clone(),
            sink_topic: format!("{name}.enriched"),
            dlq_topic: format!("{source_topic}.dlq"),
            source_topic,
            cache_namespace: format!("enr_{name}"),
            endpoints: enricher::rpc::Endpoints {
                review: review_addr.to_string(),
                movie: movies.socket.to_string(),
                user: users.socket.to_string(),
            },
            producer,
            services,
            review_server,
            stack,
        })
    }

    /// The enricher's config for this world: Redis cache (ms TTLs), short
    /// in-flight TTL and retries so fault tests finish quickly.
    pub fn config(&self) -> Config {
        Config {
            kafka: cinerec_stream::KafkaArgs {
                brokers: self.stack.kafka_brokers.clone(),
                group: format!("{}_group", self.source_topic),
                source_topic: self.source_topic.clone(),
                dlq_topic: None,
                batch_size: 100,
                batch_linger_ms: 20,
            },
            cache: cinerec_stream::CacheArgs {
                cache_urls: self.stack.redis_urls[0].clone(),
                cache_namespace: self.cache_namespace.clone(),
                in_flight_ttl_ms: 3_000,
                done_ttl_secs: 600,
            },
            sink_topic: self.sink_topic.clone(),
            topic_partitions: 3,
            review_rpc: self.endpoints.review.clone(),
            movie_rpc: self.endpoints.movie.clone(),
            user_rpc: self.endpoints.user.clone(),
            retry_attempts: 3,
            retry_base_ms: 50,
            retry_max_ms: 500,
            rpc_timeout_ms: 5_000,
        }
    }

    /// Starts an enricher task.
    pub async fn spawn_enricher(
        &self,
        config: Config,
    ) -> anyhow::Result<(
        Shutdown,
        Handle,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )> {
        let enricher = Enricher::new(config).await?;
        let handle = enricher.handle();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(enricher.run(shutdown.clone()));
        Ok((shutdown, handle, task))
    }

    /// Creates a review through review-svc's store; its change event.
    pub async fn create(
        &self,
        user: i64,
        movie: i64,
        rating: f64,
    ) -> anyhow::Result<ReviewChanged> {
        let content = content(rating)?;
        let out = self.store.create(user, movie, content, None).await?;
        Ok(change(&out.review, ChangeOp::Create))
    }

    /// Edits a review; its change event.
    pub async fn edit(&self, review_id: Uuid, rating: f64) -> anyhow::Result<ReviewChanged> {
        let out = self
            .store
            .update(review_id, Some(content(rating)?), None, |_| true)
            .await?;
        Ok(change(&out.review, ChangeOp::Update))
    }

    /// Deletes a review; its change event.
    pub async fn delete(&self, review_id: Uuid) -> anyhow::Result<ReviewChanged> {
        let out = self.store.update(review_id, None, None, |_| true).await?;
        Ok(change(&out.review, ChangeOp::Delete))
    }

    /// Publishes a change as review-svc's relay does (keyed by review_id),
    /// optionally with a W3C traceparent header.
    pub async fn publish(
        &self,
        ev: &ReviewChanged,
        traceparent: Option<&str>,
    ) -> anyhow::Result<()> {
        let payload = ev.encode()?;
        self.publish_raw(&ev.key(), &payload, traceparent).await
    }

    /// Publishes arbitrary bytes to the source topic.
    pub async fn publish_raw(
        &self,
        key: &str,
        payload: &[u8],
        traceparent: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut record = FutureRecord::to(&self.source_topic)
            .key(key)
            .payload(payload);
        if let Some(tp) = traceparent {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: "traceparent",
                value: Some(tp),
            }));
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| unreachable("Kafka", &self.stack.kafka_brokers, e))?;
        Ok(())
    }

    /// A consumer of `topic` from its beginning.
    pub fn reader(&self, topic: &str) -> anyhow::Result<StreamConsumer> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.stack.kafka_brokers)
            .set("group.id", unique_name("enr_reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("topic.metadata.refresh.interval.ms", "500")
            .create()?;
        consumer.subscribe(&[topic])?;
        Ok(consumer)
    }

    /// Reads `topic` until `done(records so far)` holds; fails after
    /// [`POLL_DEADLINE`].
    pub async fn read_until(
        &self,
        topic: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> anyhow::Result<Vec<Received>> {
        let reader = self.reader(topic)?;
        let mut got = Vec::new();
        let deadline = Instant::now() + POLL_DEADLINE;
        while !done(&got) {
            if Instant::now() > deadline {
                bail!(
                    "{topic}: condition not reached within {POLL_DEADLINE:?}; got {} records",
                    got.len()
                );
            }
            match tokio::time::timeout(Duration::from_millis(500), reader.recv()).await {
                Ok(Ok(m)) => got.push(Received::from(&m.detach())),
                Ok(Err(e)) => tracing::debug!(error = %e, "reader"),
                Err(_) => {}
            }
        }
        Ok(got)
    }

    /// Polls `cond` on the enricher's counters until it holds.
    pub async fn wait_stats(
        &self,
        handle: &Handle,
        what: &str,
        cond: impl Fn(&cinerec_stream::StatsSnapshot) -> bool,
    ) -> anyhow::Result<cinerec_stream::StatsSnapshot> {
        let deadline = Instant::now() + POLL_DEADLINE;
        loop {
            let s = handle.stats();
            if cond(&s) {
                return Ok(s);
            }
            if Instant::now() > deadline {
                bail!("{what}: not reached within {POLL_DEADLINE:?}: {s:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn content(rating: f64) -> anyhow::Result<Content> {
    EditReview {
        rating,
        text: format!("{rating} stars"),
    }
    .validate()
    .context("test rating")
}

/// The change event review-svc's relay would publish for `r`: the event id is
/// stable per (review, version), like the relay's.
pub fn change(r: &Review, op: ChangeOp) -> ReviewChanged {
    ReviewChanged {
        event_id: Uuid::new_v5(&r.review_id, &r.version.to_be_bytes()),
        review_id: r.review_id,
        user_id: r.user_id,
        version: r.version,
        op,
        changed_at_us: r.changed_at_us,
    }
}
