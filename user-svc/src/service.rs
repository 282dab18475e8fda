//! What user-svc answers, independent of the wire: validation, the
//! read-through cache in front of the store, and the error kinds the Avro RPC
//! layer maps to the protocol's declared errors.

use std::sync::Arc;
use std::time::Duration;

use cinerec_service_kit::{Batch, ReadThrough};

use crate::store::{MAX_BATCH, StoreError, User, UserStore};

/// Entries the read-through cache holds: the most active users (activity is
/// heavy-tailed, so 200k of 1M users cover most reviews), ~250 B each, ~50 MiB.
pub const DEFAULT_CACHE_CAPACITY: u64 = 200_000;
/// How stale another instance's cached user may be after an upsert.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);

/// Why a call failed, as the protocol declares it.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// `NotFound { id }`.
    #[error("user {0} not found")]
    NotFound(i64),
    /// `InvalidArgument { reason }`.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The database failed: a system error on the wire, retryable.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The result of a multi-get: found users in request order without
/// duplicates, and the ids that do not exist.
pub type UserBatch = Batch<i64, User>;

/// user-svc's behaviour.
#[derive(Debug, Clone)]
pub struct Users {
    store: UserStore,
    cache: ReadThrough<i64, User>,
}

impl Users {
    /// Users from `store` behind a cache of `capacity` entries kept `ttl`.
    pub fn new(store: UserStore, capacity: u64, ttl: Duration) -> Users {
        Users {
            store,
            cache: ReadThrough::new("users", capacity, ttl),
        }
    }

    /// The store (readiness checks, seeding).
    pub fn store(&self) -> &UserStore {
        &self.store
    }

    /// One user.
    pub async fn get(&self, id: i64) -> Result<Arc<User>, ServiceError> {
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

    /// Up to [`MAX_BATCH`] users; unknown ids come back in `missing`.
    pub async fn get_many(&self, ids: &[i64]) -> Result<UserBatch, ServiceError> {
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

    /// Creates or replaces a user; returns it as stored.
    pub async fn upsert(&self, user: User) -> Result<Arc<User>, ServiceError> {
        validate(&user)?;
        self.store.upsert(std::slice::from_ref(&user)).await?;
        self.cache.invalidate(&user.id).await;
        self.get(user.id).await
    }
}

async fn load(store: &UserStore, ids: &[i64]) -> Result<Vec<(i64, User)>, ServiceError> {
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
            "user id {id} is not positive"
        )));
    }
    Ok(())
}

/// Limits on an upserted user; what the catalogue generates always passes.
fn validate(u: &User) -> Result<(), ServiceError> {
    let invalid = |reason: String| Err(ServiceError::InvalidArgument(reason));
    check_id(u.id)?;
    if u.display_name.trim().is_empty() || u.display_name.len() > 128 {
        return invalid(format!(
            "display_name must be 1-128 bytes, got {}",
            u.display_name.len()
        ));
    }
    if u.country.len() != 2 || !u.country.bytes().all(|b| b.is_ascii_uppercase()) {
        return invalid(format!(
            "country {:?} is not an ISO 3166-1 alpha-2 code",
            u.country
        ));
    }
    if u.zone.is_empty() || u.zone.len() > 32 {
        return invalid("zone must be 1-32 bytes".to_owned());
    }
    if u.preferred_genres.len() > 8
        || u.preferred_genres
            .iter()
            .any(|g| g.is_empty() || g.len() > 64)
    {
        return invalid("preferred_genres must be at most 8 names of 1-64 bytes".to_owned());
    }
    // 1900-01-01 ..= 2100-01-01 as days since the epoch.
    if !(-25_567..=47_482).contains(&u.signup_date) {
        return invalid(format!(
            "signup_date {} (days since 1970) out of range",
            u.signup_date
        ));
    }
    if !TIERS.contains(&u.tier.as_str()) {
        return invalid(format!("tier {:?} is not one of {TIERS:?}", u.tier));
    }
    Ok(())
}

/// The tiers the protocol's `Tier` enum and the table's CHECK allow.
const TIERS: [&str; 3] = ["FREE", "STANDARD", "PREMIUM"];
