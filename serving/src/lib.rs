//! The recommender's serving tables (DESIGN.md §5) as owned code: the one
//! place that knows their names, columns and rules.
//!
//! The recommender writes three tables, each row overwritten whole:
//!
//! | table | key | what a row holds |
//! | --- | --- | --- |
//! | `recommendations_by_user` | `user_id` | the user's top list, best first: the first `from_model` entries from the model (summed similarity), the rest the trending fallback (score 0) |
//! | `similar_movies` | `movie_id` | the movie's nearest neighbours by similarity |
//! | `trending_by_genre` | `genre` | the genre's most-reviewed movies over one event-time window |
//!
//! * [`schema`]: the DDL (the recommender's `migrate`, and tests or demos
//!   that stand in for it) and the writes' CQL (the recommender's store);
//! * [`rows`]: the row types, built only through the contract's checks, so
//!   a reader never hands on a row whose lists disagree;
//! * [`read`]: one user's row (review-svc's endpoint) and whole-table reads
//!   (rollup's snapshots, reconcile).
//!
//! The Flink peer (`bench/peers/flink`) writes the same tables from Java;
//! its DDL mirrors [`schema::tables`] and reconcile checks what it wrote.
#![forbid(unsafe_code)]

pub mod read;
pub mod rows;
pub mod schema;

pub use read::{ReadError, UserReader};
pub use rows::{MalformedRow, RecommendationsRow, SimilarMoviesRow, TrendingRow};
