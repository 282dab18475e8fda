//! Every statement of the store, prepared once per process with its
//! consistency and idempotence (a statement marked idempotent may be
//! retried by the driver; the LWTs and the commit batch are not).

use std::sync::Arc;

use cinerec_service_kit::cql::check_keyspace;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};

use super::{
    CHANGE_COLUMNS, HEAD_CREATE_TIMESTAMP, REVIEW_COLUMNS, ReviewStore, Statements, StoreError,
};
use crate::config::CqlArgs;

/// How every statement of the store is prepared: the configured
/// consistency (or SERIAL for reads that must see in-flight Paxos rounds),
/// the configured serial consistency for its LWTs, and whether the driver
/// may retry it.
pub(super) struct Preparer<'a> {
    session: &'a Session,
    /// The consistency of plain reads and writes.
    pub(super) consistency: Consistency,
    serial: SerialConsistency,
}

impl<'a> Preparer<'a> {
    fn new(session: &'a Session, args: &CqlArgs) -> Preparer<'a> {
        Preparer {
            session,
            consistency: args.consistency.into(),
            serial: args.serial_consistency.into(),
        }
    }

    /// The consistency of a read that completes any Paxos round in flight.
    pub(super) fn serial_read(&self) -> Consistency {
        match self.serial {
            SerialConsistency::Serial => Consistency::Serial,
            SerialConsistency::LocalSerial => Consistency::LocalSerial,
        }
    }

    /// `cql` prepared at `cl`; `idempotent`: the driver may retry it (never
    /// an LWT: a retried compare-and-set can answer "not applied" for its
    /// own first attempt).
    pub(super) async fn prepare(
        &self,
        cql: String,
        cl: Consistency,
        idempotent: bool,
    ) -> Result<PreparedStatement, StoreError> {
        let mut p = self
            .session
            .prepare(cql.as_str())
            .await
            .map_err(|e| StoreError::Database(format!("preparing {cql}: {e}")))?;
        p.set_consistency(cl);
        p.set_serial_consistency(Some(self.serial));
        p.set_is_idempotent(idempotent);
        Ok(p)
    }
}

impl ReviewStore {
    /// Prepares every statement against `args.keyspace` (run [`migrate`] first).
    pub async fn new(session: Arc<Session>, args: &CqlArgs) -> Result<ReviewStore, StoreError> {
        check_keyspace(&args.keyspace).map_err(StoreError::Database)?;
        let ks = &args.keyspace;
        let preparer = Preparer::new(&session, args);
        let (consistency, serial_read) = (preparer.consistency, preparer.serial_read());
        let prepare = |cql, cl, idempotent| preparer.prepare(cql, cl, idempotent);
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
        };
        let leases = super::leases::prepare(&preparer, ks).await?;
        Ok(ReviewStore {
            session,
            st,
            leases,
            committed: (0..super::CHANGE_SHARDS)
                .map(|_| tokio::sync::Notify::new())
                .collect(),
        })
    }
}
