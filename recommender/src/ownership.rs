//! Who writes which serving row, and why a zombie's late write loses.
//!
//! # Topology (N instances)
//!
//! Every instance holds the whole model (the changelog is read in full by
//! each, [`crate::changelog`]), so every instance *could* compute every row;
//! ownership only decides who *writes* it, so each row has one writer:
//!
//! * `recommendations_by_user(u)`: the owner of the source partition `u`'s
//!   events arrive on (`reviews.enriched` is keyed by user);
//! * `similar_movies(m)`: the owner of partition `m mod P`;
//! * `trending_by_genre(g)`: the owner of partition `fnv1a(g) mod P`;
//!
//! where `P` is the source topic's partition count and ownership follows the
//! consumer group's assignment.
//!
//! # Fencing
//!
//! On assignment an instance takes a **lease** per partition: a row of
//! `partition_leases` whose `generation` it bumps with a lightweight
//! transaction (compare-and-set), so generations of one partition strictly
//! increase across owners. Every serving write of a key owned through
//! partition `p` carries `USING TIMESTAMP` [`Lease::timestamp`]:
//! `BASE + generation · 2^40 + µs since the lease was taken` — any write of a
//! later generation is newer to Cassandra than any write of an earlier one,
//! whatever the clocks. A zombie (an instance that lost `p` without knowing
//! yet) writes with its old generation: its late write loses to the new
//! owner's. Within a generation, time orders one owner's writes. A lease is
//! renewed (a new generation) before its 2^40 µs (≈ 12.7 days) run out.
//! `BASE` (2^52 µs) lies above every wall-clock timestamp of this century, so
//! fenced writes also win over rows written by earlier, unfenced versions.

use std::collections::HashMap;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlValue;

use crate::model::{MovieId, UserId};
use crate::store::StoreError;
use cinerec_service_kit::clock::now_micros;

/// Microseconds of one lease generation.
pub const GENERATION_SPAN_US: i64 = 1 << 40;
/// Lowest fenced timestamp.
pub const BASE_TS: i64 = 1 << 52;
/// Renew a lease once this much of its span is used.
pub const RENEW_AFTER_US: i64 = GENERATION_SPAN_US / 10 * 8;

/// The partition owning a movie's `similar_movies` row.
pub fn movie_partition(movie: MovieId, partitions: i32) -> i32 {
    i32::try_from(movie.rem_euclid(i64::from(partitions.max(1)))).unwrap_or(0)
}

/// The partition owning a genre's `trending_by_genre` row (FNV-1a: stable
/// across processes and releases, unlike `std`'s hasher).
pub fn genre_partition(genre: &str, partitions: i32) -> i32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in genre.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i32::try_from(h % u64::from(partitions.max(1).unsigned_abs())).unwrap_or(0)
}

/// One partition's lease, as this instance took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Strictly increasing per partition across owners.
    pub generation: i64,
    /// Wall clock when taken (µs).
    pub taken_at_us: i64,
}

impl Lease {
    /// The write timestamp now: generation first, then time within it. Never
    /// leaves the generation's span (saturates; the lease is renewed first).
    pub fn timestamp(&self, now_us: i64) -> i64 {
        let within = (now_us - self.taken_at_us).clamp(0, GENERATION_SPAN_US - 1);
        BASE_TS + self.generation * GENERATION_SPAN_US + within
    }

    /// Whether the lease has used most of its span.
    pub fn needs_renewal(&self, now_us: i64) -> bool {
        now_us - self.taken_at_us >= RENEW_AFTER_US
    }
}

/// The schema of the lease table.
pub fn schema(keyspace: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {keyspace}.partition_leases (partition int PRIMARY KEY, \
         generation bigint, owner text, taken_at bigint)"
    )
}

/// Takes leases: one LWT round (read + compare-and-set) per partition.
#[derive(Debug, Clone)]
pub struct Leases {
    read: PreparedStatement,
    create: PreparedStatement,
    bump: PreparedStatement,
    owner: String,
}

/// Attempts at winning a contended compare-and-set before giving up for now.
const CAS_ATTEMPTS: u32 = 10;

impl Leases {
    /// Prepares the statements; `owner` names this instance in the table.
    pub async fn new(
        session: &Session,
        keyspace: &str,
        owner: String,
    ) -> Result<Leases, StoreError> {
        let prepare = |cql: String| async move {
            session
                .prepare(cql.as_str())
                .await
                .map_err(|e| StoreError::Database(format!("preparing {cql}: {e}")))
        };
        Ok(Leases {
            read: prepare(format!(
                "SELECT generation FROM {keyspace}.partition_leases WHERE partition = ?"
            ))
            .await?,
            create: prepare(format!(
                "INSERT INTO {keyspace}.partition_leases (partition, generation, owner, taken_at) \
                 VALUES (?, 1, ?, ?) IF NOT EXISTS"
            ))
            .await?,
            bump: prepare(format!(
                "UPDATE {keyspace}.partition_leases SET generation = ?, owner = ?, taken_at = ? \
                 WHERE partition = ? IF generation = ?"
            ))
            .await?,
            owner,
        })
    }

    /// Takes the next generation of `partition`'s lease.
    pub async fn take(&self, session: &Session, partition: i32) -> Result<Lease, StoreError> {
        let db = |e: &dyn std::fmt::Display| StoreError::Database(e.to_string());
        for _ in 0..CAS_ATTEMPTS {
            let now = now_micros();
            let current = session
                .execute_unpaged(&self.read, (partition,))
                .await
                .map_err(|e| db(&e))?
                .into_rows_result()
                .map_err(|e| db(&e))?
                .maybe_first_row::<(Option<i64>,)>()
                .map_err(|e| db(&e))?
                .and_then(|(g,)| g);
            let (applied, generation) = match current {
                None => {
                    let r = session
                        .execute_unpaged(&self.create, (partition, &self.owner, now))
                        .await
                        .map_err(|e| db(&e))?;
                    (lwt_applied(r)?, 1)
                }
                Some(g) => {
                    let r = session
                        .execute_unpaged(&self.bump, (g + 1, &self.owner, now, partition, g))
                        .await
                        .map_err(|e| db(&e))?;
                    (lwt_applied(r)?, g + 1)
                }
            };
            if applied {
                return Ok(Lease {
                    generation,
                    taken_at_us: now,
                });
            }
        }
        Err(StoreError::Database(format!(
            "lease of partition {partition}: compare-and-set lost {CAS_ATTEMPTS} times"
        )))
    }
}

/// The `[applied]` column of an LWT's result.
fn lwt_applied(r: scylla::response::query_result::QueryResult) -> Result<bool, StoreError> {
    let rows = r
        .into_rows_result()
        .map_err(|e| StoreError::Database(e.to_string()))?;
    let row = rows
        .rows::<scylla::value::Row>()
        .map_err(|e| StoreError::Database(e.to_string()))?
        .next()
        .transpose()
        .map_err(|e| StoreError::Database(e.to_string()))?;
    match row.and_then(|r| r.columns.into_iter().next().flatten()) {
        Some(CqlValue::Boolean(b)) => Ok(b),
        other => Err(StoreError::Corrupt(format!(
            "LWT result without [applied]: {other:?}"
        ))),
    }
}

/// The partitions this instance owns and its leases, plus the users'
/// partitions as events and changelog records revealed them.
#[derive(Debug, Default)]
pub struct Ownership {
    /// Source partition count.
    pub partitions: i32,
    /// Owned partitions with their lease.
    pub leases: HashMap<i32, Lease>,
    /// Assigned partitions whose lease is not taken yet: their users' rows
    /// wait for it rather than being dropped.
    pub pending: std::collections::HashSet<i32>,
    /// Which partition each user's events arrive on.
    pub user_partition: HashMap<UserId, i32>,
}

impl Ownership {
    /// The lease a user's row is written under, if this instance owns it.
    pub fn user(&self, user: UserId) -> Option<Lease> {
        let p = self.user_partition.get(&user)?;
        self.leases.get(p).copied()
    }

    /// Whether a user's partition is assigned here but not leased yet.
    pub fn user_pending(&self, user: UserId) -> bool {
        self.user_partition
            .get(&user)
            .is_some_and(|p| self.pending.contains(p))
    }

    /// The lease a movie's row is written under, if owned.
    pub fn movie(&self, movie: MovieId) -> Option<Lease> {
        self.leases
            .get(&movie_partition(movie, self.partitions))
            .copied()
    }

    /// The lease a genre's row is written under, if owned.
    pub fn genre(&self, genre: &str) -> Option<Lease> {
        self.leases
            .get(&genre_partition(genre, self.partitions))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_generation_always_wins() {
        let old = Lease {
            generation: 4,
            taken_at_us: 1_000,
        };
        let new = Lease {
            generation: 5,
            taken_at_us: 2_000_000_000_000_000,
        };
        // The zombie writes long after the new owner, with a clock far ahead.
        assert!(old.timestamp(i64::MAX / 4) < new.timestamp(new.taken_at_us));
        assert!(new.timestamp(new.taken_at_us) > now_micros());
    }

    #[test]
    fn within_a_generation_time_orders_writes() {
        let l = Lease {
            generation: 1,
            taken_at_us: 100,
        };
        assert!(l.timestamp(101) < l.timestamp(102));
        assert!(!l.needs_renewal(101));
        assert!(l.needs_renewal(100 + RENEW_AFTER_US));
        // Past its span it saturates rather than step into the next generation.
        assert!(
            l.timestamp(100 + GENERATION_SPAN_US * 3) < Lease { generation: 2, ..l }.timestamp(0)
        );
    }

    #[test]
    fn keys_map_to_one_partition_each() {
        for m in -5..50 {
            let p = movie_partition(m, 6);
            assert!((0..6).contains(&p));
        }
        assert_eq!(genre_partition("Drama", 6), genre_partition("Drama", 6));
        assert!((0..6).contains(&genre_partition("Horror", 6)));
        assert_eq!(genre_partition("x", 1), 0);
    }
}
