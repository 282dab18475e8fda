//! Unit tests of `pipeline`.
use uuid::Uuid;

use super::*;
use crate::model::{MovieId, UserId};
use crate::store::Write;

fn event(rating: Option<f32>, version: i64) -> EnrichedReview {
    EnrichedReview {
        event_id: Uuid::nil(),
        review_id: Uuid::from_u128(9),
        version,
        deleted: false,
        rating,
        user_id: 1,
        movie_id: 2,
        changed_at_us: 10,
        movie_title: String::new(),
        movie_year: 2000,
        movie_genres: vec![],
        movie_popularity: 0.0,
        user_country: String::new(),
        user_zone: String::new(),
        user_preferred_genres: vec![],
        user_tier: cinerec_events::Tier::Free,
        enriched_at_us: 0,
    }
}

fn record(payload: Option<Vec<u8>>) -> OwnedMessage {
    OwnedMessage::new(
        payload,
        None,
        "reviews.enriched".into(),
        rdkafka::Timestamp::NotAvailable,
        0,
        0,
        None,
    )
}

/// Review `review` by `user` of `movie` (genre "drama", as the user
/// prefers), at `review` ms.
fn drama(review: u128, user: UserId, movie: MovieId, rating: f32) -> EnrichedReview {
    EnrichedReview {
        review_id: Uuid::from_u128(review),
        user_id: user,
        movie_id: movie,
        changed_at_us: i64::try_from(review).unwrap_or(0) * 1_000,
        movie_genres: vec!["drama".into()],
        user_preferred_genres: vec!["drama".into()],
        ..event(Some(rating), 1)
    }
}

/// Issue 15: "cold-start users (≤ 2 likes) get model items where
/// co-likes exist, trending otherwise", through the row the flush
/// writes (`State::recommendations`), not just the model.
#[test]
fn cold_start_users_get_model_items_where_co_likes_exist_trending_otherwise() {
    let mut st = State::new(&Config::default(), 1);
    let mut outcomes = Outcomes::default();
    let mut review = 0;
    let mut add = |st: &mut State, user, movie, rating| {
        review += 1;
        assert!(st.apply(&drama(review, user, movie, rating), 0, true, &mut outcomes));
    };
    // Users 1 and 2 like 10 and 20: C(10, 20) = 2.
    for user in [1, 2] {
        add(&mut st, user, 10, 5.0);
        add(&mut st, user, 20, 4.5);
    }
    // Trending in drama: 30 (6 reviews), 31 (4), none of them liked.
    for user in 50..56 {
        add(&mut st, user, 30, 3.0);
    }
    for user in 60..64 {
        add(&mut st, user, 31, 2.5);
    }
    // User 3: one like, of 10, which others co-like with 20.
    add(&mut st, 3, 10, 4.0);
    // User 4: two likes nobody else shares (40, 41), and a review of 30.
    add(&mut st, 4, 40, 5.0);
    add(&mut st, 4, 41, 4.0);
    add(&mut st, 4, 30, 1.0);
    // Trending now: 30 (7), 31 (4), 10 (3), 20 (2), 40, 41 (1).

    let Write::Recommendations {
        movies,
        scores,
        from_model,
        ..
    } = st.recommendations(3)
    else {
        panic!("not a recommendations row");
    };
    assert_eq!(from_model, 1, "the co-liked movie comes from the model");
    assert_eq!(movies, vec![20, 30, 31, 40, 41], "then trending, 10 seen");
    assert_eq!(scores[0], st.model.recommend(3, TOP_N)[0].1);
    assert!(scores[0] > 0.0 && scores[1..].iter().all(|s| *s == 0.0));

    let Write::Recommendations {
        movies,
        scores,
        from_model,
        ..
    } = st.recommendations(4)
    else {
        panic!("not a recommendations row");
    };
    assert_eq!(from_model, 0, "no co-likes: nothing from the model");
    assert_eq!(
        movies,
        vec![31, 10, 20],
        "trending without 30, 40, 41 (seen)"
    );
    assert!(scores.iter().all(|s| *s == 0.0));
}

#[test]
fn a_null_rating_is_a_tombstone() {
    let s = review_state(&event(None, 3));
    assert!(s.deleted);
    assert_eq!((s.review_id, s.version), (9, 3));
}

/// What the runtime dead-letters for the recommender (its DLQ mechanics
/// are tested in `stream/tests/poison_to_dlq.rs`): bytes that are no
/// EnrichedReview, ratings the model cannot take, versions below 1.
#[test]
fn decode_refuses_what_the_model_cannot_take() -> anyhow::Result<()> {
    let ok = event(Some(4.5), 2);
    assert_eq!(decode_one(&record(Some(ok.encode()?))), Ok(ok));
    let refused = |r: OwnedMessage| decode_one(&r).err().unwrap_or_default();
    assert_eq!(refused(record(None)), "empty payload");
    assert!(refused(record(Some(b"not avro".to_vec()))).starts_with("undecodable EnrichedReview"));
    for bad in [f32::NAN, -0.5, 5.5, f32::INFINITY] {
        let e = refused(record(Some(event(Some(bad), 1).encode()?)));
        assert!(e.starts_with("invalid rating"), "{bad}: {e}");
    }
    let e = refused(record(Some(event(Some(4.0), 0).encode()?)));
    assert!(e.starts_with("invalid version 0"), "{e}");
    Ok(())
}
