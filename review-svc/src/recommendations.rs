//! `GET /v1/users/{id}/recommendations`: a user's recommendations as the
//! recommender last wrote them (its `recommendations_by_user` table, in its
//! own keyspace, read over review-svc's session).
//!
//! The table belongs to the recommender, which creates it on its first
//! start; until then the endpoint answers 503 `recommendations_unavailable`
//! with a reason naming the table, never a driver error. The statement is
//! prepared on first use and again after the table went missing, so
//! review-svc may start before the recommender ever ran.
//!
//! Unlike a user's reviews, which are public, recommendations need a
//! bearer token of the user themself or one with the `admin` scope (401
//! without a valid token, 403 for another user's): they reveal the user's
//! taste.

use std::sync::{Arc, Mutex};

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError, PrepareError, RequestAttemptError};
use scylla::statement::Consistency;
use scylla::statement::prepared::PreparedStatement;
use serde::Serialize;

use crate::api::{ApiError, AppState, authenticate};

/// The recommender's default keyspace (its `--keyspace`).
pub const DEFAULT_RECOMMENDATIONS_KEYSPACE: &str = "recommender";
/// The table read (the recommender's contract).
pub const TABLE: &str = "recommendations_by_user";

/// Where the recommendations are.
#[derive(Debug, Clone, clap::Args)]
pub struct RecommendationsArgs {
    /// Keyspace of the recommender's tables (`recommendations_by_user` is read).
    #[arg(
        long,
        env = "REVIEW_SVC_RECOMMENDATIONS_KEYSPACE",
        default_value = DEFAULT_RECOMMENDATIONS_KEYSPACE
    )]
    pub recommendations_keyspace: String,
}

/// Where a recommended movie comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The co-occurrence model (score: summed similarity).
    Model,
    /// The trending fallback in the user's preferred genres (score 0).
    Trending,
}

/// One recommended movie.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// The movie.
    pub movie_id: i64,
    /// Summed similarity to the movies the user likes (0 for trending).
    pub score: f64,
    /// Model or trending.
    pub source: Source,
}

/// The response body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserRecommendations {
    /// The user.
    pub user_id: i64,
    /// Best first.
    pub items: Vec<Item>,
    /// When the recommender computed them (RFC 3339, UTC, µs).
    pub computed_at: String,
}

/// Why recommendations could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecommendationsError {
    /// The keyspace or table does not exist (yet), or lacks the contract's columns.
    #[error(
        "recommendations are not available yet: table {0}.{TABLE} does not exist (the recommender \
         has not run) or lacks the expected columns"
    )]
    TableMissing(String),
    /// The database failed or timed out.
    #[error("database: {0}")]
    Database(String),
    /// The stored row contradicts the table contract.
    #[error("malformed recommendations row of user {user_id}: {problem}")]
    Corrupt {
        /// The user.
        user_id: i64,
        /// What is wrong.
        problem: String,
    },
}

impl From<RecommendationsError> for ApiError {
    fn from(e: RecommendationsError) -> ApiError {
        let code = match &e {
            RecommendationsError::TableMissing(_) => "recommendations_unavailable",
            RecommendationsError::Database(_) => "database_unavailable",
            RecommendationsError::Corrupt { .. } => "stored_data_malformed",
        };
        let reason = match &e {
            RecommendationsError::TableMissing(_) => e.to_string(),
            RecommendationsError::Database(_) => {
                "the recommendations store is unavailable; retry later".to_owned()
            }
            RecommendationsError::Corrupt { user_id, .. } => {
                format!("the stored recommendations of user {user_id} are malformed")
            }
        };
        // The driver's or the row's own text goes to the log only.
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, reason).with_detail(e.to_string())
    }
}

/// Reads `recommendations_by_user` of one keyspace.
#[derive(Debug)]
pub struct Recommendations {
    session: Arc<Session>,
    keyspace: String,
    consistency: Consistency,
    /// Prepared on first success; cleared when the table went missing.
    select: Mutex<Option<PreparedStatement>>,
}

type RowTuple = (Option<Vec<i64>>, Option<Vec<f64>>, Option<i32>, Option<i64>);

fn is_missing_table(e: &RequestAttemptError) -> bool {
    // For a fixed SELECT, Invalid means the keyspace/table/columns are not there.
    matches!(e, RequestAttemptError::DbError(DbError::Invalid, _))
}

impl Recommendations {
    /// A reader of `args.recommendations_keyspace` over `session`.
    pub fn new(
        session: Arc<Session>,
        args: &RecommendationsArgs,
        consistency: Consistency,
    ) -> Result<Recommendations, String> {
        let ks = &args.recommendations_keyspace;
        let ok = !ks.is_empty()
            && ks.len() <= 48
            && ks
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && ks.as_bytes()[0].is_ascii_lowercase();
        if !ok {
            return Err(format!(
                "recommendations keyspace {ks:?} must be 1-48 of [a-z0-9_], starting with a letter"
            ));
        }
        Ok(Recommendations {
            session,
            keyspace: ks.clone(),
            consistency,
            select: Mutex::new(None),
        })
    }

    fn cached(&self) -> Option<PreparedStatement> {
        self.select.lock().ok().and_then(|s| s.clone())
    }

    fn store(&self, statement: Option<PreparedStatement>) {
        if let Ok(mut s) = self.select.lock() {
            *s = statement;
        }
    }

    async fn statement(&self) -> Result<PreparedStatement, RecommendationsError> {
        if let Some(s) = self.cached() {
            return Ok(s);
        }
        let cql = format!(
            "SELECT movie_ids, scores, from_model, computed_at FROM {}.{TABLE} WHERE user_id = ?",
            self.keyspace
        );
        let mut prepared = self.session.prepare(cql).await.map_err(|e| match &e {
            PrepareError::AllAttemptsFailed { first_attempt }
                if is_missing_table(first_attempt) =>
            {
                RecommendationsError::TableMissing(self.keyspace.clone())
            }
            _ => RecommendationsError::Database(e.to_string()),
        })?;
        prepared.set_consistency(self.consistency);
        prepared.set_is_idempotent(true);
        self.store(Some(prepared.clone()));
        Ok(prepared)
    }

    /// The recommendations of `user_id`; `None` when the recommender wrote
    /// none for them yet.
    pub async fn get(
        &self,
        user_id: i64,
    ) -> Result<Option<UserRecommendations>, RecommendationsError> {
        let select = self.statement().await?;
        let result = self
            .session
            .execute_unpaged(&select, (user_id,))
            .await
            .map_err(|e| match &e {
                ExecutionError::LastAttemptError(attempt)
                | ExecutionError::PrepareError(PrepareError::AllAttemptsFailed {
                    first_attempt: attempt,
                }) if is_missing_table(attempt) => {
                    // Dropped since it was prepared: prepare again next time.
                    self.store(None);
                    RecommendationsError::TableMissing(self.keyspace.clone())
                }
                _ => RecommendationsError::Database(e.to_string()),
            })?;
        let corrupt = |problem: String| RecommendationsError::Corrupt { user_id, problem };
        let row = result
            .into_rows_result()
            .map_err(|e| corrupt(e.to_string()))?
            .maybe_first_row::<RowTuple>()
            .map_err(|e| corrupt(e.to_string()))?;
        row.map(|row| from_row(user_id, row).map_err(corrupt))
            .transpose()
    }
}

fn from_row(
    user_id: i64,
    (movies, scores, from_model, computed_at): RowTuple,
) -> Result<UserRecommendations, String> {
    // An empty CQL list reads as null.
    let (movies, scores) = (movies.unwrap_or_default(), scores.unwrap_or_default());
    if movies.len() != scores.len() {
        return Err(format!(
            "{} movie_ids but {} scores",
            movies.len(),
            scores.len()
        ));
    }
    let from_model = from_model.ok_or("from_model is null")?;
    let from_model = usize::try_from(from_model)
        .ok()
        .filter(|k| *k <= movies.len())
        .ok_or_else(|| format!("from_model {from_model} outside 0..={}", movies.len()))?;
    let computed_at = computed_at.ok_or("computed_at is null")?;
    let computed_at = rfc3339_micros(computed_at)
        .ok_or_else(|| format!("computed_at {computed_at} µs is outside years 0-9999"))?;
    let items = movies
        .into_iter()
        .zip(scores)
        .enumerate()
        .map(|(k, (movie_id, score))| Item {
            movie_id,
            score,
            source: if k < from_model {
                Source::Model
            } else {
                Source::Trending
            },
        })
        .collect();
    Ok(UserRecommendations {
        user_id,
        items,
        computed_at,
    })
}

/// µs since the Unix epoch as RFC 3339 in UTC with microseconds
/// (`2026-11-23T14:03:16.123456Z`); `None` outside years 0–9999.
pub fn rfc3339_micros(us: i64) -> Option<String> {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Days since 1970-01-01 to a proleptic Gregorian date, in 400-year eras
    // starting 0000-03-01 (so the leap day ends each era's year).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return None;
    }
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        sod / 3_600,
        sod % 3_600 / 60,
        sod % 60
    ))
}

/// The handler. The reader comes as an extension the binary adds (built from
/// `--recommendations-keyspace`); a router without it answers 503.
///
/// Unlike reviews (public, like on any review site), recommendations are
/// derived from what the user likes and so reveal their taste: only the user
/// (the token's subject) or an admin may read them — 401 without a valid
/// token, 403 for someone else's.
pub async fn get(
    State(state): State<AppState>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    reader: Option<Extension<Arc<Recommendations>>>,
) -> Result<Response, ApiError> {
    let principal = authenticate(&state, &headers)?;
    let id = crate::api::path_segment(id)?;
    let user_id = crate::model::canonical_id(&id).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_id",
            "user id must be a positive integer in canonical decimal (digits only, no sign or leading zero)",
        )
    })?;
    if !principal.may_act_for(user_id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the user or an admin may read a user's recommendations",
        ));
    }
    let Some(Extension(reader)) = reader else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "recommendations_unavailable",
            "this server has no recommendations keyspace configured",
        ));
    };
    match reader.get(user_id).await? {
        Some(found) => Ok(axum::Json(found).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_recommendations",
            format!("user {user_id} has no recommendations yet"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_rfc3339() {
        assert_eq!(
            rfc3339_micros(0).as_deref(),
            Some("1970-01-01T00:00:00.000000Z")
        );
        assert_eq!(
            rfc3339_micros(1_700_000_000_123_456).as_deref(),
            Some("2023-11-14T22:13:20.123456Z")
        );
        assert_eq!(
            rfc3339_micros(951_782_400_000_000).as_deref(),
            Some("2000-02-29T00:00:00.000000Z"),
            "a leap day"
        );
        assert_eq!(
            rfc3339_micros(-1).as_deref(),
            Some("1969-12-31T23:59:59.999999Z")
        );
        assert_eq!(
            rfc3339_micros(253_402_300_799_999_999).as_deref(),
            Some("9999-12-31T23:59:59.999999Z")
        );
        assert_eq!(rfc3339_micros(253_402_300_800_000_000), None);
        assert_eq!(rfc3339_micros(i64::MIN), None);
    }

    #[test]
    fn rows_split_into_model_and_trending() {
        let row = (
            Some(vec![5, 9, 3]),
            Some(vec![1.5, 0.7, 0.0]),
            Some(2),
            Some(0),
        );
        let r = from_row(42, row).map_err(|e| e.to_string());
        let sources: Vec<Source> = r
            .as_ref()
            .map(|r| r.items.iter().map(|i| i.source).collect())
            .unwrap_or_default();
        assert_eq!(sources, [Source::Model, Source::Model, Source::Trending]);
        assert!(from_row(1, (None, None, Some(0), Some(0))).is_ok_and(|r| r.items.is_empty()));
    }

    #[test]
    fn malformed_rows_are_refused() {
        assert!(from_row(1, (Some(vec![1, 2]), Some(vec![1.0]), Some(1), Some(0))).is_err());
        assert!(from_row(1, (Some(vec![1]), Some(vec![1.0]), Some(2), Some(0))).is_err());
        assert!(from_row(1, (Some(vec![1]), Some(vec![1.0]), Some(-1), Some(0))).is_err());
        assert!(from_row(1, (Some(vec![1]), Some(vec![1.0]), None, Some(0))).is_err());
        assert!(from_row(1, (Some(vec![1]), Some(vec![1.0]), Some(1), None)).is_err());
    }
}
