//! The serving rows, each built only through the table contract's checks
//! ([`RecommendationsRow::from_columns`] and its siblings): lists of one
//! row agree in length, no movie is listed twice, `from_model` lies within
//! the list, and the columns the recommender always writes are present.
//! A row that breaks them is a [`MalformedRow`] naming the row and the rule.
//!
//! A CQL empty list reads back as null, so a null list is an empty one.

use std::collections::HashSet;

/// A stored row that contradicts the table contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {table} row {key}: {problem}")]
pub struct MalformedRow {
    /// The table.
    pub table: &'static str,
    /// The row's key.
    pub key: String,
    /// The rule it breaks.
    pub problem: String,
}

/// The raw columns of [`RecommendationsRow::COLUMNS`].
pub type RecommendationsColumns = (
    i64,
    Option<Vec<i64>>,
    Option<Vec<f64>>,
    Option<i32>,
    Option<i64>,
);

/// One user's `recommendations_by_user` row.
#[derive(Debug, Clone, PartialEq)]
pub struct RecommendationsRow {
    /// The user.
    pub user_id: i64,
    /// Best first, each movie once.
    pub movie_ids: Vec<i64>,
    /// One per movie: summed similarity for the model part, 0 for trending.
    pub scores: Vec<f64>,
    /// How many leading entries come from the model (≤ the list's length);
    /// the rest are the trending fallback.
    pub from_model: usize,
    /// When the recommender computed the row (µs since the epoch, its wall clock).
    pub computed_at_us: i64,
}

impl RecommendationsRow {
    /// The columns [`RecommendationsRow::from_columns`] takes, in order.
    pub const COLUMNS: &'static str = "user_id, movie_ids, scores, from_model, computed_at";

    /// The row, or the contract rule it breaks.
    pub fn from_columns(
        (user_id, movies, scores, from_model, computed_at): RecommendationsColumns,
    ) -> Result<RecommendationsRow, MalformedRow> {
        let bad = |problem: String| MalformedRow {
            table: crate::schema::RECOMMENDATIONS,
            key: user_id.to_string(),
            problem,
        };
        let (movie_ids, scores) = (movies.unwrap_or_default(), scores.unwrap_or_default());
        same_length(movie_ids.len(), "scores", scores.len()).map_err(bad)?;
        distinct(&movie_ids).map_err(bad)?;
        let from_model = from_model.ok_or_else(|| bad("from_model is null".into()))?;
        let from_model = usize::try_from(from_model)
            .ok()
            .filter(|k| *k <= movie_ids.len())
            .ok_or_else(|| {
                bad(format!(
                    "from_model {from_model} outside 0..={}",
                    movie_ids.len()
                ))
            })?;
        let computed_at_us = computed_at.ok_or_else(|| bad("computed_at is null".into()))?;
        Ok(RecommendationsRow {
            user_id,
            movie_ids,
            scores,
            from_model,
            computed_at_us,
        })
    }

    /// The model part, `(movie, summed similarity)`, best first.
    pub fn model_part(&self) -> Vec<(i64, f64)> {
        self.movie_ids[..self.from_model]
            .iter()
            .copied()
            .zip(self.scores[..self.from_model].iter().copied())
            .collect()
    }

    /// Each entry with whether it comes from the model.
    pub fn entries(&self) -> impl Iterator<Item = (i64, f64, bool)> + '_ {
        self.movie_ids
            .iter()
            .zip(&self.scores)
            .enumerate()
            .map(|(k, (m, s))| (*m, *s, k < self.from_model))
    }
}

/// The raw columns of [`SimilarMoviesRow::COLUMNS`].
pub type SimilarMoviesColumns = (i64, Option<Vec<i64>>, Option<Vec<f64>>, Option<i64>);

/// One movie's `similar_movies` row.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarMoviesRow {
    /// The movie.
    pub movie_id: i64,
    /// `(neighbour, similarity)`, most similar first, each neighbour once.
    pub neighbours: Vec<(i64, f64)>,
    /// When the recommender computed the row (µs since the epoch).
    pub computed_at_us: i64,
}

impl SimilarMoviesRow {
    /// The columns [`SimilarMoviesRow::from_columns`] takes, in order.
    pub const COLUMNS: &'static str = "movie_id, movie_ids, scores, computed_at";

    /// The row, or the contract rule it breaks.
    pub fn from_columns(
        (movie_id, movies, scores, computed_at): SimilarMoviesColumns,
    ) -> Result<SimilarMoviesRow, MalformedRow> {
        let bad = |problem: String| MalformedRow {
            table: crate::schema::SIMILAR_MOVIES,
            key: movie_id.to_string(),
            problem,
        };
        let (movies, scores) = (movies.unwrap_or_default(), scores.unwrap_or_default());
        same_length(movies.len(), "scores", scores.len()).map_err(bad)?;
        distinct(&movies).map_err(bad)?;
        let computed_at_us = computed_at.ok_or_else(|| bad("computed_at is null".into()))?;
        Ok(SimilarMoviesRow {
            movie_id,
            neighbours: movies.into_iter().zip(scores).collect(),
            computed_at_us,
        })
    }
}

/// The raw columns of [`TrendingRow::COLUMNS`].
pub type TrendingColumns = (
    String,
    Option<Vec<i64>>,
    Option<Vec<i32>>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// One genre's `trending_by_genre` row.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendingRow {
    /// The genre.
    pub genre: String,
    /// `(movie, reviews in the window)`, most reviewed first, each movie once.
    pub movies: Vec<(i64, i32)>,
    /// Window start, µs of event time.
    pub window_start_us: i64,
    /// Window end (exclusive), µs of event time.
    pub window_end_us: i64,
    /// When the recommender computed the row (µs since the epoch).
    pub computed_at_us: i64,
}

impl TrendingRow {
    /// The columns [`TrendingRow::from_columns`] takes, in order.
    pub const COLUMNS: &'static str =
        "genre, movie_ids, counts, window_start, window_end, computed_at";

    /// The row, or the contract rule it breaks.
    pub fn from_columns(
        (genre, movies, counts, start, end, computed_at): TrendingColumns,
    ) -> Result<TrendingRow, MalformedRow> {
        let bad = |problem: String| MalformedRow {
            table: crate::schema::TRENDING,
            key: genre.clone(),
            problem,
        };
        let (movies, counts) = (movies.unwrap_or_default(), counts.unwrap_or_default());
        same_length(movies.len(), "counts", counts.len()).map_err(bad)?;
        distinct(&movies).map_err(bad)?;
        let (Some(window_start_us), Some(window_end_us)) = (start, end) else {
            return Err(bad("window_start or window_end is null".into()));
        };
        if window_end_us < window_start_us {
            return Err(bad(format!(
                "window ends ({window_end_us}) before it starts ({window_start_us})"
            )));
        }
        let computed_at_us = computed_at.ok_or_else(|| bad("computed_at is null".into()))?;
        Ok(TrendingRow {
            movies: movies.into_iter().zip(counts).collect(),
            genre,
            window_start_us,
            window_end_us,
            computed_at_us,
        })
    }
}

fn same_length(movies: usize, what: &str, other: usize) -> Result<(), String> {
    if movies == other {
        Ok(())
    } else {
        Err(format!("{movies} movie_ids but {other} {what}"))
    }
}

fn distinct(movies: &[i64]) -> Result<(), String> {
    let mut seen = HashSet::with_capacity(movies.len());
    match movies.iter().find(|m| !seen.insert(**m)) {
        Some(dup) => Err(format!("movie {dup} listed twice")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(
        movies: Option<Vec<i64>>,
        scores: Option<Vec<f64>>,
        from_model: Option<i32>,
        computed_at: Option<i64>,
    ) -> Result<RecommendationsRow, String> {
        RecommendationsRow::from_columns((42, movies, scores, from_model, computed_at))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_recommendations_row_splits_into_model_and_trending() {
        let row = recs(
            Some(vec![5, 9, 3]),
            Some(vec![1.5, 0.7, 0.0]),
            Some(2),
            Some(7),
        );
        assert_eq!(
            row.as_ref().map(RecommendationsRow::model_part),
            Ok(vec![(5, 1.5), (9, 0.7)])
        );
        let sources: Vec<bool> = row
            .map(|r| r.entries().map(|(_, _, model)| model).collect())
            .unwrap_or_default();
        assert_eq!(sources, [true, true, false]);
        // Empty CQL lists read as null.
        assert!(recs(None, None, Some(0), Some(0)).is_ok_and(|r| r.movie_ids.is_empty()));
    }

    #[test]
    fn recommendations_rows_breaking_the_contract_are_named() {
        let cases = [
            (
                recs(Some(vec![1, 2]), Some(vec![1.0]), Some(1), Some(0)),
                "2 movie_ids but 1 scores",
            ),
            (
                recs(Some(vec![1]), Some(vec![1.0]), Some(2), Some(0)),
                "from_model 2 outside 0..=1",
            ),
            (
                recs(Some(vec![1]), Some(vec![1.0]), Some(-1), Some(0)),
                "from_model -1",
            ),
            (
                recs(Some(vec![1]), Some(vec![1.0]), None, Some(0)),
                "from_model is null",
            ),
            (
                recs(Some(vec![1]), Some(vec![1.0]), Some(1), None),
                "computed_at is null",
            ),
            (
                recs(Some(vec![4, 4]), Some(vec![1.0, 0.5]), Some(2), Some(0)),
                "movie 4 listed twice",
            ),
        ];
        for (got, why) in cases {
            let e = got.expect_err(why);
            assert!(
                e.contains("recommendations_by_user row 42") && e.contains(why),
                "{e}"
            );
        }
    }

    #[test]
    fn trending_and_similar_rows_are_checked_too() {
        let t = |counts: Vec<i32>, start: Option<i64>, end: Option<i64>| {
            TrendingRow::from_columns((
                "Drama".into(),
                Some(vec![1, 2]),
                Some(counts),
                start,
                end,
                Some(1),
            ))
            .map_err(|e| e.to_string())
        };
        assert!(t(vec![9, 4], Some(0), Some(10)).is_ok_and(|r| r.movies == [(1, 9), (2, 4)]));
        assert!(
            t(vec![9], Some(0), Some(10)).is_err_and(|e| e.contains("2 movie_ids but 1 counts"))
        );
        assert!(t(vec![9, 4], None, Some(10)).is_err_and(|e| e.contains("is null")));
        assert!(t(vec![9, 4], Some(10), Some(0)).is_err_and(|e| e.contains("before it starts")));
        let s =
            SimilarMoviesRow::from_columns((7, Some(vec![1, 1]), Some(vec![0.5, 0.4]), Some(1)));
        assert!(s.is_err_and(|e| {
            e.to_string()
                .contains("similar_movies row 7: movie 1 listed twice")
        }));
    }
}
