//! A user's recommendations as the recommender last wrote them: its
//! `recommendations_by_user` table, in its own keyspace, read over
//! review-svc's session through the serving contract's reader
//! ([`cinerec_serving::UserReader`]), and turned into the
//! `GET /v1/users/{id}/recommendations` body (the handler is
//! [`crate::api`]'s).
//!
//! The table belongs to the recommender, which creates it on its first
//! start; until then the endpoint answers 503 `recommendations_unavailable`
//! with a reason naming the table, never a driver error. The statement is
//! prepared on first use and again after the table went missing, so
//! review-svc may start before the recommender ever ran.

use std::sync::Arc;

use cinerec_serving::{MalformedRow, RecommendationsRow, UserReader};
use scylla::client::session::Session;
use scylla::statement::Consistency;
use serde::Serialize;

/// The recommender's default keyspace (its `--keyspace`).
pub const DEFAULT_RECOMMENDATIONS_KEYSPACE: &str = "recommender";
/// The table read (the recommender's contract).
pub const TABLE: &str = cinerec_serving::schema::RECOMMENDATIONS;

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

/// Why recommendations could not be read (the serving contract's reader error).
pub use cinerec_serving::ReadError as RecommendationsError;

/// Reads `recommendations_by_user` of one keyspace.
#[derive(Debug)]
pub struct Recommendations {
    session: Arc<Session>,
    reader: UserReader,
}

impl Recommendations {
    /// A reader of `args.recommendations_keyspace` over `session`.
    pub fn new(
        session: Arc<Session>,
        args: &RecommendationsArgs,
        consistency: Consistency,
    ) -> Result<Recommendations, String> {
        let reader = UserReader::new(&args.recommendations_keyspace, consistency)
            .map_err(|e| format!("recommendations {e}"))?;
        Ok(Recommendations { session, reader })
    }

    /// The recommendations of `user_id`; `None` when the recommender wrote
    /// none for them yet.
    pub async fn get(
        &self,
        user_id: i64,
    ) -> Result<Option<UserRecommendations>, RecommendationsError> {
        let row = self.reader.get(&self.session, user_id).await?;
        Ok(row.map(response).transpose()?)
    }
}

/// The response body of a checked row.
fn response(row: RecommendationsRow) -> Result<UserRecommendations, MalformedRow> {
    let computed_at = rfc3339_micros(row.computed_at_us).ok_or_else(|| MalformedRow {
        table: TABLE,
        key: row.user_id.to_string(),
        problem: format!(
            "computed_at {} µs is outside years 0-9999",
            row.computed_at_us
        ),
    })?;
    let items = row
        .entries()
        .map(|(movie_id, score, from_model)| Item {
            movie_id,
            score,
            source: if from_model {
                Source::Model
            } else {
                Source::Trending
            },
        })
        .collect();
    Ok(UserRecommendations {
        user_id: row.user_id,
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
        let row = RecommendationsRow::from_columns((
            42,
            Some(vec![5, 9, 3]),
            Some(vec![1.5, 0.7, 0.0]),
            Some(2),
            Some(0),
        ))
        .map_err(|e| e.to_string());
        let body = row.and_then(|r| response(r).map_err(|e| e.to_string()));
        let sources: Vec<Source> = body
            .as_ref()
            .map(|r| r.items.iter().map(|i| i.source).collect())
            .unwrap_or_default();
        assert_eq!(sources, [Source::Model, Source::Model, Source::Trending]);
        assert_eq!(
            body.map(|r| r.computed_at),
            Ok("1970-01-01T00:00:00.000000Z".to_owned())
        );
    }

    #[test]
    fn a_time_outside_rfc_3339_is_a_malformed_row() {
        let row = RecommendationsRow::from_columns((1, None, None, Some(0), Some(i64::MAX)))
            .map_err(|e| e.to_string());
        let body = row.and_then(|r| response(r).map_err(|e| e.to_string()));
        assert!(body.is_err_and(|e| e.contains("outside years 0-9999")));
    }
}
