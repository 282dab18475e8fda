//! What movie-svc answers, independent of the wire: the `movies` table as a
//! [`MetadataRecord`] of the shared metadata service (read-through cache, multi-get,
//! validated upserts), and the limits an upserted movie must meet.

use std::time::Duration;

use cinerec_service_kit::metadata::{MetadataRecord, MetadataService};

use crate::store::{Movie, MovieStore};

/// Entries the read-through cache holds: the whole default catalogue (50k
/// movies, ~200 B each) fits in ~10 MiB.
pub const DEFAULT_CACHE_CAPACITY: u64 = 100_000;
/// How stale another instance's cached movie may be after an upsert.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);

/// movie-svc's behaviour.
pub type Movies = MetadataService<MovieStore>;

/// Movies from `store` behind a cache of `capacity` entries kept `ttl`.
pub fn movies(store: MovieStore, capacity: u64, ttl: Duration) -> Movies {
    MetadataService::new(store, "movies", capacity, ttl)
}

impl MetadataRecord for Movie {
    const KIND: &'static str = "movie";

    /// Limits on an upserted movie; what the catalogue generates always passes.
    fn invalid(&self) -> Option<String> {
        let m = self;
        if m.title.trim().is_empty() || m.title.len() > 512 {
            return Some(format!("title must be 1-512 bytes, got {}", m.title.len()));
        }
        if !(1870..=2100).contains(&m.year) {
            return Some(format!("year {} outside 1870-2100", m.year));
        }
        if m.genres.is_empty()
            || m.genres.len() > 8
            || m.genres.iter().any(|g| g.is_empty() || g.len() > 64)
        {
            return Some("genres must be 1-8 names of 1-64 bytes".to_owned());
        }
        if !(1..=1000).contains(&m.runtime_minutes) {
            return Some(format!("runtime {} min outside 1-1000", m.runtime_minutes));
        }
        if !m.popularity.is_finite() || m.popularity < 0.0 {
            return Some(format!(
                "popularity {} must be finite and >= 0",
                m.popularity
            ));
        }
        None
    }
}
