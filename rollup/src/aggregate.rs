//! What one batch of enriched reviews adds to the rollups, computed in memory
//! before the batch's transaction: per-minute counts, the rating histogram,
//! and the movies' titles and genres. Pure, so the arithmetic is unit-tested
//! apart from the database.

use std::collections::BTreeMap;

use cinerec_events::EnrichedReview;

/// Microseconds in a minute: the rollups' bucket.
pub const MINUTE_US: i64 = 60_000_000;

/// The minute (µs since the epoch, floored) holding `at_us`.
pub fn minute_of(at_us: i64) -> i64 {
    at_us.div_euclid(MINUTE_US) * MINUTE_US
}

/// What a review event is, by the state it carries.
///
/// The enricher materializes the *latest* version (DESIGN §2.3), so the
/// event of a first version that was edited before enrichment reads as an
/// edit: counts are of states delivered, as the recommender sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Version 1, live.
    Review,
    /// A later version, live.
    Edit,
    /// A tombstone.
    Delete,
}

/// Why an event cannot be rolled up.
#[derive(Debug, Clone, PartialEq)]
pub enum Invalid {
    /// Versions start at 1.
    Version(i64),
    /// A live review's rating is 0.5–5.0 in steps of 0.5.
    Rating(Option<f32>),
    /// `changed_at` is not a time after the epoch.
    ChangedAt(i64),
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::Version(v) => write!(f, "version {v} is not >= 1"),
            Invalid::Rating(r) => write!(f, "rating {r:?} is not 0.5-5.0 in steps of 0.5"),
            Invalid::ChangedAt(t) => write!(f, "changed_at {t} µs is not after the epoch"),
        }
    }
}

/// Validates `event` and says what it is.
pub fn classify(event: &EnrichedReview) -> Result<Kind, Invalid> {
    if event.version < 1 {
        return Err(Invalid::Version(event.version));
    }
    if event.changed_at_us <= 0 {
        return Err(Invalid::ChangedAt(event.changed_at_us));
    }
    if event.deleted {
        return Ok(Kind::Delete);
    }
    match event.rating {
        Some(r) if (0.5..=5.0).contains(&r) && (r * 2.0).fract() == 0.0 => {}
        other => return Err(Invalid::Rating(other)),
    }
    Ok(if event.version == 1 {
        Kind::Review
    } else {
        Kind::Edit
    })
}

/// One minute's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MinuteCounts {
    /// Events applied.
    pub events: i64,
    /// First versions.
    pub reviews: i64,
    /// Later versions.
    pub edits: i64,
    /// Tombstones.
    pub deletes: i64,
    /// Live events with a rating.
    pub rated: i64,
    /// Sum of their ratings.
    pub rating_sum: f64,
}

/// A movie as an event describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct MovieInfo {
    /// Title from movie-svc.
    pub title: String,
    /// Release year.
    pub year: i32,
    /// 1–3 genres.
    pub genres: Vec<String>,
}

/// What a batch adds. Keys are sorted, so every transaction touches rows in
/// the same order (two sink instances never deadlock on the same minutes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregate {
    /// Counts per minute (µs, floored) of event time.
    pub minutes: BTreeMap<i64, MinuteCounts>,
    /// Ratings per (minute, rating in half stars).
    pub histogram: BTreeMap<(i64, u8), i64>,
    /// Movies seen, last description wins.
    pub movies: BTreeMap<i64, MovieInfo>,
}

impl Aggregate {
    /// Adds one valid event of kind `kind`.
    pub fn add(&mut self, event: &EnrichedReview, kind: Kind) {
        let minute = minute_of(event.changed_at_us);
        let counts = self.minutes.entry(minute).or_default();
        counts.events += 1;
        match kind {
            Kind::Review => counts.reviews += 1,
            Kind::Edit => counts.edits += 1,
            Kind::Delete => counts.deletes += 1,
        }
        if kind != Kind::Delete
            && let Some(r) = event.rating
        {
            counts.rated += 1;
            counts.rating_sum += f64::from(r);
            *self.histogram.entry((minute, (r * 2.0) as u8)).or_default() += 1;
        }
        self.add_movie(event);
    }

    /// Records the movie of `event` (idempotent, so also for duplicates).
    pub fn add_movie(&mut self, event: &EnrichedReview) {
        if event.movie_title.is_empty() {
            return;
        }
        self.movies.insert(
            event.movie_id,
            MovieInfo {
                title: event.movie_title.clone(),
                year: event.movie_year,
                genres: event.movie_genres.clone(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn event(version: i64, deleted: bool, rating: Option<f32>, at: i64) -> EnrichedReview {
        EnrichedReview {
            event_id: Uuid::new_v4(),
            review_id: Uuid::new_v4(),
            version,
            deleted,
            rating,
            user_id: 1,
            movie_id: 7,
            changed_at_us: at,
            movie_title: "Seven".into(),
            movie_year: 1995,
            movie_genres: vec!["Thriller".into()],
            movie_popularity: 0.0,
            user_country: String::new(),
            user_zone: String::new(),
            user_preferred_genres: vec![],
            user_tier: cinerec_events::Tier::Free,
            enriched_at_us: 0,
        }
    }

    #[test]
    fn minutes_floor_including_before_the_epoch() {
        assert_eq!(minute_of(MINUTE_US + 1), MINUTE_US);
        assert_eq!(minute_of(MINUTE_US), MINUTE_US);
        assert_eq!(minute_of(-1), -MINUTE_US);
    }

    #[test]
    fn kinds_follow_version_and_tombstone() {
        assert_eq!(classify(&event(1, false, Some(4.0), 1)), Ok(Kind::Review));
        assert_eq!(classify(&event(3, false, Some(0.5), 1)), Ok(Kind::Edit));
        assert_eq!(classify(&event(2, true, None, 1)), Ok(Kind::Delete));
    }

    #[test]
    fn bad_events_are_named() {
        assert_eq!(
            classify(&event(0, false, Some(4.0), 1)),
            Err(Invalid::Version(0))
        );
        assert_eq!(
            classify(&event(1, false, Some(4.2), 1)),
            Err(Invalid::Rating(Some(4.2)))
        );
        assert_eq!(
            classify(&event(1, false, Some(5.5), 1)),
            Err(Invalid::Rating(Some(5.5)))
        );
        assert_eq!(
            classify(&event(1, false, None, 1)),
            Err(Invalid::Rating(None))
        );
        assert_eq!(
            classify(&event(1, false, Some(3.0), 0)),
            Err(Invalid::ChangedAt(0))
        );
    }

    #[test]
    fn a_batch_sums_per_minute_and_star() {
        let mut agg = Aggregate::default();
        let m0 = 10 * MINUTE_US;
        for e in [
            event(1, false, Some(4.0), m0 + 5),
            event(2, false, Some(3.0), m0 + 6),
            event(3, true, None, m0 + 7),
            event(1, false, Some(4.0), m0 + MINUTE_US),
        ] {
            let kind = classify(&e).unwrap();
            agg.add(&e, kind);
        }
        let first = agg.minutes[&m0];
        assert_eq!(
            (
                first.events,
                first.reviews,
                first.edits,
                first.deletes,
                first.rated
            ),
            (3, 1, 1, 1, 2)
        );
        assert_eq!(first.rating_sum, 7.0);
        assert_eq!(agg.minutes[&(m0 + MINUTE_US)].reviews, 1);
        assert_eq!(agg.histogram[&(m0, 8)], 1);
        assert_eq!(agg.histogram[&(m0, 6)], 1);
        assert_eq!(agg.histogram[&(m0 + MINUTE_US, 8)], 1);
        assert_eq!(agg.movies[&7].title, "Seven");
    }
}
