//! The latest acknowledged state of every review: review-svc's commit rule
//! as a read, for whoever checks the pipeline against the source of truth
//! (the recommender's reconcile).
//!
//! # The rule
//!
//! `reviews` keeps every version, and `review_heads` names in `committed`
//! the last version whose write batch landed ([`crate::store`]); the head's
//! `version` counter may be one ahead (reserved by a writer that has not
//! committed, or died). Only versions up to `committed` were acknowledged,
//! so a review's latest state is its `reviews` row with the highest
//! `version ≤ committed` ([`is_acknowledged`]), and a review whose head has no
//! `committed` (a create in flight, or abandoned) does not exist yet.

use std::collections::HashMap;

use cinerec_service_kit::cql::{ScanError, check_keyspace, scan};
use scylla::client::session::Session;
use scylla::statement::Consistency;
use uuid::Uuid;

/// Whether version `version` of a review whose head says `committed` was
/// acknowledged to its writer.
pub fn is_acknowledged(version: i64, committed: Option<i64>) -> bool {
    committed.is_some_and(|c| version <= c)
}

/// One review's latest acknowledged version.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AcknowledgedReview {
    /// The review.
    pub review_id: Uuid,
    /// Its latest acknowledged version.
    pub version: i64,
    /// The author.
    pub user_id: i64,
    /// The movie.
    pub movie_id: i64,
    /// Stars; 0 for a tombstone stored without one.
    pub rating: f32,
    /// Whether this version deletes the review.
    pub deleted: bool,
    /// When the version was written (µs since the epoch, the writer's clock).
    pub changed_at_us: i64,
}

/// What a whole-keyspace read saw besides the reviews.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCounts {
    /// Rows of `reviews` read (every version).
    pub review_rows: u64,
    /// Rows beyond their head's `committed` version, or without a committed
    /// head: writes in flight or abandoned, left out.
    pub uncommitted_rows: u64,
    /// Reviews whose committed versions have no row in `reviews`.
    pub committed_without_row: u64,
    /// Rows review-svc could not have written (a live version without a
    /// rating, a null key column); left out.
    pub unreadable_rows: u64,
}

/// Why the read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The keyspace name breaks the unquoted-identifier rule.
    #[error("{0}")]
    BadKeyspace(String),
    /// A table could not be read.
    #[error(transparent)]
    Scan(#[from] ScanError),
}

type ReviewColumns = (
    Uuid,
    i64,
    Option<i64>,
    Option<i64>,
    Option<f32>,
    Option<bool>,
    Option<i64>,
);

/// The latest acknowledged version of every review in keyspace `ks`
/// (tombstones included), read whole at `consistency` (pair it with the
/// writers' LOCAL_QUORUM to see every acknowledged write).
pub async fn latest_acknowledged(
    session: &Session,
    ks: &str,
    consistency: Consistency,
) -> Result<(Vec<AcknowledgedReview>, ReadCounts), ReadError> {
    check_keyspace(ks).map_err(ReadError::BadKeyspace)?;
    // Heads first: a version committed while `reviews` is scanned is then
    // left out rather than half-seen (the next read picks it up).
    let heads: Vec<(Uuid, Option<i64>)> = scan(
        session,
        ks,
        "review_heads",
        "review_id, committed",
        "review_id",
        consistency,
    )
    .await?;
    let committed: HashMap<Uuid, Option<i64>> = heads.into_iter().collect();
    let rows: Vec<ReviewColumns> = scan(
        session,
        ks,
        "reviews",
        "review_id, version, user_id, movie_id, rating, deleted, changed_at",
        "review_id",
        consistency,
    )
    .await?;
    Ok(latest(rows, &committed))
}

/// [`latest_acknowledged`] over rows already read.
fn latest(
    rows: Vec<ReviewColumns>,
    committed: &HashMap<Uuid, Option<i64>>,
) -> (Vec<AcknowledgedReview>, ReadCounts) {
    let mut counts = ReadCounts {
        review_rows: rows.len() as u64,
        ..ReadCounts::default()
    };
    let mut latest: HashMap<Uuid, AcknowledgedReview> = HashMap::new();
    for (review_id, version, user, movie, rating, deleted, changed_at) in rows {
        if !is_acknowledged(version, committed.get(&review_id).copied().flatten()) {
            counts.uncommitted_rows += 1;
            continue;
        }
        let deleted = deleted.unwrap_or(false);
        let (Some(user_id), Some(movie_id), Some(changed_at_us)) = (user, movie, changed_at) else {
            counts.unreadable_rows += 1;
            continue;
        };
        let rating = match (rating, deleted) {
            (Some(r), _) => r,
            (None, true) => 0.0,
            (None, false) => {
                counts.unreadable_rows += 1;
                continue;
            }
        };
        let review = AcknowledgedReview {
            review_id,
            version,
            user_id,
            movie_id,
            rating,
            deleted,
            changed_at_us,
        };
        if latest
            .get(&review_id)
            .is_none_or(|have| have.version < version)
        {
            latest.insert(review_id, review);
        }
    }
    counts.committed_without_row = committed
        .iter()
        .filter(|(id, c)| c.is_some() && !latest.contains_key(id))
        .count() as u64;
    (latest.into_values().collect(), counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_versions_up_to_committed_count() {
        assert!(is_acknowledged(3, Some(3)));
        assert!(is_acknowledged(2, Some(3)));
        assert!(!is_acknowledged(4, Some(3)), "reserved, not committed");
        assert!(!is_acknowledged(1, None), "a create in flight");
    }

    #[test]
    fn the_latest_acknowledged_row_wins_and_the_rest_are_counted() {
        let (a, b, c, d) = (
            Uuid::from_u128(1),
            Uuid::from_u128(2),
            Uuid::from_u128(3),
            Uuid::from_u128(4),
        );
        let row = |id, v, rating: Option<f32>, deleted| {
            (
                id,
                v,
                Some(7),
                Some(9),
                rating,
                Some(deleted),
                Some(100 + v),
            )
        };
        let rows = vec![
            row(a, 1, Some(3.0), false),
            row(a, 2, Some(5.0), false),
            row(a, 3, Some(1.0), false), // reserved beyond committed
            row(b, 1, None, true),       // tombstone without a rating
            row(c, 1, Some(4.0), false), // head never committed
            (d, 1, None, Some(9), Some(4.0), Some(false), Some(1)), // no user: unreadable
        ];
        let committed = HashMap::from([
            (a, Some(2)),
            (b, Some(1)),
            (c, None),
            (d, Some(1)),
            (Uuid::from_u128(5), Some(1)),
        ]);
        let (mut reviews, counts) = latest(rows, &committed);
        reviews.sort_by_key(|r| r.review_id);
        let got: Vec<(Uuid, i64, f32, bool)> = reviews
            .iter()
            .map(|r| (r.review_id, r.version, r.rating, r.deleted))
            .collect();
        assert_eq!(got, [(a, 2, 5.0, false), (b, 1, 0.0, true)]);
        assert_eq!(
            counts,
            ReadCounts {
                review_rows: 6,
                uncommitted_rows: 2,
                committed_without_row: 2,
                unreadable_rows: 1,
            }
        );
    }
}
