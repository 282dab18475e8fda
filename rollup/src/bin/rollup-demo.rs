//! `rollup-demo`: a short, real input for the dashboard when the pipeline is
//! not running (dashboard/test.sh, a demo): produces EnrichedReview events of
//! the seeded catalogue to a topic (with some events sent twice, as a
//! redelivering enricher would), and writes what a recommender would have
//! computed from them into the contract tables `recommendations_by_user` and
//! `trending_by_genre` of a keyspace it creates. It stands in for the
//! enricher and the recommender, never for the sink: the rollups are still
//! written by `rollup` reading these.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use cinerec_catalog::Catalog;
use cinerec_events::EnrichedReview;
use clap::Parser;
use rand::{Rng, SeedableRng};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord};
use uuid::Uuid;

/// Produce demo events and recommender rows for the dashboard.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(long, env = "ROLLUP_KAFKA_BROKERS", default_value = cinerec_service_kit::defaults::DEFAULT_BROKERS)]
    brokers: String,
    /// Topic to produce EnrichedReview events to (created if missing).
    #[arg(long, required_unless_present = "drop", default_value = "")]
    topic: String,
    /// Cassandra contact points.
    #[arg(long, env = "CINEREC_CQL_NODES", default_value = cinerec_service_kit::defaults::DEFAULT_CQL_NODES, value_delimiter = ',')]
    cql_nodes: Vec<String>,
    /// Keyspace to write the recommender's contract tables into (created if missing).
    #[arg(long)]
    keyspace: String,
    /// Review events to produce.
    #[arg(long, default_value_t = 3_000)]
    reviews: usize,
    /// Users and movies of the catalogue.
    #[arg(long, default_value_t = 300)]
    users: u64,
    /// Movies of the catalogue.
    #[arg(long, default_value_t = 400)]
    movies: u64,
    /// Minutes of event time the reviews spread over (ending now).
    #[arg(long, default_value_t = 15)]
    minutes: i64,
    /// Share of events produced a second time.
    #[arg(long, default_value_t = 0.05)]
    duplicate_share: f64,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Only drop `--keyspace` (clean-up after a demo or test run).
    #[arg(long)]
    drop: bool,
}

const LIKE: f32 = 4.0;
const LIST: usize = 20;
/// λ of the similarity's shrinkage `C/(C + λ)`: the recommender's
/// `model::SHRINKAGE` (this crate does not depend on the recommender).
const SHRINKAGE: f64 = 25.0;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.drop {
        let session = rollup::snapshot::connect(&args.cql_nodes).await?;
        rollup::snapshot::check_keyspace(&args.keyspace)?;
        session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", args.keyspace), ())
            .await?;
        return Ok(());
    }
    anyhow::ensure!(
        args.users > 0 && args.movies > 0,
        "--users and --movies must be > 0"
    );
    let catalog = Catalog::new(args.seed, args.movies, args.users);
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let now = cinerec_service_kit::clock::now_micros();
    let span = args.minutes.max(1) * 60_000_000;

    // Reviews: users uniform, movies ~1/rank (log-uniform rank), ratings
    // skewed high as review sites' are; some edited, a few deleted.
    let mut events = Vec::with_capacity(args.reviews);
    let mut latest: HashMap<(i64, i64), f32> = HashMap::new();
    for i in 0..args.reviews {
        let user = catalog.user(rng.random_range(1..=args.users as i64));
        let rank = (args.movies as f64).powf(rng.random::<f64>()).ceil() as u64;
        let movie = catalog.movie(catalog.id_of_rank(rank.clamp(1, args.movies)));
        let rating =
            (rng.random_range(2..=10) as f32 + rng.random_range(0..=2) as f32).min(10.0) / 2.0;
        let (version, deleted) = match rng.random::<f64>() {
            p if p < 0.05 => (2, true),
            p if p < 0.20 => (2, false),
            _ => (1, false),
        };
        let changed_at = now - span + (span * i as i64) / args.reviews.max(1) as i64;
        if deleted {
            latest.remove(&(user.id, movie.id));
        } else {
            latest.insert((user.id, movie.id), rating);
        }
        events.push(EnrichedReview {
            event_id: Uuid::new_v4(),
            review_id: Uuid::new_v4(),
            version,
            deleted,
            rating: (!deleted).then_some(rating),
            user_id: user.id,
            movie_id: movie.id,
            changed_at_us: changed_at,
            movie_title: movie.title.clone(),
            movie_year: movie.year,
            movie_genres: movie.genres.clone(),
            movie_popularity: movie.popularity,
            user_country: user.country.clone(),
            user_zone: user.zone.clone(),
            user_preferred_genres: user.preferred_genres.clone(),
            user_tier: user.tier,
            enriched_at_us: now,
        });
    }
    let duplicates: Vec<EnrichedReview> = events
        .iter()
        .filter(|_| rng.random::<f64>() < args.duplicate_share)
        .cloned()
        .collect();

    produce(&args, &events, &duplicates).await?;
    write_recommender_tables(&args, &catalog, &latest, &events, now).await?;
    println!(
        "rollup-demo: produced {} events + {} duplicates to {}; wrote recommendations for {} users and trending for {} genres into {}",
        events.len(),
        duplicates.len(),
        args.topic,
        latest.keys().map(|k| k.0).collect::<BTreeSet<_>>().len(),
        cinerec_catalog::GENRES.len(),
        args.keyspace
    );
    Ok(())
}

async fn produce(
    args: &Args,
    events: &[EnrichedReview],
    duplicates: &[EnrichedReview],
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .create()?;
    for result in admin
        .create_topics(
            &[NewTopic::new(&args.topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?
    {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("creating topic {topic}: {code}"),
        }
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()?;
    let sends = events.iter().chain(duplicates).map(|e| {
        let producer = &producer;
        async move {
            let payload = e.encode()?;
            let key = e.key();
            producer
                .send(
                    FutureRecord::to(&args.topic).key(&key).payload(&payload),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(err, _)| anyhow::anyhow!("produce: {err}"))?;
            anyhow::Ok(())
        }
    });
    futures::future::try_join_all(sends).await?;
    Ok(())
}

/// What the recommender computes (DESIGN §5, with the recommender's
/// shrinkage), small enough to do here: likes at rating ≥ 4, item–item
/// similarity C/sqrt(N·N) · C/(C + λ), top 20 unseen by summed similarity,
/// filled with trending movies of the user's genres; trending = per-genre
/// review counts over the whole span.
async fn write_recommender_tables(
    args: &Args,
    catalog: &Catalog,
    latest: &HashMap<(i64, i64), f32>,
    events: &[EnrichedReview],
    now: i64,
) -> anyhow::Result<()> {
    let mut likes: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    let mut seen: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for (&(user, movie), &rating) in latest {
        seen.entry(user).or_default().insert(movie);
        if rating >= LIKE {
            likes.entry(user).or_default().insert(movie);
        }
    }
    let mut n: HashMap<i64, f64> = HashMap::new();
    let mut c: HashMap<(i64, i64), f64> = HashMap::new();
    for liked in likes.values() {
        for &a in liked {
            *n.entry(a).or_default() += 1.0;
            for &b in liked {
                if a != b {
                    *c.entry((a, b)).or_default() += 1.0;
                }
            }
        }
    }
    let mut genre_counts: BTreeMap<String, HashMap<i64, i32>> = BTreeMap::new();
    for e in events {
        for g in &e.movie_genres {
            *genre_counts
                .entry(g.clone())
                .or_default()
                .entry(e.movie_id)
                .or_default() += 1;
        }
    }
    let trending: BTreeMap<String, Vec<(i64, i32)>> = genre_counts
        .into_iter()
        .map(|(g, counts)| {
            let mut v: Vec<(i64, i32)> = counts.into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            v.truncate(LIST);
            (g, v)
        })
        .collect();

    let session = rollup::snapshot::connect(&args.cql_nodes).await?;
    for ddl in rollup::snapshot::contract_ddl(&args.keyspace)? {
        session.query_unpaged(ddl, ()).await?;
    }
    // The serving contract's own writes: each row at a client-side
    // timestamp (here `now`), as the recommender writes them.
    let inserts = cinerec_serving::schema::inserts(&args.keyspace).map_err(anyhow::Error::msg)?;
    let insert_rec = session.prepare(inserts.recommendations).await?;
    for (user, seen_movies) in &seen {
        let mut scores: HashMap<i64, f64> = HashMap::new();
        for &l in likes.get(user).into_iter().flatten() {
            for (&(a, b), &cab) in c.iter().filter(|((a, _), _)| *a == l) {
                if !seen_movies.contains(&b) {
                    *scores.entry(b).or_default() +=
                        cab / (n[&a] * n[&b]).sqrt() * cab / (cab + SHRINKAGE);
                }
            }
        }
        let mut model: Vec<(i64, f64)> = scores.into_iter().collect();
        model.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        model.truncate(LIST);
        let from_model = model.len() as i32;
        let mut list: Vec<(i64, f64)> = model;
        for g in catalog.user(*user).preferred_genres {
            for (m, _) in trending.get(&g).into_iter().flatten() {
                if list.len() < LIST && !seen_movies.contains(m) && !list.iter().any(|x| x.0 == *m)
                {
                    list.push((*m, 0.0));
                }
            }
        }
        let (ids, scores): (Vec<i64>, Vec<f64>) = list.into_iter().unzip();
        session
            .execute_unpaged(&insert_rec, (user, ids, scores, from_model, now, now))
            .await?;
    }
    let insert_trend = session.prepare(inserts.trending).await?;
    let start = events.first().map_or(now, |e| e.changed_at_us);
    for (genre, top) in trending {
        let (ids, counts): (Vec<i64>, Vec<i32>) = top.into_iter().unzip();
        session
            .execute_unpaged(&insert_trend, (genre, ids, counts, start, now, now, now))
            .await?;
    }
    Ok(())
}
