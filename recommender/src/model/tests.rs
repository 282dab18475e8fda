//! The model against hand-worked examples and against its batch
//! recomputation under duplicates, reordering and deletes.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::*;

fn review(id: u128, user: UserId, movie: MovieId, rating: f32, version: i64) -> ReviewState {
    ReviewState {
        review_id: id,
        user_id: user,
        movie_id: movie,
        rating,
        version,
        changed_at_us: version * 1_000,
        deleted: false,
    }
}

#[test]
fn counts_and_similarity_by_hand() {
    let mut m = Model::new();
    // Users 1 and 2 like movies 10 and 20; user 3 likes 10 and 30; user 4 rates 20 low.
    for (id, (u, movie, r)) in [
        (1, 10, 5.0),
        (1, 20, 4.0),
        (2, 10, 4.5),
        (2, 20, 5.0),
        (3, 10, 4.0),
        (3, 30, 4.0),
        (4, 20, 2.0),
    ]
    .into_iter()
    .enumerate()
    {
        m.apply(review(id as u128, u, movie, r, 1));
    }
    assert_eq!((m.n(10), m.n(20), m.n(30)), (3, 2, 1));
    assert_eq!(
        (m.c(10, 20), m.c(20, 10), m.c(10, 30), m.c(20, 30)),
        (2, 2, 1, 0)
    );
    // Cosine 2/sqrt(3·2), shrunk by C/(C + 25) = 2/27: 4/(27·sqrt(6)) ≈ 0.0605.
    assert!((m.similarity(10, 20) - 4.0 / (27.0 * 6.0_f64.sqrt())).abs() < 1e-12);
    // C(10, 30) = 1, N(30) = 1: 1/sqrt(3) · 1/26 ≈ 0.0222.
    assert!((m.similarity(10, 30) - 1.0 / (26.0 * 3.0_f64.sqrt())).abs() < 1e-12);
    // User 3 likes 10 and 30: 20 is unseen and co-occurs with 10.
    assert_eq!(
        m.recommend(3, TOP_N)
            .iter()
            .map(|(id, _)| *id)
            .collect::<Vec<_>>(),
        vec![20]
    );
    // User 1 has seen 10 and 20; 30 co-occurs with 10.
    let rec = m.recommend(1, TOP_N);
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].0, 30);
    assert!((rec[0].1 - m.similarity(10, 30)).abs() < 1e-12);
    // User 4 likes nothing: cold start, filled from trending minus what they saw.
    assert!(m.recommend(4, TOP_N).is_empty());
    assert_eq!(with_fallback(&m, 4, vec![], &[20, 30, 10], 2), vec![30, 10]);
}

#[test]
fn stale_and_duplicate_states_change_nothing() {
    let mut m = Model::new();
    assert!(matches!(
        m.apply(review(1, 1, 10, 5.0, 1)),
        Applied::Advanced {
            likes_changed: true
        }
    ));
    assert_eq!(m.apply(review(1, 1, 10, 5.0, 1)), Applied::Stale);
    assert!(matches!(
        m.apply(review(1, 1, 10, 2.0, 3)),
        Applied::Advanced {
            likes_changed: true
        }
    ));
    // Version 2 arrives late: it must not resurrect the like.
    assert_eq!(m.apply(review(1, 1, 10, 5.0, 2)), Applied::Stale);
    assert_eq!(m.n(10), 0);
}

#[test]
fn deletes_and_several_reviews_of_one_movie() {
    let mut m = Model::new();
    m.apply(review(1, 1, 10, 5.0, 1)); // review A likes 10
    m.apply(review(9, 1, 11, 5.0, 1));
    m.apply(ReviewState {
        changed_at_us: 5_000,
        ..review(2, 1, 10, 2.0, 1)
    }); // later review B dislikes 10
    assert_eq!(
        (m.n(10), m.c(10, 11)),
        (0, 0),
        "the latest live review of (user, movie) counts"
    );
    m.apply(ReviewState {
        deleted: true,
        changed_at_us: 6_000,
        ..review(2, 1, 10, 2.0, 2)
    });
    assert_eq!(
        (m.n(10), m.c(10, 11)),
        (1, 1),
        "deleting B makes A count again"
    );
    m.apply(ReviewState {
        deleted: true,
        changed_at_us: 7_000,
        ..review(1, 1, 10, 5.0, 2)
    });
    assert_eq!(m.n(10), 0);
    assert!(!m.has_seen(1, 10), "no live review left");
    assert_eq!(m.state(), batch([review(9, 1, 11, 5.0, 1)]));
}

#[test]
fn incremental_equals_batch_under_duplicates_reordering_and_edits() {
    for seed in 0..40 {
        let mut rng = StdRng::seed_from_u64(seed);
        // A history: reviews by 30 users of 25 movies, each edited or deleted a few times.
        let mut history: Vec<ReviewState> = Vec::new();
        for id in 0..200_u128 {
            let (user, mut movie) = (rng.random_range(0..30), rng.random_range(0..25));
            for version in 1..=rng.random_range(1..=4) {
                if rng.random_bool(0.1) {
                    movie = rng.random_range(0..25); // an edit may even move the review
                }
                history.push(ReviewState {
                    review_id: id,
                    user_id: user,
                    movie_id: movie,
                    rating: f32::from(rng.random_range(1_u8..=10)) / 2.0,
                    version,
                    changed_at_us: rng.random_range(0..1_000_000),
                    deleted: rng.random_bool(0.08),
                });
            }
        }
        // Delivery: each review's versions in order (as Kafka keys them),
        // interleaved across reviews, 15 % redelivered, some redeliveries of old versions late.
        let mut delivery = history.clone();
        delivery.shuffle(&mut rng);
        let extra: Vec<ReviewState> = history
            .iter()
            .filter(|_| rng.random_bool(0.15))
            .copied()
            .collect();
        delivery.extend(extra);
        let mut model = Model::new();
        for s in &delivery {
            model.apply(*s);
        }
        let expected = batch(history.iter().copied());
        let differences = diff(&expected, &model.state());
        assert!(
            differences.is_empty(),
            "seed {seed}: {:?}",
            &differences[..differences.len().min(5)]
        );
    }
}

#[test]
fn diff_reports_each_kind() {
    let a = batch([review(1, 1, 10, 5.0, 1), review(2, 1, 11, 5.0, 1)]);
    let b = batch([review(1, 1, 10, 5.0, 1)]);
    let d = diff(&a, &b);
    assert!(d.contains(&Difference::Like(1, 11, true)));
    assert!(d.contains(&Difference::N(11, 1, 0)));
    assert!(d.contains(&Difference::C((10, 11), 1, 0)));
    assert_eq!(d.len(), 3);
    assert!(diff(&a, &a).is_empty());
}
