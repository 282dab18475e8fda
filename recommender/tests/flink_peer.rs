//! The Flink peer computes the same thing (issue 16, point 2): reviews written
//! through review-svc's own store (creates, edits both ways, deletes, several
//! reviews of one movie by one user), every version published to a fresh
//! `reviews.enriched` topic the way the enricher does — shuffled, so versions
//! arrive out of order, with redeliveries and one poison record — then
//! `bench/peers/flink/run` (the Flink job in a local MiniCluster, bounded:
//! it stops when the topic is drained) writes its keyspace and changelog, and
//! `recommender reconcile` over them reports **0 differences**: likes, `N`,
//! `C` of the changelog it wrote, and every user's top-20 (movies, order,
//! scores) in its `recommendations_by_user`.
//!
//! Slow by nature (a JVM, a MiniCluster, and on a cold machine a Maven build
//! of the job jar): about a minute with the jar cached.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cinerec_events::{EnrichedReview, Tier};
use cinerec_tests::{Stack, unique_name, unreachable};
use futures::{StreamExt, TryStreamExt};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use recommender::config::CqlConfig;
use recommender::reconcile::{self, Args};
use review_svc::config::CqlArgs;
use review_svc::model::{Content, Rating, Review};
use review_svc::store::{self, ReviewStore};

/// Reviews created (each then maybe edited or deleted).
const REVIEWS: usize = 1_500;
/// Authors.
const USERS: i64 = 150;
/// Movies.
const MOVIES: i64 = 90;
/// Concurrent review-svc writes while building the history.
const WRITE_CONCURRENCY: usize = 32;
/// The job's own bound (the run script kills it past this).
const JOB_TIMEOUT: Duration = Duration::from_secs(600);

fn content(stars: f64) -> anyhow::Result<Content> {
    Ok(Content {
        rating: Rating::parse(stars).map_err(|e| anyhow::anyhow!("{e}"))?,
        text: String::new(),
    })
}

/// The enriched event of one written version, as the enricher would build it.
fn enriched(r: &Review) -> EnrichedReview {
    EnrichedReview {
        event_id: uuid::Uuid::new_v4(),
        review_id: r.review_id,
        version: r.version,
        deleted: r.deleted,
        rating: r.rating,
        user_id: r.user_id,
        movie_id: r.movie_id,
        changed_at_us: r.changed_at_us,
        movie_title: format!("Movie {}", r.movie_id),
        movie_year: 2000,
        movie_genres: vec!["Drama".into()],
        movie_popularity: 0.01,
        user_country: "NL".into(),
        user_zone: "eu".into(),
        user_preferred_genres: vec!["Drama".into()],
        user_tier: Tier::Free,
        enriched_at_us: r.changed_at_us,
    }
}

/// Writes the history through review-svc's store; every version written, in
/// write order.
async fn write_history(reviews: &ReviewStore) -> anyhow::Result<Vec<Review>> {
    let mut rng = StdRng::seed_from_u64(16);
    let stars = [1.0, 2.5, 3.5, 4.0, 4.5, 5.0, 5.0];
    let creates: Vec<(i64, i64, f64)> = (0..REVIEWS)
        .map(|_| {
            (
                rng.random_range(1..=USERS),
                rng.random_range(1..=MOVIES),
                stars[rng.random_range(0..stars.len())],
            )
        })
        .collect();
    let created: Vec<Review> = futures::stream::iter(creates)
        .map(|(user, movie, s)| async move {
            Ok::<_, anyhow::Error>(reviews.create(user, movie, content(s)?, None).await?.review)
        })
        .buffer_unordered(WRITE_CONCURRENCY)
        .try_collect()
        .await?;
    // Edits flip likes both ways (some twice), deletes take them away.
    let mut updates: Vec<(uuid::Uuid, Vec<Option<f64>>)> = Vec::new();
    for r in &created {
        let plan = match rng.random_range(0..10) {
            0 | 1 => vec![Some(stars[rng.random_range(0..stars.len())])],
            2 => vec![Some(1.0), Some(5.0)],
            3 => vec![None],
            _ => continue,
        };
        updates.push((r.review_id, plan));
    }
    let edited: Vec<Vec<Review>> = futures::stream::iter(updates)
        .map(|(id, plan)| async move {
            let mut out = Vec::new();
            for step in plan {
                let c = step.map(content).transpose()?;
                out.push(reviews.update(id, c, None, |_| true).await?.review);
            }
            Ok::<_, anyhow::Error>(out)
        })
        .buffer_unordered(WRITE_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(created
        .into_iter()
        .chain(edited.into_iter().flatten())
        .collect())
}

/// One summary line of the job's output, `flink-peer: NAME = VALUE`.
fn counter(stdout: &str, name: &str) -> Option<u64> {
    let prefix = format!("flink-peer: {name} = ");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn the_flink_job_reconciles_with_zero_differences() -> anyhow::Result<()> {
    let stack = Stack::from_env();
    let name = unique_name("flink_peer");
    let (rks, ks) = (format!("{name}_reviews"), format!("{name}_rec"));
    let (topic, changelog) = (format!("{name}.enriched"), format!("{name}.changelog"));

    // review-svc's tables: the truth reconcile recomputes from.
    let review_cql = CqlArgs::local(stack.cql_nodes.clone(), &rks);
    let session = store::connect(&review_cql)
        .await
        .map_err(|e| unreachable("Cassandra", &stack.cql_nodes.join(","), e))?;
    store::migrate(&session, &review_cql).await?;
    let reviews = ReviewStore::new(Arc::clone(&session), &review_cql).await?;
    // The Flink job's keyspace, created by the recommender's own migration
    // (the job's CREATE ... IF NOT EXISTS then finds the same schema).
    let rec_cql = CqlConfig {
        shared: cinerec_stream::CqlArgs {
            cql_nodes: stack.cql_nodes.clone(),
            keyspace: ks.clone(),
            ..cinerec_stream::CqlArgs::default()
        },
        ..CqlConfig::default()
    };
    recommender::store::migrate(&session, &rec_cql).await?;

    let versions = write_history(&reviews).await?;
    let latest: BTreeMap<uuid::Uuid, &Review> =
        versions.iter().fold(BTreeMap::new(), |mut m, r| {
            if m.get(&r.review_id)
                .is_none_or(|have: &&Review| have.version < r.version)
            {
                m.insert(r.review_id, r);
            }
            m
        });
    assert!(
        latest.values().any(|r| r.deleted),
        "the history has deletes"
    );

    // Every version once, a tenth of them again (redeliveries), shuffled.
    let mut rng = StdRng::seed_from_u64(61);
    let mut events: Vec<EnrichedReview> = versions.iter().map(enriched).collect();
    let again: Vec<EnrichedReview> = events
        .iter()
        .filter(|_| rng.random_bool(0.1))
        .cloned()
        .collect();
    events.extend(again);
    events.shuffle(&mut rng);

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .create()?;
    for r in admin
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .map_err(|e| unreachable("Kafka", &stack.kafka_brokers, e))?
    {
        r.map_err(|(t, code)| anyhow::anyhow!("creating topic {t}: {code}"))?;
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .create()?;
    let mut payloads: Vec<(String, Vec<u8>)> = events
        .iter()
        .map(|ev| Ok((ev.key(), ev.encode()?)))
        .collect::<anyhow::Result<_>>()?;
    payloads.insert(
        payloads.len() / 2,
        ("7".into(), b"\xC3\x01not avro".to_vec()),
    );
    futures::stream::iter(&payloads)
        .map(|(key, payload)| {
            producer.send(
                FutureRecord::to(&topic).key(key).payload(payload),
                Duration::from_secs(30),
            )
        })
        .buffer_unordered(256)
        .map(|r| {
            r.map(|_| ())
                .map_err(|(e, _)| anyhow::anyhow!("producing: {e}"))
        })
        .try_collect::<()>()
        .await?;

    let run = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/peers/flink/run");
    let checkpoints = std::env::temp_dir().join(&name);
    let cql = stack
        .cql_nodes
        .first()
        .ok_or_else(|| anyhow::anyhow!("no CQL node configured"))?;
    let started = Instant::now();
    let output = tokio::time::timeout(
        JOB_TIMEOUT + Duration::from_secs(60),
        tokio::process::Command::new(run)
            .args(["--brokers", &stack.kafka_brokers, "--topic", &topic])
            .args(["--group", &name, "--cql", cql, "--keyspace", &ks])
            .args(["--changelog-topic", &changelog])
            .arg("--checkpoint-dir")
            .arg(&checkpoints)
            .env("FLINK_PEER_TIMEOUT", JOB_TIMEOUT.as_secs().to_string())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the Flink job ran past {JOB_TIMEOUT:?}"))??;
    let _ = std::fs::remove_dir_all(&checkpoints);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Flink job failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    eprintln!(
        "flink job: {} events in {:.1} s\n{stdout}",
        payloads.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        counter(&stdout, "eventsDecoded"),
        Some(events.len() as u64),
        "every valid event decoded:\n{stdout}"
    );
    assert_eq!(
        counter(&stdout, "eventsDeadLettered"),
        Some(1),
        "the poison record dead-lettered:\n{stdout}"
    );

    let args = Args::local(
        stack.cql_nodes.clone(),
        &rks,
        &ks,
        &stack.kafka_brokers,
        &changelog,
    );
    let report = reconcile::reconcile(&session, &args).await?;
    eprintln!("{}", report.render(20));
    assert!(
        report.is_clean(),
        "the Flink job's tables: {}",
        report.render(50)
    );
    let c = &report.counts;
    assert_eq!(c.reviews as usize, latest.len(), "acknowledged reviews");
    assert_eq!(
        c.changelog_reviews,
        latest.len(),
        "every review in the changelog"
    );
    assert!(c.likes > 0 && c.c > 0, "the history has co-likes: {c:?}");
    assert_eq!((c.likes, c.n, c.c), c.actual);
    assert!(c.recommendations_compared >= c.users, "{c:?}");
    Ok(())
}
