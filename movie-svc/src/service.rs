//! What movie-svc answers, independent of the wire: validation, the
//! read-through cache in front of the store, and the error kinds the Avro RPC
//! layer maps to the protocol's declared errors.

use std::sync::Arc;
use std::time::Duration;

use cinerec_service_kit::{Batch, ReadThrough};

use crate::store::{MAX_BATCH, Movie, MovieStore, StoreError};

/// Entries the read-through cache holds: the whole default catalogue (50k
/// movies, ~200 B each) fits in ~10 MiB.
pub const DEFAULT_CACHE_CAPACITY: u64 = 100_000;
/// How stale another instance's cached movie may be after an upsert.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);

/// Why a call failed, as the protocol declares it.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// `NotFound { id }`.
    #[error("movie {0} not found")]
    NotFound(i64),
    /// `InvalidArgument { reason }`.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The database failed: a system error on the wire, retryable.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The result of a multi-get: found movies in request order without
/// duplicates, and the ids that do not exist.
pub type MovieBatch = Batch<i64, Movie>;

/// movie-svc's behaviour.
#[derive(Debug, Clone)]
pub struct Movies {
    store: MovieStore,
    cache: ReadThrough<i64, Movie>,
}

impl Movies {
    /// Movies from `store` behind a cache of `capacity` entries kept `ttl`.
    pub fn new(store: MovieStore, capacity: u64, ttl: Duration) -> Movies {
        Movies {
            store,
            cache: ReadThrough::new("movies", capacity, ttl),
        }
    }

    /// The store (readiness checks, seeding).
    pub fn store(&self) -> &MovieStore {
        &self.store
    }

    /// One movie.
    pub async fn get(&self, id: i64) -> Result<Arc<Movie>, ServiceError> {
        check_id(id)?;
        let store = &self.store;
        let found = self
            .cache
            .get_many(&[id], |ids| async move { load(store, &ids).await })
            .await?;
        found
            .into_iter()
            .next()
            .flatten()
            .ok_or(ServiceError::NotFound(id))
    }

    /// Up to [`MAX_BATCH`] movies; unknown ids come back in `missing`.
    pub async fn get_many(&self, ids: &[i64]) -> Result<MovieBatch, ServiceError> {
        if ids.len() > MAX_BATCH {
            return Err(ServiceError::InvalidArgument(format!(
                "{} ids asked for, at most {MAX_BATCH} per call",
                ids.len()
            )));
        }
        ids.iter().try_for_each(|&id| check_id(id))?;
        let store = &self.store;
        self.cache
            .get_batch(ids, |ids| async move { load(store, &ids).await })
            .await
    }

    /// Creates or replaces a movie; returns it as stored.
    pub async fn upsert(&self, movie: Movie) -> Result<Arc<Movie>, ServiceError> {
        validate(&movie)?;
        self.store.upsert(std::slice::from_ref(&movie)).await?;
        self.cache.invalidate(&movie.id).await;
        self.get(movie.id).await
    }
}

async fn load(store: &MovieStore, ids: &[i64]) -> Result<Vec<(i64, Movie)>, ServiceError> {
    Ok(store
        .get_many(ids)
        .await?
        .into_iter()
        .map(|m| (m.id, m))
        .collect())
}

fn check_id(id: i64) -> Result<(), ServiceError> {
    if id <= 0 {
        return Err(ServiceError::InvalidArgument(format!(
            "movie id {id} is not positive"
        )));
    }
    Ok(())
}

/// Limits on an upserted movie; what the catalogue generates always passes.
fn validate(m: &Movie) -> Result<(), ServiceError> {
    let invalid = |reason: String| Err(ServiceError::InvalidArgument(reason));
    check_id(m.id)?;
    if m.title.trim().is_empty() || m.title.len() > 512 {
        return invalid(format!("title must be 1-512 bytes, got {}", m.title.len()));
    }
    if !(1870..=2100).contains(&m.year) {
        return invalid(format!("year {} outside 1870-2100", m.year));
    }
    if m.genres.is_empty()
        || m.genres.len() > 8
        || m.genres.iter().any(|g| g.is_empty() || g.len() > 64)
    {
        return invalid("genres must be 1-8 names of 1-64 bytes".to_owned());
    }
    if !(1..=1000).contains(&m.runtime_minutes) {
        return invalid(format!("runtime {} min outside 1-1000", m.runtime_minutes));
    }
    if !m.popularity.is_finite() || m.popularity < 0.0 {
        return invalid(format!(
            "popularity {} must be finite and >= 0",
            m.popularity
        ));
    }
    Ok(())
}
