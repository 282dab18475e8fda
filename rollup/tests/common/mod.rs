//! Shared set-up of the rollup's stack tests: a unique topic, group, schema
//! and keyspace per test; events to produce; polling the database.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use cinerec_events::{EnrichedReview, Tier};
use cinerec_service_kit::Shutdown;
use cinerec_tests::{POLL_DEADLINE, Stack, unique_name};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rollup::{Config, Rollup, Stats};
use sqlx::PgPool;
use uuid::Uuid;

/// One test's world: names nobody else uses.
pub struct World {
    pub config: Config,
    pub stack: Stack,
}

impl World {
    pub async fn new(prefix: &str) -> World {
        let stack = Stack::from_env();
        let name = unique_name(prefix);
        let mut config = Config {
            kafka: cinerec_stream::KafkaArgs {
                brokers: stack.kafka_brokers.clone(),
                group: format!("{name}_g"),
                source_topic: name.clone(),
                // `<topic>.dlq`: one per test.
                dlq_topic: None,
                batch_linger_ms: 20,
                ..rollup::config::STREAM.kafka()
            },
            schema: name.clone(),
            cql: cinerec_stream::CqlArgs {
                cql_nodes: stack.cql_nodes.clone(),
                keyspace: name.clone(),
                ..cinerec_stream::CqlArgs::default()
            },
            snapshot_interval_ms: 300,
            ..Config::default()
        };
        config.db.database_url = stack.database_url.clone();
        config.db.db_pool_size = 4;
        create_topic(&config).await;
        World { config, stack }
    }

    /// Starts a sink with `config`; returns its pool, stats and stopper.
    pub async fn start(&self, config: Config) -> Running {
        let rollup = Rollup::new(config).await.expect("rollup starts");
        let (pool, stats) = (rollup.store().pool().clone(), rollup.stats());
        let shutdown = Shutdown::new();
        let task = tokio::spawn(rollup.run(shutdown.clone()));
        Running {
            pool,
            stats,
            shutdown,
            task,
        }
    }

    pub async fn produce(&self, payloads: impl IntoIterator<Item = (String, Vec<u8>)>) {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.config.kafka.brokers)
            .set("enable.idempotence", "true")
            .create()
            .expect("producer");
        for (key, payload) in payloads {
            producer
                .send(
                    FutureRecord::to(&self.config.kafka.source_topic)
                        .key(&key)
                        .payload(&payload),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| e)
                .expect("produced");
        }
    }

    pub async fn produce_events(&self, events: &[EnrichedReview]) {
        self.produce(
            events
                .iter()
                .map(|e| (e.key(), e.encode().expect("encodes"))),
        )
        .await;
    }

    /// Drops the schema (the keyspace too, when a test made one).
    pub async fn cleanup(&self, pool: &PgPool) {
        let _ = sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.config.schema))
            .execute(pool)
            .await;
    }
}

pub struct Running {
    pub pool: PgPool,
    pub stats: std::sync::Arc<Stats>,
    pub shutdown: Shutdown,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn stop(self) -> PgPool {
        self.shutdown.trigger();
        self.task
            .await
            .expect("sink task")
            .expect("sink ends cleanly");
        self.pool
    }
}

async fn create_topic(config: &Config) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.brokers)
        .create()
        .expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(
                &config.kafka.source_topic,
                3,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{}",
                cinerec_tests::unreachable("Kafka", &config.kafka.brokers, e)
            )
        });
    for r in results {
        r.expect("topic created");
    }
}

/// An event of `user` on `movie`, at `changed_at_us`.
pub fn event(
    user: i64,
    movie: i64,
    version: i64,
    rating: Option<f32>,
    changed_at_us: i64,
) -> EnrichedReview {
    EnrichedReview {
        event_id: Uuid::new_v4(),
        review_id: Uuid::new_v4(),
        version,
        deleted: rating.is_none(),
        rating,
        user_id: user,
        movie_id: movie,
        changed_at_us,
        movie_title: format!("Title {movie}"),
        movie_year: 2000,
        movie_genres: if movie % 2 == 0 {
            vec!["Drama".into(), "Comedy".into()]
        } else {
            vec!["Horror".into()]
        },
        movie_popularity: 0.0,
        user_country: "DE".into(),
        user_zone: "eu".into(),
        user_preferred_genres: vec!["Drama".into()],
        user_tier: Tier::Free,
        enriched_at_us: changed_at_us + 1000,
    }
}

/// Polls `check` until it yields `Some`, failing after [`POLL_DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + POLL_DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A minute (µs) well in the past: 2023-11-14T22:14:00Z, a multiple of 60 s.
pub fn base_minute() -> i64 {
    1_700_000_040_000_000
}
