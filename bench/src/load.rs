//! The load both recommender benchmarks offer (`cinerec-bench recommender`,
//! with or without `--peer flink`): synthetic `EnrichedReview`s from a seed,
//! produced straight to a fresh topic at a steady open-loop rate, and the
//! run's topics and the stack's process ids.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cinerec_events::{EnrichedReview, Tier};
use cinerec_service_kit::clock::now_micros;
use cinerec_service_kit::kafka;
use cinerec_tests::Stack;
use cinerec_tests::pipeline::repo_root;
use rand::{Rng, SeedableRng};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use uuid::Uuid;

/// Partitions of the run's topic.
pub const PARTITIONS: i32 = 6;
/// Genres the synthetic movies cycle through.
const GENRES: [&str; 8] = [
    "Drama",
    "Comedy",
    "Action",
    "Horror",
    "Romance",
    "Thriller",
    "Sci-Fi",
    "Animation",
];

/// Synthetic events: uniform users, Zipf-like movies (rank^-0.8), a J-shaped
/// rating mix (many 4–5 stars, some 1), genres by movie id.
pub struct Events {
    rng: rand::rngs::StdRng,
    users: i64,
    movies: i64,
    /// Cumulative Zipf weights.
    cdf: Vec<f64>,
}

impl Events {
    pub fn new(seed: u64, users: i64, movies: i64) -> Events {
        let mut cdf = Vec::with_capacity(movies as usize);
        let mut total = 0.0;
        for rank in 1..=movies {
            total += (rank as f64).powf(-0.8);
            cdf.push(total);
        }
        Events {
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            users,
            movies,
            cdf,
        }
    }

    pub fn next(&mut self) -> EnrichedReview {
        let user = self.rng.random_range(1..=self.users);
        let total = self.cdf.last().copied().unwrap_or(1.0);
        let x = self.rng.random_range(0.0..total);
        let movie = (self.cdf.partition_point(|c| *c < x) as i64 + 1).min(self.movies);
        let rating =
            [1.0, 2.0, 3.0, 3.5, 4.0, 4.0, 4.5, 5.0, 5.0, 5.0][self.rng.random_range(0..10)];
        let now = now_micros();
        EnrichedReview {
            event_id: Uuid::new_v4(),
            review_id: Uuid::new_v4(),
            version: 1,
            deleted: false,
            rating: Some(rating),
            user_id: user,
            movie_id: movie,
            changed_at_us: now,
            movie_title: format!("Movie {movie}"),
            movie_year: 2000,
            movie_genres: vec![GENRES[(movie as usize) % GENRES.len()].to_owned()],
            movie_popularity: 0.01,
            user_country: "NL".into(),
            user_zone: "eu".into(),
            user_preferred_genres: vec![GENRES[(user as usize) % GENRES.len()].to_owned()],
            user_tier: Tier::Free,
            enriched_at_us: now,
        }
    }
}

pub fn producer(stack: &Stack) -> anyhow::Result<FutureProducer> {
    let settings = [
        ("linger.ms", "5"),
        ("queue.buffering.max.messages", "1000000"),
        ("message.timeout.ms", "60000"),
    ];
    Ok(kafka::idempotent_producer(&stack.kafka_brokers, &settings)?)
}

/// [`producer`], once it knows a leader for every partition of `topic`.
///
/// A fresh producer learns a topic's leaders from its first send: the
/// records of the first ~0.4 s wait for that metadata, and their latency
/// (measured from the produce call) then lands in both engines' p99 —
/// 2 % of a 20 s step, whatever the rate. Measured on this box with a
/// librdkafka producer at 50/s: p99 326 ms cold, 8.6 ms once the metadata
/// was fetched first. So the load starts only after it is.
pub async fn ready_producer(stack: &Stack, topic: &str) -> anyhow::Result<FutureProducer> {
    let producer = producer(stack)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (p, t) = (producer.clone(), topic.to_owned());
        let leaders = tokio::task::spawn_blocking(move || {
            let md = p
                .client()
                .fetch_metadata(Some(&t), Duration::from_secs(5))?;
            Ok::<_, rdkafka::error::KafkaError>(md.topics().iter().any(|mt| {
                mt.name() == t
                    && mt.error().is_none()
                    && mt.partitions().len() == PARTITIONS as usize
                    && mt.partitions().iter().all(|part| part.leader() >= 0)
            }))
        })
        .await?;
        match leaders {
            Ok(true) => return Ok(producer),
            Ok(false) | Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(false) => anyhow::bail!("{topic}: no leader for every partition within 30 s"),
            Err(e) => return Err(e).with_context(|| format!("metadata of {topic}")),
        }
    }
}

pub async fn create_topic(stack: &Stack, topic: &str, compact: bool) -> anyhow::Result<()> {
    let config: &[(&str, &str)] = if compact {
        &[("cleanup.policy", "compact")]
    } else {
        &[]
    };
    kafka::ensure_topics_with_config(&stack.kafka_brokers, &[(topic, PARTITIONS)], config)
        .await
        .with_context(|| format!("creating {topic}"))
}

/// Produces `rate`/s for `secs` in 10 ms slices; returns how many were sent.
pub async fn offer(
    producer: &FutureProducer,
    topic: &str,
    events: &mut Events,
    rate: u64,
    secs: u64,
) -> anyhow::Result<u64> {
    let slice = Duration::from_millis(10);
    let started = tokio::time::Instant::now();
    let total = rate * secs;
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(slice);
    while sent < total {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while sent < due {
            let ev = events.next();
            let payload = ev.encode()?;
            let key = ev.key();
            let record = FutureRecord::to(topic).key(&key).payload(&payload);
            match producer.send_result(record) {
                Ok(_) => sent += 1,
                Err((e, _)) => {
                    tracing_free_warn(&format!("produce queue full: {e}"));
                    break;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(sent)
}

fn tracing_free_warn(msg: &str) {
    eprintln!("bench: {msg}");
}

pub fn stack_dir() -> Option<PathBuf> {
    std::env::var_os("CINEREC_STACK_DIR")
        .map(PathBuf::from)
        .or_else(|| repo_root().ok().map(|r| r.join(".stack")))
}

/// Deletes run `run`'s topics (`<run>.enriched`, its DLQ, the changelog of
/// `<run>_<engine>`) and keyspace `<run>_<engine>`. Best effort: a run's
/// leftovers never fail the benchmark.
pub(crate) async fn cleanup(stack: &Stack, run: &str, engine: &str) {
    let topics = [
        format!("{run}.enriched"),
        format!("{run}.enriched.dlq"),
        format!("{run}_{engine}-review-states-changelog"),
    ];
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let _ = kafka::delete_topics(&stack.kafka_brokers, &refs).await;
    if let Ok(session) = cinerec_service_kit::cql::connect(&stack.cql_nodes, None).await {
        let _ = session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {run}_{engine}"), &[])
            .await;
    }
}
