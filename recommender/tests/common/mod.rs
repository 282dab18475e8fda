//! Shared set-up of the recommender's real-stack tests: a fresh source topic,
//! consumer group, keyspace and cache namespace per test; enriched events
//! encoded with cinerec-events and produced as the enricher would (keyed by
//! user); the tables read back and compared with `model::batch` and
//! `oracle::recommend_all` over the same review states.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use cinerec_events::{EnrichedReview, Tier};
use cinerec_service_kit::{Shutdown, telemetry};
use cinerec_stream::{CacheArgs, CqlArgs, KafkaArgs};
use cinerec_tests::{POLL_DEADLINE, Stack, unique_name, unreachable};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use recommender::config::{CACHE, CqlConfig, STREAM};
use recommender::model::{self, Model, ModelState, ReviewState};
use recommender::telemetry::StatsSnapshot;
use recommender::{Config, Handle, Recommender, store};
use recommender::{oracle, reconcile};
use scylla::client::session::Session;
use uuid::Uuid;

/// Genres the synthetic movies cycle through.
pub const GENRES: [&str; 4] = ["Drama", "Comedy", "Action", "Horror"];

/// One test's world.
pub struct World {
    pub stack: Stack,
    pub name: String,
    pub topic: String,
    pub producer: FutureProducer,
    pub session: Arc<Session>,
}

/// A recommendations row as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct RecRow {
    pub movies: Vec<i64>,
    pub scores: Vec<f64>,
    pub from_model: i32,
}

impl World {
    /// A fresh topic with `partitions` partitions and a Cassandra session.
    pub async fn start(prefix: &str, partitions: i32) -> anyhow::Result<World> {
        telemetry::init("recommender-test", "warn", telemetry::LogFormat::Text)?;
        let stack = Stack::from_env();
        let name = unique_name(prefix);
        let topic = format!("{name}.enriched");
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &stack.kafka_brokers)
            .create()?;
        let results = admin
            .create_topics(
                &[NewTopic::new(
                    &topic,
                    partitions,
                    TopicReplication::Fixed(1),
                )],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            )
            .await
            .map_err(|e| unreachable("Kafka", &stack.kafka_brokers, e))?;
        for r in results {
            r.map_err(|(t, code)| anyhow::anyhow!("creating topic {t}: {code}"))?;
        }
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &stack.kafka_brokers)
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "30000")
            .create()?;
        let cql = CqlConfig {
            shared: CqlArgs {
                cql_nodes: stack.cql_nodes.clone(),
                keyspace: name.clone(),
                ..CqlArgs::default()
            },
            ..CqlConfig::default()
        };
        let session = store::connect(&cql)
            .await
            .map_err(|e| unreachable("Cassandra", &stack.cql_nodes.join(","), e))?;
        Ok(World {
            stack,
            name,
            topic,
            producer,
            session,
        })
    }

    /// The recommender's config for this world: memcached cache (both
    /// zones), short in-flight TTL and refresh interval so tests finish fast.
    pub fn config(&self) -> Config {
        Config {
            kafka: KafkaArgs {
                brokers: self.stack.kafka_brokers.clone(),
                group: format!("{}_group", self.name),
                source_topic: self.topic.clone(),
                batch_size: 50,
                batch_linger_ms: 10,
                ..STREAM.kafka()
            },
            cache: CacheArgs {
                cache_urls: self.stack.memcached_urls.join(","),
                cache_namespace: format!("rec_{}", self.name),
                in_flight_ttl_ms: 2_000,
                ..CACHE.args()
            },
            cql: CqlConfig {
                shared: CqlArgs {
                    cql_nodes: self.stack.cql_nodes.clone(),
                    keyspace: self.name.clone(),
                    ..CqlArgs::default()
                },
                ..CqlConfig::default()
            },
            refresh_interval_ms: 200,
            retry_base_ms: 50,
            retry_max_ms: 500,
            ..Config::default()
        }
    }

    /// Starts a recommender task.
    pub async fn spawn(
        &self,
        config: Config,
    ) -> anyhow::Result<(
        Shutdown,
        Handle,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )> {
        let r = Recommender::new(config).await?;
        let handle = r.handle();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(r.run(shutdown.clone()));
        Ok((shutdown, handle, task))
    }

    /// Produces an enriched event as the enricher does (keyed by user).
    pub async fn publish(&self, ev: &EnrichedReview) -> anyhow::Result<()> {
        let payload = ev.encode()?;
        self.publish_raw(&ev.key(), &payload).await
    }

    /// Produces arbitrary bytes.
    pub async fn publish_raw(&self, key: &str, payload: &[u8]) -> anyhow::Result<()> {
        self.producer
            .send(
                FutureRecord::to(&self.topic).key(key).payload(payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| unreachable("Kafka", &self.stack.kafka_brokers, e))?;
        Ok(())
    }

    /// Polls the counters until `cond` holds.
    pub async fn wait_stats(
        &self,
        handle: &Handle,
        what: &str,
        cond: impl Fn(&StatsSnapshot) -> bool,
    ) -> anyhow::Result<StatsSnapshot> {
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

    /// Waits until `records` records are handled, then for two refresh
    /// ticks that ended with nothing dirty (the quiescence guarantee).
    pub async fn wait_idle(&self, handle: &Handle, records: u64) -> anyhow::Result<StatsSnapshot> {
        let s = self
            .wait_stats(handle, "records handled", |s| s.handled() >= records)
            .await?;
        let idle = s.idle_refreshes;
        self.wait_stats(handle, "idle refresh", |s| s.idle_refreshes >= idle + 2)
            .await
    }

    /// likes/N/C of the model the recommender's changelog restores (its
    /// durable state: what a restarted instance would hold).
    pub async fn tables(&self) -> anyhow::Result<ModelState> {
        let config = self.config();
        let mut reader =
            recommender::changelog::Reader::new(&config.kafka.brokers, &config.changelog_topic())
                .await?;
        let mut m = Model::new();
        reader
            .restore(|r| {
                m.apply(recommender::pipeline::review_state(&r.event));
            })
            .await?;
        Ok(m.state())
    }

    /// recommendations_by_user, every row, read through the serving
    /// contract's reader (a malformed row fails the test).
    pub async fn recommendations(&self) -> anyhow::Result<BTreeMap<i64, RecRow>> {
        let rows = cinerec_serving::read::all_recommendations(
            &self.session,
            &self.name,
            scylla::statement::Consistency::LocalQuorum,
        )
        .await?;
        let mut out = BTreeMap::new();
        for (user, row) in rows {
            let row = row?;
            let from_model = i32::try_from(row.from_model)?;
            out.insert(
                user,
                RecRow {
                    movies: row.movie_ids,
                    scores: row.scores,
                    from_model,
                },
            );
        }
        Ok(out)
    }

    /// Records in the changelog (every version written, before compaction).
    pub async fn checkpointed(&self) -> anyhow::Result<usize> {
        let config = self.config();
        let mut reader =
            recommender::changelog::Reader::new(&config.kafka.brokers, &config.changelog_topic())
                .await?;
        Ok(usize::try_from(reader.restore(|_| {}).await?)?)
    }

    /// Checks the contract: tables equal the batch recomputation over
    /// `events`, and every user's model prefix equals the oracle's top-20
    /// ([`oracle::recommend_all`], ties and the cut judged by
    /// [`reconcile::compare_recommendations`]).
    pub async fn check_matches(&self, events: &[EnrichedReview]) -> anyhow::Result<()> {
        let states: Vec<ReviewState> = events
            .iter()
            .map(recommender::pipeline::review_state)
            .collect();
        let expected = model::batch(states.iter().copied());
        let actual = self.tables().await?;
        let diff = model::diff(&expected, &actual);
        if !diff.is_empty() {
            bail!(
                "{} differences, first: {:?}",
                diff.len(),
                &diff[..diff.len().min(10)]
            );
        }
        // Expected lists from the oracle, an independent recomputation: a
        // scoring bug in `Model::recommend` cannot pass its own check.
        let lists = oracle::recommend_all(states.iter().copied());
        let recs = self.recommendations().await?;
        let users: BTreeSet<i64> = expected.likes.keys().chain(recs.keys()).copied().collect();
        for u in users {
            let full: &[(i64, f64)] = lists.get(&u).map_or(&[], Vec::as_slice);
            let Some(row) = recs.get(&u) else {
                bail!("user {u} has likes but no recommendations row");
            };
            let k = usize::try_from(row.from_model)?;
            if row.movies.len() < k || row.scores.len() < k {
                bail!("user {u}: row {row:?} shorter than from_model");
            }
            let written: Vec<(i64, f64)> = row.movies[..k]
                .iter()
                .copied()
                .zip(row.scores[..k].iter().copied())
                .collect();
            if let Err(m) = reconcile::compare_recommendations(full, &written) {
                bail!(
                    "user {u}: {m} (written {written:?}, oracle {:?})",
                    oracle::top(&lists, u)
                );
            }
        }
        Ok(())
    }

    /// [`check_matches`](Self::check_matches), panicking with the difference.
    pub async fn assert_matches(&self, events: &[EnrichedReview]) -> anyhow::Result<()> {
        if let Err(e) = self.check_matches(events).await {
            panic!("tables differ from the model: {e}");
        }
        Ok(())
    }

    /// Polls [`check_matches`](Self::check_matches) until it holds.
    pub async fn wait_matches(&self, events: &[EnrichedReview]) -> anyhow::Result<()> {
        let deadline = Instant::now() + POLL_DEADLINE;
        loop {
            match self.check_matches(events).await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    bail!("not equal within {POLL_DEADLINE:?}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    }
}

/// Polls `cond` until it holds.
pub async fn wait_until(what: &str, cond: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + POLL_DEADLINE;
    while !cond() {
        if Instant::now() > deadline {
            bail!("{what}: not reached within {POLL_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// An enriched event of review `review` (by `user`, of `movie`) at `version`;
/// `rating` `None` is a deletion.
pub fn event(
    review: Uuid,
    user: i64,
    movie: i64,
    rating: Option<f32>,
    version: i64,
) -> EnrichedReview {
    EnrichedReview {
        event_id: Uuid::new_v4(),
        review_id: review,
        version,
        deleted: rating.is_none(),
        rating,
        user_id: user,
        movie_id: movie,
        changed_at_us: cinerec_service_kit::clock::now_micros() + version,
        movie_title: format!("Movie {movie}"),
        movie_year: 2000,
        movie_genres: vec![GENRES[(movie as usize) % GENRES.len()].to_owned()],
        movie_popularity: 0.01,
        user_country: "NL".into(),
        user_zone: "eu".into(),
        user_preferred_genres: vec![GENRES[(user as usize) % GENRES.len()].to_owned()],
        user_tier: Tier::Free,
        enriched_at_us: cinerec_service_kit::clock::now_micros(),
    }
}

/// A history of `reviews` reviews by `users` users of `movies` movies, with
/// edits (new versions, rating changes) and deletes, in version order per
/// review; deterministic per `seed`.
pub fn history(seed: u64, reviews: usize, users: i64, movies: i64) -> Vec<EnrichedReview> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let ratings = [1.0, 2.5, 3.5, 4.0, 4.5, 5.0];
    let mut out = Vec::new();
    for _ in 0..reviews {
        let review = Uuid::new_v4();
        let user = rng.random_range(1..=users);
        let movie = rng.random_range(1..=movies);
        let versions = rng.random_range(1..=3);
        for v in 1..=versions {
            let rating = if v > 1 && rng.random_bool(0.15) {
                None
            } else {
                Some(ratings[rng.random_range(0..ratings.len())])
            };
            out.push(event(review, user, movie, rating, v));
            if rating.is_none() {
                break;
            }
        }
    }
    out
}
