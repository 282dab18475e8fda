//! The review as the API sees it, and the validation rules of DESIGN.md §2
//! step 1. Validation is pure so every rule is unit-tested here; the HTTP
//! mapping of a [`Invalid`] lives in `api`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest review text, in bytes of UTF-8.
pub const MAX_TEXT_BYTES: usize = 4 * 1024;
/// Largest request body accepted on writes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Parses a user id written in canonical decimal: digits only, no sign, no
/// leading zero, positive, within `i64`. Token subjects and path segments
/// are identities, so exactly one spelling maps to each id: `"+11"`,
/// `"011"` and `" 11"` must not act as, or read as, user 11 (Rust's
/// `str::parse` accepts a leading `+`).
pub fn canonical_id(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let canonical = matches!(b.first(), Some(b'1'..=b'9')) && b.iter().all(u8::is_ascii_digit);
    if !canonical {
        return None;
    }
    s.parse().ok()
}

/// A body of `POST /v1/reviews`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateReview {
    /// The author (must be the token's subject unless admin).
    pub user_id: i64,
    /// The reviewed movie.
    pub movie_id: i64,
    /// 0.5–5.0 in steps of 0.5.
    pub rating: f64,
    /// Up to [`MAX_TEXT_BYTES`]; may be empty.
    #[serde(default)]
    pub text: String,
}

/// A body of `PUT /v1/reviews/{id}`: the new content (user and movie are fixed).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EditReview {
    /// 0.5–5.0 in steps of 0.5.
    pub rating: f64,
    /// Up to [`MAX_TEXT_BYTES`]; may be empty.
    #[serde(default)]
    pub text: String,
}

/// A rating in half stars: 1 (0.5) ..= 10 (5.0). Stored as a float in CQL;
/// every value is exact in binary floating point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rating(u8);

impl Rating {
    /// Validates a client-supplied rating.
    pub fn parse(value: f64) -> Result<Rating, Invalid> {
        if !value.is_finite() || !(0.5..=5.0).contains(&value) {
            return Err(Invalid::RatingOutOfRange);
        }
        let halves = value * 2.0;
        if halves.fract() != 0.0 {
            return Err(Invalid::RatingNotHalfStep);
        }
        Ok(Rating(halves as u8))
    }

    /// The rating in stars.
    pub fn stars(self) -> f32 {
        f32::from(self.0) / 2.0
    }
}

/// A validation failure: one kind per rule, so each is counted apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Rating outside 0.5–5.0.
    #[error("rating must be between 0.5 and 5.0")]
    RatingOutOfRange,
    /// Rating not a multiple of 0.5.
    #[error("rating must be a multiple of 0.5")]
    RatingNotHalfStep,
    /// Text longer than [`MAX_TEXT_BYTES`].
    #[error("text is {0} bytes; at most 4096 are allowed")]
    TextTooLong(usize),
    /// A user or movie id that cannot exist (ids start at 1).
    #[error("{0} must be a positive id")]
    BadId(&'static str),
}

impl Invalid {
    /// Stable machine-readable code (JSON `error`, metric label).
    pub fn code(&self) -> &'static str {
        match self {
            Invalid::RatingOutOfRange => "rating_out_of_range",
            Invalid::RatingNotHalfStep => "rating_not_half_step",
            Invalid::TextTooLong(_) => "text_too_long",
            Invalid::BadId(_) => "bad_id",
        }
    }
}

fn check_text(text: &str) -> Result<(), Invalid> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(Invalid::TextTooLong(text.len()));
    }
    Ok(())
}

/// Validated review content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// The rating.
    pub rating: Rating,
    /// The text.
    pub text: String,
}

impl CreateReview {
    /// Checks every rule that needs no lookup.
    pub fn validate(&self) -> Result<Content, Invalid> {
        if self.user_id <= 0 {
            return Err(Invalid::BadId("user_id"));
        }
        if self.movie_id <= 0 {
            return Err(Invalid::BadId("movie_id"));
        }
        let rating = Rating::parse(self.rating)?;
        check_text(&self.text)?;
        Ok(Content {
            rating,
            text: self.text.clone(),
        })
    }
}

impl EditReview {
    /// Checks every rule.
    pub fn validate(&self) -> Result<Content, Invalid> {
        let rating = Rating::parse(self.rating)?;
        check_text(&self.text)?;
        Ok(Content {
            rating,
            text: self.text.clone(),
        })
    }
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// The first version.
    Create,
    /// A new version with new content.
    Update,
    /// A tombstone version.
    Delete,
}

impl Op {
    /// The symbol in the change log and the Avro `ChangeOp` enum.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "CREATE",
            Op::Update => "UPDATE",
            Op::Delete => "DELETE",
        }
    }

    /// Parses [`Op::as_str`].
    pub fn parse(s: &str) -> Option<Op> {
        match s {
            "CREATE" => Some(Op::Create),
            "UPDATE" => Some(Op::Update),
            "DELETE" => Some(Op::Delete),
            _ => None,
        }
    }
}

/// One version of a review, as stored and as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// Stable id across versions.
    pub review_id: Uuid,
    /// Strictly increasing per review (not necessarily contiguous).
    pub version: i64,
    /// Author.
    pub user_id: i64,
    /// Reviewed movie.
    pub movie_id: i64,
    /// Stars; `None` on a tombstone.
    pub rating: Option<f32>,
    /// Text; `None` on a tombstone.
    pub text: Option<String>,
    /// Whether this version is a tombstone.
    pub deleted: bool,
    /// When version 1 was accepted (µs since the epoch).
    pub created_at_us: i64,
    /// When this version was accepted (µs since the epoch).
    pub changed_at_us: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_decimal_ids_parse() {
        for (raw, id) in [("1", 1), ("11", 11), ("9223372036854775807", i64::MAX)] {
            assert_eq!(canonical_id(raw), Some(id), "{raw}");
        }
        for bad in [
            "",
            "+11",
            "-11",
            "011",
            "0",
            " 11",
            "11 ",
            "1_1",
            "1e3",
            "11.0",
            "٣",
            "9223372036854775808",
        ] {
            assert_eq!(canonical_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ratings_are_half_steps_in_range() {
        for ok in [0.5, 1.0, 2.5, 4.5, 5.0] {
            assert_eq!(Rating::parse(ok).map(Rating::stars), Ok(ok as f32));
        }
        for out in [0.0, -1.0, 5.5, f64::NAN, f64::INFINITY] {
            assert_eq!(Rating::parse(out), Err(Invalid::RatingOutOfRange));
        }
        for odd in [0.7, 3.25, 4.9] {
            assert_eq!(Rating::parse(odd), Err(Invalid::RatingNotHalfStep));
        }
    }

    #[test]
    fn text_limit_counts_bytes_not_chars() {
        let edit = |text: String| EditReview { rating: 3.0, text }.validate();
        assert!(edit("a".repeat(MAX_TEXT_BYTES)).is_ok());
        assert_eq!(
            edit("é".repeat(MAX_TEXT_BYTES / 2 + 1)),
            Err(Invalid::TextTooLong(MAX_TEXT_BYTES + 2))
        );
    }

    #[test]
    fn ids_must_be_positive() {
        let create = |user_id, movie_id| {
            CreateReview {
                user_id,
                movie_id,
                rating: 3.0,
                text: String::new(),
            }
            .validate()
        };
        assert_eq!(create(0, 1), Err(Invalid::BadId("user_id")));
        assert_eq!(create(1, -3), Err(Invalid::BadId("movie_id")));
        assert!(create(1, 1).is_ok());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<EditReview>(r#"{"rating":3.0,"text":"","stars":5}"#);
        assert!(err.is_err_and(|e| e.to_string().contains("unknown field")));
    }
}
