//! What user-svc answers, independent of the wire: the `users` table as a
//! [`MetadataRecord`] of the shared metadata service (read-through cache, multi-get,
//! validated upserts), and the limits an upserted user must meet.

use std::time::Duration;

use cinerec_service_kit::metadata::{MetadataRecord, MetadataService};

use crate::store::{User, UserStore};

/// Entries the read-through cache holds: the most active users (activity is
/// heavy-tailed, so 200k of 1M users cover most reviews), ~250 B each, ~50 MiB.
pub const DEFAULT_CACHE_CAPACITY: u64 = 200_000;
/// How stale another instance's cached user may be after an upsert.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);

/// user-svc's behaviour.
pub type Users = MetadataService<UserStore>;

/// Users from `store` behind a cache of `capacity` entries kept `ttl`.
pub fn users(store: UserStore, capacity: u64, ttl: Duration) -> Users {
    MetadataService::new(store, "users", capacity, ttl)
}

impl MetadataRecord for User {
    const KIND: &'static str = "user";

    /// Limits on an upserted user; what the catalogue generates always passes.
    fn invalid(&self) -> Option<String> {
        let u = self;
        if u.display_name.trim().is_empty() || u.display_name.len() > 128 {
            return Some(format!(
                "display_name must be 1-128 bytes, got {}",
                u.display_name.len()
            ));
        }
        if u.country.len() != 2 || !u.country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Some(format!(
                "country {:?} is not an ISO 3166-1 alpha-2 code",
                u.country
            ));
        }
        if u.zone.is_empty() || u.zone.len() > 32 {
            return Some("zone must be 1-32 bytes".to_owned());
        }
        if u.preferred_genres.len() > 8
            || u.preferred_genres
                .iter()
                .any(|g| g.is_empty() || g.len() > 64)
        {
            return Some("preferred_genres must be at most 8 names of 1-64 bytes".to_owned());
        }
        // 1900-01-01 ..= 2100-01-01 as days since the epoch.
        if !(-25_567..=47_482).contains(&u.signup_date) {
            return Some(format!(
                "signup_date {} (days since 1970) out of range",
                u.signup_date
            ));
        }
        None
    }
}
