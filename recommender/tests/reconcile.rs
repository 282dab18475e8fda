//! Reconciliation against the real stack: reviews written through
//! review-svc's own store (creates, edits, deletes, plus a reserved-but-
//! uncommitted version and a create still in flight), the recommender's
//! durable state (its changelog topic) and serving table written to match
//! them → zero differences; then one like taken away in the changelog (a
//! forged newer version) and one recommendation reordered → exactly the
//! like, `N` and `C` differences that implies and the reordering, exit code 1
//! (also from the `recommender reconcile` binary). A keyspace that does not
//! exist is an error (exit code 2).

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::Arc;

use cinerec_events::{EnrichedReview, Tier};
use cinerec_service_kit::clock::now_micros;
use cinerec_tests::{Stack, unique_name, unreachable};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use recommender::config::CqlConfig;
use recommender::model::{self, Difference as ModelDifference, Model, ReviewState, TOP_N};
use recommender::oracle;
use recommender::reconcile::{self, Args, Difference, EXIT_ERROR, Mismatch};
use review_svc::config::CqlArgs;
use review_svc::model::{Content, Rating, Review};
use review_svc::store::{self, ReviewStore};
use scylla::client::session::Session;
use uuid::Uuid;

fn state(r: &Review) -> ReviewState {
    ReviewState {
        review_id: r.review_id.as_u128(),
        user_id: r.user_id,
        movie_id: r.movie_id,
        rating: r.rating.unwrap_or(0.0),
        version: r.version,
        changed_at_us: r.changed_at_us,
        deleted: r.deleted,
    }
}

fn content(stars: f64) -> anyhow::Result<Content> {
    Ok(Content {
        rating: Rating::parse(stars).map_err(|e| anyhow::anyhow!("{e}"))?,
        text: String::new(),
    })
}

/// Writes a random review history through review-svc's store; returns the
/// latest state of each review as the store acknowledged it.
async fn write_reviews(reviews: &ReviewStore) -> anyhow::Result<Vec<ReviewState>> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut latest: BTreeMap<Uuid, Review> = BTreeMap::new();
    for user in 1..=12_i64 {
        // Each user reviews 4-7 of 15 movies, mostly liking them.
        let mut movies: BTreeSet<i64> = BTreeSet::new();
        while movies.len() < rng.random_range(4..=7) {
            movies.insert(rng.random_range(1..=15));
        }
        for movie in movies {
            let stars = [2.0, 3.5, 4.0, 4.5, 5.0, 5.0][rng.random_range(0..6)];
            let written = reviews.create(user, movie, content(stars)?, None).await?;
            latest.insert(written.review.review_id, written.review);
        }
    }
    let ids: Vec<Uuid> = latest.keys().copied().collect();
    for (k, id) in ids.iter().enumerate() {
        let update = match k % 9 {
            // Edits flip likes both ways; deletes remove them.
            0 => Some(Some(content(1.0)?)),
            4 => Some(Some(content(5.0)?)),
            7 => Some(None),
            _ => None,
        };
        if let Some(c) = update {
            let written = reviews.update(*id, c, None, |_| true).await?;
            latest.insert(*id, written.review);
        }
    }
    Ok(latest.values().map(state).collect())
}

/// The changelog record of a review state, as the recommender writes it.
fn record(s: &ReviewState) -> EnrichedReview {
    EnrichedReview {
        event_id: Uuid::new_v4(),
        review_id: Uuid::from_u128(s.review_id),
        version: s.version,
        deleted: s.deleted,
        rating: (!s.deleted).then_some(s.rating),
        user_id: s.user_id,
        movie_id: s.movie_id,
        changed_at_us: s.changed_at_us,
        movie_title: String::new(),
        movie_year: 2000,
        movie_genres: vec!["Drama".into()],
        movie_popularity: 0.0,
        user_country: String::new(),
        user_zone: String::new(),
        user_preferred_genres: vec![],
        user_tier: Tier::Free,
        enriched_at_us: 0,
    }
}

/// Appends review states to the changelog topic.
async fn append(brokers: &str, topic: &str, states: &[ReviewState]) -> anyhow::Result<()> {
    let producer = cinerec_service_kit::kafka::idempotent_producer(brokers, &[])?;
    let writer = recommender::changelog::Writer::new(producer, topic.to_owned(), 1, "test".into());
    let records: Vec<EnrichedReview> = states.iter().map(record).collect();
    let refs: Vec<(i32, &EnrichedReview)> = records.iter().map(|r| (0, r)).collect();
    let backoff = cinerec_backoff::ExponentialBackoff::new(
        std::time::Duration::from_millis(50),
        std::time::Duration::from_millis(500),
    );
    writer
        .write_all(&refs, backoff, &cinerec_service_kit::Shutdown::new())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Writes what a correct recommender would have written for `states`: its
/// changelog, and its recommendation rows (from `Model::recommend`, the
/// recommender's own scoring, which reconcile checks against the oracle)
/// with one trending top-up entry each.
async fn write_recommender_state(
    session: &Session,
    ks: &str,
    brokers: &str,
    topic: &str,
    states: &[ReviewState],
) -> anyhow::Result<()> {
    recommender::changelog::ensure(brokers, topic, 1).await?;
    append(brokers, topic, states).await?;
    let expected = model::batch(states.iter().copied());
    let mut live = Model::new();
    for s in states {
        live.apply(*s);
    }
    for user in expected.likes.keys() {
        let top = live.recommend(*user, TOP_N);
        let mut ids: Vec<i64> = top.iter().map(|(m, _)| *m).collect();
        let mut scores: Vec<f64> = top.iter().map(|(_, s)| *s).collect();
        ids.push(1_000 + user);
        scores.push(0.0);
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.recommendations_by_user \
                     (user_id, movie_ids, scores, from_model, computed_at) VALUES (?, ?, ?, ?, ?)"
                ),
                (user, ids, scores, top.len() as i32, now_micros()),
            )
            .await?;
    }
    Ok(())
}

/// Versions review-svc never acknowledged: a reserved version whose batch
/// only half landed (its `reviews` row without the head's commit marker),
/// and a create whose head has no `committed` at all.
async fn write_unacknowledged(
    session: &Session,
    rks: &str,
    committed: &ReviewState,
) -> anyhow::Result<()> {
    let id = Uuid::from_u128(committed.review_id);
    let next = committed.version + 1;
    session
        .query_unpaged(
            format!(
                "UPDATE {rks}.review_heads SET version = ?, changed_at = ?, reserved_at = ? \
                 WHERE review_id = ? IF version = ?"
            ),
            (next, now_micros(), now_micros(), id, committed.version),
        )
        .await?;
    let insert_review = format!(
        "INSERT INTO {rks}.reviews (review_id, version, user_id, movie_id, rating, text, \
         deleted, created_at, changed_at) VALUES (?, ?, ?, ?, ?, '', false, ?, ?)"
    );
    // The opposite rating: counted, it would flip the like.
    let flipped: f32 = if committed.rating >= 4.0 { 1.0 } else { 5.0 };
    session
        .query_unpaged(
            insert_review.as_str(),
            (
                id,
                next,
                committed.user_id,
                committed.movie_id,
                flipped,
                now_micros(),
                now_micros(),
            ),
        )
        .await?;
    let in_flight = Uuid::new_v4();
    session
        .query_unpaged(
            format!(
                "INSERT INTO {rks}.review_heads (review_id, version, changed_at, reserved_at, \
                 user_id, movie_id, created_at) VALUES (?, 1, ?, ?, 1, 2, ?)"
            ),
            (in_flight, now_micros(), now_micros(), now_micros()),
        )
        .await?;
    session
        .query_unpaged(
            insert_review.as_str(),
            (
                in_flight,
                1_i64,
                1_i64,
                2_i64,
                5.0_f32,
                now_micros(),
                now_micros(),
            ),
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn reports_zero_differences_then_exactly_the_tampered_rows() -> anyhow::Result<()> {
    let stack = Stack::from_env();
    let rks = unique_name("rc_reviews");
    let ks = unique_name("rc_recommender");
    let review_cql = CqlArgs::local(stack.cql_nodes.clone(), &rks);
    let session = store::connect(&review_cql)
        .await
        .map_err(|e| unreachable("Cassandra", &stack.cql_nodes.join(","), e))?;
    store::migrate(&session, &review_cql).await?;
    let reviews = ReviewStore::new(Arc::clone(&session), &review_cql).await?;
    let recommender_cql = CqlConfig {
        shared: cinerec_stream::CqlArgs {
            cql_nodes: stack.cql_nodes.clone(),
            keyspace: ks.clone(),
            ..cinerec_stream::CqlArgs::default()
        },
        ..CqlConfig::default()
    };
    recommender::store::migrate(&session, &recommender_cql).await?;

    let states = write_reviews(&reviews).await?;
    let changelog = unique_name("rc_changelog");
    write_recommender_state(&session, &ks, &stack.kafka_brokers, &changelog, &states).await?;
    let liked = states
        .iter()
        .find(|s| !s.deleted && s.rating >= 4.0)
        .copied()
        .ok_or_else(|| anyhow::anyhow!("the history has a like"))?;
    write_unacknowledged(&session, &rks, &liked).await?;

    let args = Args::local(
        stack.cql_nodes.clone(),
        &rks,
        &ks,
        &stack.kafka_brokers,
        &changelog,
    );
    let report = reconcile::reconcile(&session, &args).await?;
    let expected = model::batch(states.iter().copied());
    assert!(
        report.is_clean(),
        "consistent tables: {}",
        report.render(50)
    );
    assert_eq!(report.exit_code(), 0);
    let c = &report.counts;
    assert_eq!(c.reviews as usize, states.len(), "acknowledged reviews");
    assert_eq!(
        c.uncommitted_rows, 2,
        "the half-landed version and the create in flight"
    );
    assert_eq!(c.users, expected.likes.len());
    assert_eq!((c.likes, c.n, c.c), c.actual);
    assert_eq!(c.changelog_records as usize, states.len());
    assert_eq!(c.recommendations_compared, expected.likes.len());
    assert!(c.c > 0, "the history has co-likes: {c:?}");

    // Tamper: a forged newer version takes one like away in the changelog
    // (so N and every C with the user's other likes move too), and one
    // recommendation is reordered.
    let forged = ReviewState {
        version: liked.version + 1,
        rating: 1.0,
        ..liked
    };
    append(&stack.kafka_brokers, &changelog, &[forged]).await?;
    let tampered = model::batch(states.iter().copied().chain([forged]));
    let model_differences: Vec<Difference> = model::diff(&expected, &tampered)
        .into_iter()
        .map(Difference::Model)
        .collect();
    assert!(
        model_differences.contains(&Difference::Model(ModelDifference::Like(
            liked.user_id,
            liked.movie_id,
            true
        ))),
        "{model_differences:?}"
    );
    assert!(
        model_differences.len() >= 2,
        "the like, its N: {model_differences:?}"
    );
    // A user whose two best recommendations (by the oracle, which reconcile
    // checks against) are not a near tie: swap them.
    let lists = oracle::recommend_all(states.iter().copied());
    let (rec_user, top) = expected
        .likes
        .keys()
        .map(|u| (*u, oracle::top(&lists, *u).to_vec()))
        .find(|(_, top)| top.len() >= 2 && !reconcile::close(top[0].1, top[1].1))
        .ok_or_else(|| anyhow::anyhow!("a user with two distinct recommendations"))?;
    let mut ids: Vec<i64> = top.iter().map(|(m, _)| *m).collect();
    ids.swap(0, 1);
    ids.push(1_000 + rec_user); // the trending top-up, as written
    session
        .query_unpaged(
            format!("UPDATE {ks}.recommendations_by_user SET movie_ids = ? WHERE user_id = ?"),
            (ids, rec_user),
        )
        .await?;

    let report = reconcile::reconcile(&session, &args).await?;
    let mut want = model_differences.clone();
    want.push(Difference::Recommendation(
        rec_user,
        Mismatch::Movie {
            position: 0,
            expected: top[0].0,
            actual: top[1].0,
        },
    ));
    assert_eq!(report.differences, want, "{}", report.render(50));
    assert_eq!(report.exit_code(), 1);
    let total = want.len();
    let printed = report.render(2);
    assert!(
        printed.contains(&format!("differences: {total}")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("and {} more", total - 2)),
        "{printed}"
    );
    // The subcommand's exit status, in-process and as the binary.
    assert_eq!(reconcile::run(args.clone()).await?, ExitCode::from(1));
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_recommender"))
        .arg("reconcile")
        .args(["--cql-nodes", &stack.cql_nodes.join(",")])
        .args(["--review-keyspace", &rks, "--keyspace", &ks, "--show", "3"])
        .args([
            "--brokers",
            &stack.kafka_brokers,
            "--changelog-topic",
            &changelog,
        ])
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("differences: {total}")),
        "{stdout}"
    );
    if total > 3 {
        assert!(
            stdout.contains(&format!("and {} more", total - 3)),
            "{stdout}"
        );
    }

    // Without the recommendation comparison only the model differences remain.
    let skip = Args {
        skip_recommendations: true,
        ..args.clone()
    };
    assert_eq!(
        reconcile::reconcile(&session, &skip).await?.differences,
        model_differences
    );

    for k in [&rks, &ks] {
        session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {k}"), &[])
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_missing_keyspace_is_an_error_not_a_clean_report() -> anyhow::Result<()> {
    let stack = Stack::from_env();
    let args = Args::local(
        stack.cql_nodes.clone(),
        &unique_name("rc_absent"),
        &unique_name("rc_absent"),
        &stack.kafka_brokers,
        &unique_name("rc_absent"),
    );
    let session = reconcile::connect(&stack.cql_nodes)
        .await
        .map_err(|e| unreachable("Cassandra", &stack.cql_nodes.join(","), e))?;
    let error = reconcile::reconcile(&session, &args)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("reading a missing keyspace succeeded"))?;
    assert!(
        error.to_string().contains(&args.review_keyspace),
        "the error names what could not be read: {error}"
    );
    assert_eq!(reconcile::run(args).await?, ExitCode::from(EXIT_ERROR));
    Ok(())
}
