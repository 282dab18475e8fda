//! Reviews in Cassandra/ScyllaDB, and the change log the relay tails.
//!
//! Tables (created by [`migrate`], idempotent CQL):
//!
//! * `review_heads` — one row per review: the per-review **version counter**.
//!   A writer reserves version `v+1` with a lightweight transaction (Paxos)
//!   that succeeds only if nobody else reserved since it read the head, and
//!   only reserves when the previous version is committed (or its writer's
//!   lease expired). So writes of one review are serialised: versions strictly
//!   increase, and version `v+1` is reserved only after `v` landed.
//!   Where no race can happen the LWT is skipped: a create without an
//!   `Idempotency-Key` gets a fresh random id nobody else knows, so its head
//!   is written in the commit batch itself (one round trip instead of an LWT
//!   plus the batch), at a timestamp below every Paxos ballot so later edits'
//!   LWTs supersede it. A keyed create can race a concurrent retry of the same
//!   key (one id), so it keeps the LWT.
//! * `reviews` — every version, partition `review_id`, clustering `version DESC`
//!   (latest version = first row).
//! * `reviews_by_user` — `user_id → review_id`, for listing a user's reviews.
//! * `review_changes` — the **transactional outbox**: one row per version
//!   (with the writing request's W3C trace context, `traceparent`/`tracestate`),
//!   partition `(shard, bucket)` (shard = hash of `review_id`, bucket = 10 s
//!   of `changed_at`), clustering `changed_at, review_id, version`.
//! * `idempotency_keys` — `(user_id, key) → review_id, request hash, version`
//!   (24 h): the version is the one the keyed write produced, so a replay
//!   answers that write's result, not the review's current state.
//! * `relay_checkpoints` — per shard: every change with `changed_at` at or
//!   before `position` is acknowledged by Kafka; `generation` fences it to
//!   the current lease holder.
//! * `relay_leases`, `relay_members` — which relay replica publishes which
//!   shard (`leases.rs`, [`crate::relay::lease`]).
//!
//! The review version, its change row and the head's `committed` marker are
//! written in **one LOGGED BATCH**: Cassandra's batch log applies all or none,
//! so an acknowledged review always has its change row. The LWT cells
//! (`version`, `changed_at`, `reserved_at`, and the creation cells) and the
//! batch cells (`committed`, `deleted`) are disjoint, because mixing LWT and
//! plain writes on one cell lets timestamps reorder them.
//!
//! # Files
//!
//! * `schema.rs` — [`connect`], [`migrate`]: the tables above as CQL;
//! * `statements.rs` — every statement prepared once ([`ReviewStore::new`]);
//! * `write.rs` — creates and edits: the head's reservation, the commit
//!   batch, `Idempotency-Key` replays ([`ReviewStore::create`],
//!   [`ReviewStore::update`]);
//! * `read.rs` — the latest acknowledged version of a review, a user's list;
//! * `changes.rs` — the outbox as the relay reads it (scans, one change,
//!   the per-shard checkpoints);
//! * `leases.rs` — the relay's shard leases, member heartbeats and the
//!   fenced checkpoint save.

mod changes;
mod leases;
mod read;
mod schema;
mod statements;
mod write;

use std::sync::Arc;
use std::time::Duration;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use crate::model::Review;

pub use changes::ChangeRow;
pub use leases::LeaseRow;
pub use schema::{connect, migrate};
pub use write::WriteOutcome;

/// Shards of the change log: the relay tails them in parallel. Part of the
/// data layout: fixed for the life of a keyspace.
pub const CHANGE_SHARDS: i32 = 8;
/// Width of a change-log time bucket. Small enough that a partition stays
/// small (10 s × 50k/s ÷ 8 shards ≈ 62k rows), large enough that an idle
/// relay reads one or two partitions per shard per poll.
pub const BUCKET_MICROS: i64 = 10_000_000;
/// Client-side timeout of the write batch. An acknowledged write landed
/// within this of its `changed_at`; the relay's settle window must exceed it.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// A reservation older than this whose writer never committed is abandoned
/// (the writer died between the LWT and the batch); the next writer takes
/// over with a higher version.
pub const RESERVATION_LEASE_MICROS: i64 = 10_000_000;
/// Attempts of a writer that finds the review's version counter busy.
pub const MAX_WRITE_ATTEMPTS: u32 = 40;
/// Retention of change rows: the relay may be down this long without loss.
pub const CHANGES_TTL_SECS: u32 = 14 * 24 * 3600;
/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_TTL_SECS: u32 = 24 * 3600;
/// Largest page of `GET /v1/users/{id}/reviews`.
pub const MAX_LIST: i32 = 100;

/// Write timestamp of the head cells a create without an Idempotency-Key
/// writes in its commit batch (see `head_create`): below any Paxos ballot, so
/// every later LWT on those cells supersedes them.
const HEAD_CREATE_TIMESTAMP: i64 = 1;

/// Namespace of review ids derived from `(user_id, Idempotency-Key)`, so two
/// concurrent POSTs with one key race for the same id and exactly one wins.
const IDEMPOTENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6369_6e65_7265_632d_7265_7669_6577_0001);

/// The shard of a review's changes.
pub fn shard_of(review_id: Uuid) -> i32 {
    (review_id.as_u128() % CHANGE_SHARDS as u128) as i32
}

/// The bucket of a change time.
pub fn bucket_of(changed_at_us: i64) -> i64 {
    changed_at_us.div_euclid(BUCKET_MICROS)
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or timed out; the caller may retry.
    #[error("database: {0}")]
    Database(String),
    /// A stored row does not have the expected shape.
    #[error("malformed row: {0}")]
    Corrupt(String),
    /// No such review.
    #[error("review {0} not found")]
    NotFound(Uuid),
    /// The review is deleted; it cannot be edited.
    #[error("review {0} is deleted")]
    Deleted(Uuid),
    /// The caller may not write this review.
    #[error("not the review's author")]
    Forbidden,
    /// The `Idempotency-Key` was used before for a different request.
    #[error("Idempotency-Key reused with a different request")]
    IdempotencyConflict,
    /// Other writes of this review kept the version counter busy.
    #[error("review {0} is being written by other requests; retry")]
    Busy(Uuid),
}

impl StoreError {
    fn db(e: impl std::fmt::Display) -> StoreError {
        StoreError::Database(e.to_string())
    }
    fn corrupt(e: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt(e.to_string())
    }
}

#[derive(Debug)]
struct Statements {
    head_select: PreparedStatement,
    head_insert: PreparedStatement,
    head_create: PreparedStatement,
    head_reserve: PreparedStatement,
    review_insert: PreparedStatement,
    change_insert: PreparedStatement,
    head_commit: PreparedStatement,
    by_user_insert: PreparedStatement,
    idem_insert: PreparedStatement,
    idem_select: PreparedStatement,
    latest_select: PreparedStatement,
    version_select: PreparedStatement,
    first_select: PreparedStatement,
    by_user_select: PreparedStatement,
    changes_scan: PreparedStatement,
    change_at: PreparedStatement,
    checkpoint_select: PreparedStatement,
}

/// Prepared access to review-svc's tables.
#[derive(Debug)]
pub struct ReviewStore {
    session: Arc<Session>,
    st: Statements,
    leases: leases::LeaseStatements,
    /// One per change-log shard: notified when this process commits a
    /// change there, so a relay in the same process publishes it without
    /// waiting for its next poll.
    committed: Vec<tokio::sync::Notify>,
}

const REVIEW_COLUMNS: &str =
    "review_id, version, user_id, movie_id, rating, text, deleted, created_at, changed_at";
const CHANGE_COLUMNS: &str = "changed_at, review_id, version, event_id, user_id, op, \
     prev_changed_at, traceparent, tracestate";

type ReviewTuple = (
    Uuid,
    i64,
    i64,
    i64,
    Option<f32>,
    Option<String>,
    Option<bool>,
    i64,
    i64,
);

fn review_from(t: ReviewTuple) -> Review {
    Review {
        review_id: t.0,
        version: t.1,
        user_id: t.2,
        movie_id: t.3,
        rating: t.4,
        text: t.5,
        deleted: t.6.unwrap_or(false),
        created_at_us: t.7,
        changed_at_us: t.8,
    }
}

impl ReviewStore {
    /// Completes when this process commits a change to `shard` (at once if
    /// one was committed since the last wait returned).
    pub async fn committed_to(&self, shard: i32) {
        match usize::try_from(shard)
            .ok()
            .and_then(|i| self.committed.get(i))
        {
            Some(signal) => signal.notified().await,
            None => std::future::pending().await,
        }
    }

    /// The session (readiness checks).
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }
}

#[cfg(test)]
mod tests {
    use cinerec_service_kit::cql::check_keyspace;

    use super::*;

    #[test]
    fn shards_and_buckets_are_stable() {
        let id = Uuid::from_u128(17);
        assert_eq!(shard_of(id), 1);
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(BUCKET_MICROS - 1), 0);
        assert_eq!(bucket_of(BUCKET_MICROS), 1);
        assert_eq!(bucket_of(-1), -1);
    }

    #[test]
    fn keyspace_names_are_checked() {
        assert!(check_keyspace("review_svc").is_ok());
        for bad in ["", "1abc", "a-b", "A", "x; DROP"] {
            assert!(check_keyspace(bad).is_err(), "{bad}");
        }
    }
}
