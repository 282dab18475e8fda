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
//!   before `position` is acknowledged by Kafka.
//!
//! The review version, its change row and the head's `committed` marker are
//! written in **one LOGGED BATCH**: Cassandra's batch log applies all or none,
//! so an acknowledged review always has its change row. The LWT cells
//! (`version`, `changed_at`, `reserved_at`, and the creation cells) and the
//! batch cells (`committed`, `deleted`) are disjoint, because mixing LWT and
//! plain writes on one cell lets timestamps reorder them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cinerec_backoff::ExponentialBackoff;
use cinerec_service_kit::clock::now_micros;
use cinerec_service_kit::cql::{self, check_keyspace};
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::Consistency;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlValue, Row};
use uuid::Uuid;

use crate::config::CqlArgs;
use crate::events;
use crate::model::{Content, Op, Review};

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

/// Connects to the cluster (token-aware routing is the driver's default
/// load-balancing policy, so each statement goes to a replica of its key).
pub async fn connect(args: &CqlArgs) -> Result<Arc<Session>, StoreError> {
    let session = cql::connect(&args.cql_nodes, None)
        .await
        .map_err(StoreError::db)?;
    Ok(Arc::new(session))
}

/// Creates the keyspace, the tables and each shard's initial relay
/// checkpoint if missing. Safe to run on every start and concurrently.
pub async fn migrate(session: &Session, args: &CqlArgs) -> Result<(), StoreError> {
    let ks = &args.keyspace;
    check_keyspace(ks).map_err(StoreError::Database)?;
    let statements = [
        format!(
            "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {}",
            args.replication
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.review_heads (review_id uuid PRIMARY KEY, \
             version bigint, changed_at bigint, reserved_at bigint, user_id bigint, \
             movie_id bigint, created_at bigint, request_hash text, \
             committed bigint, deleted boolean)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.reviews (review_id uuid, version bigint, \
             user_id bigint, movie_id bigint, rating float, text text, deleted boolean, \
             created_at bigint, changed_at bigint, PRIMARY KEY (review_id, version)) \
             WITH CLUSTERING ORDER BY (version DESC)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.reviews_by_user (user_id bigint, review_id uuid, \
             created_at bigint, PRIMARY KEY (user_id, review_id))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.review_changes (shard int, bucket bigint, \
             changed_at bigint, review_id uuid, version bigint, event_id uuid, user_id bigint, \
             op text, prev_changed_at bigint, \
             PRIMARY KEY ((shard, bucket), changed_at, review_id, version)) \
             WITH default_time_to_live = {CHANGES_TTL_SECS}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.idempotency_keys (user_id bigint, key text, \
             review_id uuid, request_hash text, version bigint, PRIMARY KEY ((user_id, key))) \
             WITH default_time_to_live = {IDEMPOTENCY_TTL_SECS}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.relay_checkpoints (shard int PRIMARY KEY, \
             position bigint, updated_at bigint)"
        ),
    ];
    for cql in statements {
        session
            .query_unpaged(cql.as_str(), &[])
            .await
            .map_err(|e| StoreError::Database(format!("{cql}: {e}")))?;
    }
    // Columns added after the first release: tables created earlier get them here.
    add_columns(
        session,
        ks,
        "review_changes",
        &[("traceparent", "text"), ("tracestate", "text")],
    )
    .await?;
    add_columns(session, ks, "idempotency_keys", &[("version", "bigint")]).await?;
    session
        .await_schema_agreement()
        .await
        .map_err(StoreError::db)?;
    // No change can predate its table, so "everything before now" is
    // published by definition; the margin covers writer clock skew.
    let start = now_micros() - 60_000_000;
    let init = session
        .prepare(format!(
            "INSERT INTO {ks}.relay_checkpoints (shard, position, updated_at) VALUES (?, ?, ?) \
             IF NOT EXISTS"
        ))
        .await
        .map_err(StoreError::db)?;
    for shard in 0..CHANGE_SHARDS {
        session
            .execute_unpaged(&init, (shard, start, now_micros()))
            .await
            .map_err(StoreError::db)?;
    }
    Ok(())
}

/// Adds the change log's trace-context columns to a keyspace migrated before
/// they existed. CQL has no `ADD IF NOT EXISTS`, so the schema is asked first.
async fn add_columns(
    session: &Session,
    ks: &str,
    table: &str,
    columns: &[(&str, &str)],
) -> Result<(), StoreError> {
    let present: Vec<String> = session
        .query_unpaged(
            "SELECT column_name FROM system_schema.columns \
             WHERE keyspace_name = ? AND table_name = ?",
            (ks, table),
        )
        .await
        .map_err(StoreError::db)?
        .into_rows_result()
        .map_err(StoreError::corrupt)?
        .rows::<(String,)>()
        .map_err(StoreError::corrupt)?
        .map(|r| r.map(|(c,)| c))
        .collect::<Result<_, _>>()
        .map_err(StoreError::corrupt)?;
    for (column, cql_type) in columns {
        if present.iter().any(|c| c == column) {
            continue;
        }
        let cql = format!("ALTER TABLE {ks}.{table} ADD {column} {cql_type}");
        if let Err(e) = session.query_unpaged(cql.as_str(), &[]).await {
            // Another migrator may have added it meanwhile.
            if !e.to_string().contains("already exist") {
                return Err(StoreError::Database(format!("{cql}: {e}")));
            }
        }
    }
    session
        .await_schema_agreement()
        .await
        .map_err(StoreError::db)?;
    Ok(())
}

/// The head of a review: its version counter.
#[derive(Debug, Clone)]
struct Head {
    version: i64,
    committed: Option<i64>,
    changed_at: i64,
    reserved_at: i64,
    user_id: i64,
    movie_id: i64,
    created_at: i64,
    request_hash: Option<String>,
    deleted: bool,
}

impl Head {
    fn busy(&self, now: i64) -> bool {
        self.committed != Some(self.version) && !self.stale(now)
    }
    fn stale(&self, now: i64) -> bool {
        self.committed != Some(self.version) && now - self.reserved_at > RESERVATION_LEASE_MICROS
    }
}

/// A reserved version about to be committed.
#[derive(Debug)]
struct Reservation {
    review_id: Uuid,
    version: i64,
    changed_at: i64,
    prev_changed_at: Option<i64>,
    op: Op,
    user_id: i64,
    movie_id: i64,
    created_at: i64,
    content: Option<Content>,
    idempotency: Option<(String, String)>,
    /// A create whose review id nobody else can know (no Idempotency-Key):
    /// the head row is written in the commit batch, with this request hash,
    /// instead of being reserved by a lightweight transaction first.
    new_head: Option<String>,
}

impl Reservation {
    /// Version 1 of a new review of `(user_id, movie_id)`, created at `now`;
    /// `new_head` as in [`Reservation::new_head`].
    fn first_version(
        review_id: Uuid,
        now: i64,
        (user_id, movie_id): (i64, i64),
        content: Content,
        new_head: Option<String>,
    ) -> Reservation {
        Reservation {
            review_id,
            version: 1,
            changed_at: now,
            prev_changed_at: None,
            op: Op::Create,
            user_id,
            movie_id,
            created_at: now,
            content: Some(content),
            idempotency: None,
            new_head,
        }
    }
}

/// One row of the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow {
    /// When the version was reserved (µs); orders the log.
    pub changed_at: i64,
    /// The review.
    pub review_id: Uuid,
    /// The version written.
    pub version: i64,
    /// The event id (stable across republishing).
    pub event_id: Uuid,
    /// The author.
    pub user_id: i64,
    /// `CREATE`/`UPDATE`/`DELETE` as stored.
    pub op: String,
    /// `changed_at` of the version before it, if any: the relay publishes
    /// that one first if it has not yet.
    pub prev_changed_at: Option<i64>,
    /// W3C `traceparent` of the request that wrote the version (absent when
    /// nothing was traced): the relay's producer span continues that trace.
    pub traceparent: Option<String>,
    /// W3C `tracestate` beside it.
    pub tracestate: Option<String>,
}

type ChangeTuple = (
    i64,
    Uuid,
    i64,
    Uuid,
    i64,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
);

impl From<ChangeTuple> for ChangeRow {
    fn from(t: ChangeTuple) -> ChangeRow {
        ChangeRow {
            changed_at: t.0,
            review_id: t.1,
            version: t.2,
            event_id: t.3,
            user_id: t.4,
            op: t.5,
            prev_changed_at: t.6,
            traceparent: t.7,
            tracestate: t.8,
        }
    }
}

/// What a write returns.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// The review as written (or as found, on a replay).
    pub review: Review,
    /// Whether an earlier write with the same `Idempotency-Key` answered.
    pub replayed: bool,
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
    checkpoint_update: PreparedStatement,
}

/// Prepared access to review-svc's tables.
#[derive(Debug)]
pub struct ReviewStore {
    session: Arc<Session>,
    st: Statements,
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

/// A stable digest of a write request, to tell a retry from a different
/// request that reuses its `Idempotency-Key`.
fn request_hash(parts: &str) -> String {
    Uuid::new_v5(&IDEMPOTENT_ID_NAMESPACE, parts.as_bytes()).to_string()
}

fn applied(result: scylla::response::query_result::QueryResult) -> Result<bool, StoreError> {
    let rows = result.into_rows_result().map_err(StoreError::corrupt)?;
    let row: Row = rows.first_row().map_err(StoreError::corrupt)?;
    match row.columns.first() {
        Some(Some(CqlValue::Boolean(b))) => Ok(*b),
        other => Err(StoreError::Corrupt(format!(
            "LWT answer without [applied]: {other:?}"
        ))),
    }
}

impl ReviewStore {
    /// Prepares every statement against `args.keyspace` (run [`migrate`] first).
    pub async fn new(session: Arc<Session>, args: &CqlArgs) -> Result<ReviewStore, StoreError> {
        check_keyspace(&args.keyspace).map_err(StoreError::Database)?;
        let ks = &args.keyspace;
        let consistency: Consistency = args.consistency.into();
        let serial: scylla::statement::SerialConsistency = args.serial_consistency.into();
        let serial_read = match serial {
            scylla::statement::SerialConsistency::Serial => Consistency::Serial,
            scylla::statement::SerialConsistency::LocalSerial => Consistency::LocalSerial,
        };
        let prepare = |cql: String, cl: Consistency, idempotent: bool| {
            let session = session.clone();
            async move {
                let mut p = session
                    .prepare(cql.as_str())
                    .await
                    .map_err(|e| StoreError::Database(format!("preparing {cql}: {e}")))?;
                p.set_consistency(cl);
                p.set_serial_consistency(Some(serial));
                p.set_is_idempotent(idempotent);
                Ok::<_, StoreError>(p)
            }
        };
        let st = Statements {
            // Reading the head at SERIAL completes any in-progress Paxos round,
            // so a writer never acts on a reservation another one is finishing.
            head_select: prepare(
                format!(
                    "SELECT version, committed, changed_at, reserved_at, user_id, movie_id, \
                     created_at, request_hash, deleted FROM {ks}.review_heads WHERE review_id = ?"
                ),
                serial_read,
                true,
            )
            .await?,
            head_insert: prepare(
                format!(
                    "INSERT INTO {ks}.review_heads (review_id, version, changed_at, reserved_at, \
                     user_id, movie_id, created_at, request_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
                     IF NOT EXISTS"
                ),
                consistency,
                false,
            )
            .await?,
            // The head of a review created without an Idempotency-Key, in the
            // commit batch: no other writer can know a fresh v4 id, so there
            // is no race to win and no Paxos round to pay. Its cells are the
            // ones later edits change by LWT, so they are written at the
            // lowest timestamp: whatever the clocks of this host and of the
            // coordinator that runs the next edit's Paxos round (its ballot is
            // its write timestamp), the edit's cells win.
            head_create: prepare(
                format!(
                    "INSERT INTO {ks}.review_heads (review_id, version, changed_at, reserved_at, \
                     user_id, movie_id, created_at, request_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
                     USING TIMESTAMP {HEAD_CREATE_TIMESTAMP}"
                ),
                consistency,
                true,
            )
            .await?,
            head_reserve: prepare(
                format!(
                    "UPDATE {ks}.review_heads SET version = ?, changed_at = ?, reserved_at = ? \
                     WHERE review_id = ? IF version = ? AND reserved_at = ?"
                ),
                consistency,
                false,
            )
            .await?,
            review_insert: prepare(
                format!(
                    "INSERT INTO {ks}.reviews ({REVIEW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                consistency,
                true,
            )
            .await?,
            change_insert: prepare(
                format!(
                    "INSERT INTO {ks}.review_changes (shard, bucket, {CHANGE_COLUMNS}) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                consistency,
                true,
            )
            .await?,
            head_commit: prepare(
                format!(
                    "UPDATE {ks}.review_heads SET committed = ?, deleted = ? WHERE review_id = ?"
                ),
                consistency,
                true,
            )
            .await?,
            by_user_insert: prepare(
                format!(
                    "INSERT INTO {ks}.reviews_by_user (user_id, review_id, created_at) \
                     VALUES (?, ?, ?)"
                ),
                consistency,
                true,
            )
            .await?,
            idem_insert: prepare(
                format!(
                    "INSERT INTO {ks}.idempotency_keys \
                     (user_id, key, review_id, request_hash, version) VALUES (?, ?, ?, ?, ?)"
                ),
                consistency,
                true,
            )
            .await?,
            idem_select: prepare(
                format!(
                    "SELECT review_id, request_hash, version FROM {ks}.idempotency_keys \
                     WHERE user_id = ? AND key = ?"
                ),
                consistency,
                true,
            )
            .await?,
            latest_select: prepare(
                format!("SELECT {REVIEW_COLUMNS} FROM {ks}.reviews WHERE review_id = ? LIMIT 1"),
                consistency,
                true,
            )
            .await?,
            version_select: prepare(
                format!(
                    "SELECT {REVIEW_COLUMNS} FROM {ks}.reviews WHERE review_id = ? AND version = ?"
                ),
                consistency,
                true,
            )
            .await?,
            // The oldest version is the create (a create that took over a
            // dead writer's reservation lands at 2, not 1).
            first_select: prepare(
                format!(
                    "SELECT {REVIEW_COLUMNS} FROM {ks}.reviews WHERE review_id = ? \
                     ORDER BY version ASC LIMIT 1"
                ),
                consistency,
                true,
            )
            .await?,
            by_user_select: prepare(
                format!(
                    "SELECT review_id FROM {ks}.reviews_by_user WHERE user_id = ? \
                     AND review_id > ? LIMIT ?"
                ),
                consistency,
                true,
            )
            .await?,
            changes_scan: prepare(
                format!(
                    "SELECT {CHANGE_COLUMNS} FROM {ks}.review_changes WHERE shard = ? \
                     AND bucket = ? AND changed_at > ? AND changed_at <= ?"
                ),
                consistency,
                true,
            )
            .await?,
            change_at: prepare(
                format!(
                    "SELECT {CHANGE_COLUMNS} FROM {ks}.review_changes WHERE shard = ? \
                     AND bucket = ? AND changed_at = ? AND review_id = ?"
                ),
                consistency,
                true,
            )
            .await?,
            checkpoint_select: prepare(
                format!("SELECT position FROM {ks}.relay_checkpoints WHERE shard = ?"),
                consistency,
                true,
            )
            .await?,
            checkpoint_update: prepare(
                format!(
                    "UPDATE {ks}.relay_checkpoints SET position = ?, updated_at = ? WHERE shard = ?"
                ),
                consistency,
                true,
            )
            .await?,
        };
        Ok(ReviewStore { session, st })
    }

    /// The session (readiness checks).
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    async fn head(&self, review_id: Uuid) -> Result<Option<Head>, StoreError> {
        type HeadTuple = (
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<String>,
            Option<bool>,
        );
        let rows = self
            .session
            .execute_unpaged(&self.st.head_select, (review_id,))
            .await
            .map_err(StoreError::db)?
            .into_rows_result()
            .map_err(StoreError::corrupt)?;
        let Some(t) = rows
            .maybe_first_row::<HeadTuple>()
            .map_err(StoreError::corrupt)?
        else {
            return Ok(None);
        };
        let need = |v: Option<i64>, name: &str| {
            v.ok_or_else(|| StoreError::Corrupt(format!("review head {review_id} without {name}")))
        };
        Ok(Some(Head {
            version: need(t.0, "version")?,
            committed: t.1,
            changed_at: need(t.2, "changed_at")?,
            reserved_at: need(t.3, "reserved_at")?,
            user_id: need(t.4, "user_id")?,
            movie_id: need(t.5, "movie_id")?,
            created_at: need(t.6, "created_at")?,
            request_hash: t.7,
            deleted: t.8.unwrap_or(false),
        }))
    }

    /// Creates a review. With an `Idempotency-Key` the review id derives from
    /// `(user_id, key)`, so a retry (even a concurrent one) finds the first
    /// attempt instead of creating a second review.
    pub async fn create(
        &self,
        user_id: i64,
        movie_id: i64,
        content: Content,
        idempotency_key: Option<&str>,
    ) -> Result<WriteOutcome, StoreError> {
        let hash = request_hash(&format!(
            "POST\n{user_id}\n{movie_id}\n{}\n{}",
            content.rating.stars(),
            content.text
        ));
        let Some(key) = idempotency_key else {
            // A fresh random id: nobody else can be writing this review, so
            // the head is created in the commit batch (one round trip).
            let first = Reservation::first_version(
                Uuid::new_v4(),
                now_micros(),
                (user_id, movie_id),
                content,
                Some(hash),
            );
            return self.commit(first).await;
        };
        // Concurrent retries with one key race for this id: the head is
        // reserved by a lightweight transaction, and exactly one wins.
        let review_id = Uuid::new_v5(
            &IDEMPOTENT_ID_NAMESPACE,
            format!("{user_id}\n{key}").as_bytes(),
        );
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let now = now_micros();
            let result = self
                .session
                .execute_unpaged(
                    &self.st.head_insert,
                    (review_id, 1_i64, now, now, user_id, movie_id, now, &hash),
                )
                .await
                .map_err(StoreError::db)?;
            if applied(result)? {
                let first =
                    Reservation::first_version(review_id, now, (user_id, movie_id), content, None);
                return self.commit(first).await;
            }
            // Only an id derived from an Idempotency-Key can already exist.
            let Some(head) = self.head(review_id).await? else {
                continue;
            };
            if head.request_hash.as_deref() != Some(hash.as_str()) {
                return Err(StoreError::IdempotencyConflict);
            }
            if head.committed.is_some() {
                events::idempotent_replay(review_id);
                // The create's own result, even if the review was edited since.
                let review = self
                    .first(review_id)
                    .await?
                    .ok_or(StoreError::NotFound(review_id))?;
                return Ok(WriteOutcome {
                    review,
                    replayed: true,
                });
            }
            if head.stale(now) {
                // The first attempt died before committing: finish it.
                if let Some(res) = self
                    .reserve(
                        review_id,
                        &head,
                        Op::Create,
                        Some(content.clone()),
                        None,
                        now,
                    )
                    .await?
                {
                    return self.commit(res).await;
                }
                continue;
            }
            backoff(review_id, attempt).await;
        }
        Err(StoreError::Busy(review_id))
    }

    /// Writes a new version of an existing review: new content, or a
    /// tombstone when `content` is `None`. `may_write(user_id)` decides
    /// whether the caller may write reviews of the author. Deleting a deleted
    /// review answers the tombstone without a new version.
    pub async fn update(
        &self,
        review_id: Uuid,
        content: Option<Content>,
        idempotency_key: Option<&str>,
        may_write: impl Fn(i64) -> bool,
    ) -> Result<WriteOutcome, StoreError> {
        let hash = request_hash(&match &content {
            Some(c) => format!("PUT\n{review_id}\n{}\n{}", c.rating.stars(), c.text),
            None => format!("DELETE\n{review_id}"),
        });
        let op = if content.is_some() {
            Op::Update
        } else {
            Op::Delete
        };
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let now = now_micros();
            let head = self
                .head(review_id)
                .await?
                .ok_or(StoreError::NotFound(review_id))?;
            if !may_write(head.user_id) {
                return Err(StoreError::Forbidden);
            }
            if let Some(key) = idempotency_key
                && let Some((earlier_id, earlier_hash, earlier_version)) =
                    self.idempotency(head.user_id, key).await?
            {
                if earlier_id != review_id || earlier_hash != hash {
                    return Err(StoreError::IdempotencyConflict);
                }
                events::idempotent_replay(review_id);
                // The replayed write's own result (its version and content),
                // as Stripe-style Idempotency-Key APIs answer, not whatever
                // another client wrote since. A key stored before the version
                // column existed has none: the latest version is all we have.
                let review = match earlier_version {
                    Some(version) => self.version(review_id, version).await?,
                    None => self.get(review_id).await?,
                }
                .ok_or(StoreError::NotFound(review_id))?;
                return Ok(WriteOutcome {
                    review,
                    replayed: true,
                });
            }
            if head.committed.is_none() && !head.busy(now) {
                // A create that never committed: the review never existed.
                return Err(StoreError::NotFound(review_id));
            }
            if head.busy(now) {
                backoff(review_id, attempt).await;
                continue;
            }
            if head.deleted && head.committed == Some(head.version) {
                return match op {
                    Op::Delete => {
                        let review = self
                            .get(review_id)
                            .await?
                            .ok_or(StoreError::NotFound(review_id))?;
                        Ok(WriteOutcome {
                            review,
                            replayed: false,
                        })
                    }
                    _ => Err(StoreError::Deleted(review_id)),
                };
            }
            let idem = idempotency_key.map(|k| (k.to_owned(), hash.clone()));
            match self
                .reserve(review_id, &head, op, content.clone(), idem, now)
                .await?
            {
                Some(res) => return self.commit(res).await,
                None => events::version_contended(review_id),
            }
        }
        Err(StoreError::Busy(review_id))
    }

    /// Reserves `head.version + 1` if nobody reserved since `head` was read.
    async fn reserve(
        &self,
        review_id: Uuid,
        head: &Head,
        op: Op,
        content: Option<Content>,
        idempotency: Option<(String, String)>,
        now: i64,
    ) -> Result<Option<Reservation>, StoreError> {
        let version = head.version + 1;
        // Strictly after the previous version even if this host's clock is
        // behind the previous writer's: the change log orders by it.
        let changed_at = now.max(head.changed_at + 1);
        let result = self
            .session
            .execute_unpaged(
                &self.st.head_reserve,
                (
                    version,
                    changed_at,
                    now,
                    review_id,
                    head.version,
                    head.reserved_at,
                ),
            )
            .await
            .map_err(StoreError::db)?;
        if !applied(result)? {
            return Ok(None);
        }
        if head.stale(now) {
            events::stale_reservation_taken_over(review_id, head.version);
        }
        Ok(Some(Reservation {
            review_id,
            version,
            changed_at,
            prev_changed_at: Some(head.changed_at),
            op: if head.committed.is_none() {
                Op::Create
            } else {
                op
            },
            user_id: head.user_id,
            movie_id: head.movie_id,
            created_at: head.created_at,
            content,
            idempotency,
            new_head: None,
        }))
    }

    /// The atomic step: review version + change row + head commit marker
    /// (+ user index, + idempotency key) in one LOGGED BATCH.
    async fn commit(&self, res: Reservation) -> Result<WriteOutcome, StoreError> {
        let started = Instant::now();
        let event_id = Uuid::new_v4();
        let deleted = res.content.is_none();
        let rating = res.content.as_ref().map(|c| c.rating.stars());
        let text = res.content.as_ref().map(|c| c.text.clone());
        let mut batch = Batch::new(BatchType::Logged);
        // The first statement picks the coordinator: the review's replica.
        batch.append_statement(self.st.review_insert.clone());
        batch.append_statement(self.st.change_insert.clone());
        batch.append_statement(self.st.head_commit.clone());
        batch.append_statement(self.st.by_user_insert.clone());
        if let Some(cl) = self.st.review_insert.get_consistency() {
            batch.set_consistency(cl);
        }
        batch.set_request_timeout(Some(WRITE_TIMEOUT));
        let review_values = (
            res.review_id,
            res.version,
            res.user_id,
            res.movie_id,
            rating,
            text.clone(),
            deleted,
            res.created_at,
            res.changed_at,
        );
        // The request's trace context rides in the change row, so the relay's
        // publish (and everything downstream) joins the request's trace.
        let trace = cinerec_service_kit::trace_context::W3cContext::current();
        let change_values = (
            shard_of(res.review_id),
            bucket_of(res.changed_at),
            res.changed_at,
            res.review_id,
            res.version,
            event_id,
            res.user_id,
            res.op.as_str(),
            res.prev_changed_at,
            trace.as_ref().map(|t| t.traceparent.as_str()),
            trace.as_ref().and_then(|t| t.tracestate.as_deref()),
        );
        let commit_values = (res.version, deleted, res.review_id);
        let by_user_values = (res.user_id, res.review_id, res.created_at);
        let outcome = match (&res.idempotency, &res.new_head) {
            (_, Some(hash)) => {
                batch.append_statement(self.st.head_create.clone());
                let head_values = (
                    res.review_id,
                    res.version,
                    res.changed_at,
                    res.changed_at,
                    res.user_id,
                    res.movie_id,
                    res.created_at,
                    hash.as_str(),
                );
                self.session
                    .batch(
                        &batch,
                        (
                            review_values,
                            change_values,
                            commit_values,
                            by_user_values,
                            head_values,
                        ),
                    )
                    .await
            }
            (Some((key, hash)), None) => {
                batch.append_statement(self.st.idem_insert.clone());
                self.session
                    .batch(
                        &batch,
                        (
                            review_values,
                            change_values,
                            commit_values,
                            by_user_values,
                            (
                                res.user_id,
                                key.as_str(),
                                res.review_id,
                                hash.as_str(),
                                res.version,
                            ),
                        ),
                    )
                    .await
            }
            (None, None) => {
                self.session
                    .batch(
                        &batch,
                        (review_values, change_values, commit_values, by_user_values),
                    )
                    .await
            }
        };
        outcome.map_err(StoreError::db)?;
        events::review_written(res.op, started.elapsed());
        Ok(WriteOutcome {
            review: Review {
                review_id: res.review_id,
                version: res.version,
                user_id: res.user_id,
                movie_id: res.movie_id,
                rating,
                text,
                deleted,
                created_at_us: res.created_at,
                changed_at_us: res.changed_at,
            },
            replayed: false,
        })
    }

    async fn idempotency(
        &self,
        user_id: i64,
        key: &str,
    ) -> Result<Option<(Uuid, String, Option<i64>)>, StoreError> {
        self.session
            .execute_unpaged(&self.st.idem_select, (user_id, key))
            .await
            .map_err(StoreError::db)?
            .into_rows_result()
            .map_err(StoreError::corrupt)?
            .maybe_first_row::<(Uuid, String, Option<i64>)>()
            .map_err(StoreError::corrupt)
    }

    /// One version of a review.
    async fn version(&self, review_id: Uuid, version: i64) -> Result<Option<Review>, StoreError> {
        self.one_review(&self.st.version_select, (review_id, version))
            .await
    }

    /// The first version of a review: what its create wrote.
    async fn first(&self, review_id: Uuid) -> Result<Option<Review>, StoreError> {
        self.one_review(&self.st.first_select, (review_id,)).await
    }

    async fn one_review(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<Option<Review>, StoreError> {
        Ok(self
            .session
            .execute_unpaged(statement, values)
            .await
            .map_err(StoreError::db)?
            .into_rows_result()
            .map_err(StoreError::corrupt)?
            .maybe_first_row::<ReviewTuple>()
            .map_err(StoreError::corrupt)?
            .map(review_from))
    }

    /// The latest version of a review (a tombstone if deleted).
    pub async fn get(&self, review_id: Uuid) -> Result<Option<Review>, StoreError> {
        Ok(self
            .session
            .execute_unpaged(&self.st.latest_select, (review_id,))
            .await
            .map_err(StoreError::db)?
            .into_rows_result()
            .map_err(StoreError::corrupt)?
            .maybe_first_row::<ReviewTuple>()
            .map_err(StoreError::corrupt)?
            .map(review_from))
    }

    /// A page of a user's live reviews (latest versions, tombstones left
    /// out), ordered by review id, starting after `after`; with the id to
    /// continue after when the page was full.
    pub async fn list_by_user(
        &self,
        user_id: i64,
        after: Option<Uuid>,
        limit: i32,
    ) -> Result<(Vec<Review>, Option<Uuid>), StoreError> {
        let limit = limit.clamp(1, MAX_LIST);
        let ids: Vec<Uuid> = self
            .session
            .execute_unpaged(
                &self.st.by_user_select,
                (user_id, after.unwrap_or(Uuid::nil()), limit),
            )
            .await
            .map_err(StoreError::db)?
            .into_rows_result()
            .map_err(StoreError::corrupt)?
            .rows::<(Uuid,)>()
            .map_err(StoreError::corrupt)?
            .map(|r| r.map(|(id,)| id).map_err(StoreError::corrupt))
            .collect::<Result<_, _>>()?;
        let next = (ids.len() == limit as usize)
            .then(|| ids.last().copied())
            .flatten();
        let reviews = futures::future::try_join_all(ids.into_iter().map(|id| self.get(id))).await?;
        Ok((
            reviews
                .into_iter()
                .flatten()
                .filter(|r| !r.deleted)
                .collect(),
            next,
        ))
    }

    /// Change rows of `shard` with `after < changed_at <= until`, in log
    /// order, at most `max_rows` of them (the first ones): a relay catching
    /// up after an outage reads its backlog in slices, not into one vector.
    pub async fn scan_changes(
        &self,
        shard: i32,
        after: i64,
        until: i64,
        max_rows: usize,
    ) -> Result<Vec<ChangeRow>, StoreError> {
        let mut out = Vec::new();
        if until <= after {
            return Ok(out);
        }
        for bucket in bucket_of(after)..=bucket_of(until) {
            if out.len() >= max_rows {
                break;
            }
            let pager = self
                .session
                .execute_iter(self.st.changes_scan.clone(), (shard, bucket, after, until))
                .await
                .map_err(StoreError::db)?;
            let mut rows = pager
                .rows_stream::<ChangeTuple>()
                .map_err(StoreError::corrupt)?;
            while let Some(row) = rows.try_next().await.map_err(StoreError::db)? {
                out.push(ChangeRow::from(row));
                if out.len() >= max_rows {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The change row of `review_id` at exactly `changed_at`, if it landed.
    pub async fn change_at(
        &self,
        shard: i32,
        changed_at: i64,
        review_id: Uuid,
    ) -> Result<Option<ChangeRow>, StoreError> {
        Ok(self
            .session
            .execute_unpaged(
                &self.st.change_at,
                (shard, bucket_of(changed_at), changed_at, review_id),
            )
            .await
            .map_err(StoreError::db)?
            .into_rows_result()
            .map_err(StoreError::corrupt)?
            .maybe_first_row::<ChangeTuple>()
            .map_err(StoreError::corrupt)?
            .map(ChangeRow::from))
    }

    /// The saved checkpoint of `shard` (`None`: `migrate` never ran).
    pub async fn checkpoint(&self, shard: i32) -> Result<Option<i64>, StoreError> {
        Ok(self
            .session
            .execute_unpaged(&self.st.checkpoint_select, (shard,))
            .await
            .map_err(StoreError::db)?
            .into_rows_result()
            .map_err(StoreError::corrupt)?
            .maybe_first_row::<(Option<i64>,)>()
            .map_err(StoreError::corrupt)?
            .and_then(|(p,)| p))
    }

    /// Saves the checkpoint of `shard`.
    pub async fn save_checkpoint(&self, shard: i32, position: i64) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.st.checkpoint_update, (position, now_micros(), shard))
            .await
            .map_err(StoreError::db)?;
        Ok(())
    }
}

/// The waits before re-reading a busy head: short at first (the other
/// writer's batch takes a few ms), capped so a stuck reservation's lease can
/// expire within the attempts.
const CONTENDED_BACKOFF: ExponentialBackoff =
    ExponentialBackoff::new(Duration::from_millis(2), Duration::from_millis(100));
/// Random extra on each contended wait, so two racers drift apart.
const CONTENDED_JITTER: Duration = Duration::from_millis(5);

/// Waits before retry `attempt + 1` (0-based) of a write that found its head busy.
async fn backoff(review_id: Uuid, attempt: u32) {
    events::version_contended(review_id);
    let wait = CONTENDED_BACKOFF.with_added_jitter(attempt.saturating_add(1), CONTENDED_JITTER);
    tokio::time::sleep(wait).await;
}

#[cfg(test)]
mod tests {
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
