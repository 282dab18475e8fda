//! The relay's shard leases, its member heartbeats and the fenced
//! checkpoint, as CQL. The protocol built on them (who takes what, when a
//! lease is past due) is [`crate::relay::lease`]'s; this file only says
//! what each statement guarantees.
//!
//! * `relay_leases` — one row per shard: `owner` (a member id, null when
//!   free), `generation` (bumped by every take, so it strictly increases
//!   across owners), `renewed` (changed by every renewal and release: a
//!   taker's compare-and-set names the `(generation, renewed)` it saw, so it
//!   fails if the owner renewed meanwhile), `published_to` (the newest
//!   `changed_at` the owner had published when it last renewed: what a
//!   taker counts as republished duplicates). Every write is an LWT.
//! * `relay_members` — one row per running relay, rewritten each tick with
//!   a TTL of about the lease TTL: the live members, for balancing only.
//! * `relay_checkpoints.generation` — the generation of the lease whose
//!   holder may move the checkpoint: a new owner raises it (LWT) before
//!   reading the position, and every save is conditional on it, so a zombie
//!   cannot move the checkpoint once the new owner started.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use super::statements::Preparer;
use super::write::applied;
use super::{ReviewStore, StoreError};
use cinerec_service_kit::clock::now_micros;

/// One shard's lease row as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRow {
    /// The shard.
    pub shard: i32,
    /// Its holder (`None`: free).
    pub owner: Option<Uuid>,
    /// Bumped by every take.
    pub generation: i64,
    /// Changed by every renewal and release.
    pub renewed: i64,
    /// The newest change its holder had published at its last renewal.
    pub published_to: i64,
}

/// The prepared lease statements.
#[derive(Debug)]
pub(super) struct LeaseStatements {
    select_all: PreparedStatement,
    take: PreparedStatement,
    renew: PreparedStatement,
    release: PreparedStatement,
    beat: PreparedStatement,
    leave: PreparedStatement,
    members: PreparedStatement,
    checkpoint_claim: PreparedStatement,
    checkpoint_read: PreparedStatement,
    checkpoint_save: PreparedStatement,
}

/// The lease tables' CQL (run by `migrate`).
pub(super) fn schema(ks: &str) -> [String; 2] {
    [
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.relay_leases (shard int PRIMARY KEY, owner uuid, \
             generation bigint, renewed bigint, published_to bigint)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.relay_members (member uuid PRIMARY KEY, beat bigint)"
        ),
    ]
}

/// Creates each shard's free lease row and gives checkpoints written before
/// leases existed a generation, so the fenced statements apply to them.
pub(super) async fn init(session: &Session, ks: &str, shards: i32) -> Result<(), StoreError> {
    let lease = session
        .prepare(format!(
            "INSERT INTO {ks}.relay_leases (shard, generation, renewed, published_to) \
             VALUES (?, 0, 0, 0) IF NOT EXISTS"
        ))
        .await
        .map_err(StoreError::db)?;
    let fence = session
        .prepare(format!(
            "UPDATE {ks}.relay_checkpoints SET generation = 0 WHERE shard = ? IF generation = null"
        ))
        .await
        .map_err(StoreError::db)?;
    for shard in 0..shards {
        session
            .execute_unpaged(&lease, (shard,))
            .await
            .map_err(StoreError::db)?;
        session
            .execute_unpaged(&fence, (shard,))
            .await
            .map_err(StoreError::db)?;
    }
    Ok(())
}

/// Prepares the lease statements. LWTs are not idempotent (a retried
/// compare-and-set can answer "not applied" for its own first attempt), so
/// none is retried by the driver; the caller re-reads and decides.
pub(super) async fn prepare(
    preparer: &Preparer<'_>,
    ks: &str,
) -> Result<LeaseStatements, StoreError> {
    let (consistency, serial_read) = (preparer.consistency, preparer.serial_read());
    let prepare = |cql, cl, idempotent| preparer.prepare(cql, cl, idempotent);
    Ok(LeaseStatements {
        // A quorum read sees every committed LWT; one still in flight may be
        // missed, and then the caller's compare-and-set simply fails.
        select_all: prepare(
            format!(
                "SELECT shard, owner, generation, renewed, published_to FROM {ks}.relay_leases"
            ),
            consistency,
            true,
        )
        .await?,
        take: prepare(
            format!(
                "UPDATE {ks}.relay_leases SET owner = ?, generation = ?, renewed = ? \
                 WHERE shard = ? IF generation = ? AND renewed = ?"
            ),
            consistency,
            false,
        )
        .await?,
        renew: prepare(
            format!(
                "UPDATE {ks}.relay_leases SET renewed = ?, published_to = ? \
                 WHERE shard = ? IF owner = ? AND generation = ?"
            ),
            consistency,
            false,
        )
        .await?,
        release: prepare(
            format!(
                "UPDATE {ks}.relay_leases SET owner = null, renewed = ?, published_to = ? \
                 WHERE shard = ? IF owner = ? AND generation = ?"
            ),
            consistency,
            false,
        )
        .await?,
        beat: prepare(
            format!("INSERT INTO {ks}.relay_members (member, beat) VALUES (?, ?) USING TTL ?"),
            consistency,
            true,
        )
        .await?,
        leave: prepare(
            format!("DELETE FROM {ks}.relay_members WHERE member = ?"),
            consistency,
            true,
        )
        .await?,
        members: prepare(
            format!("SELECT member FROM {ks}.relay_members"),
            consistency,
            true,
        )
        .await?,
        checkpoint_claim: prepare(
            format!(
                "UPDATE {ks}.relay_checkpoints SET generation = ? WHERE shard = ? \
                 IF generation < ?"
            ),
            consistency,
            false,
        )
        .await?,
        // SERIAL: completes any save still in flight, so the new owner starts
        // from the last position anyone wrote.
        checkpoint_read: prepare(
            format!("SELECT position, generation FROM {ks}.relay_checkpoints WHERE shard = ?"),
            serial_read,
            true,
        )
        .await?,
        checkpoint_save: prepare(
            format!(
                "UPDATE {ks}.relay_checkpoints SET position = ?, updated_at = ? WHERE shard = ? \
                 IF generation = ?"
            ),
            consistency,
            false,
        )
        .await?,
    })
}

impl ReviewStore {
    /// Every shard's lease row.
    pub async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        type LeaseTuple = (i32, Option<Uuid>, Option<i64>, Option<i64>, Option<i64>);
        let rows = self
            .session
            .execute_unpaged(&self.leases.select_all, &[])
            .await
            .map_err(StoreError::db)?
            .into_rows_result()
            .map_err(StoreError::corrupt)?;
        rows.rows::<LeaseTuple>()
            .map_err(StoreError::corrupt)?
            .map(|row| {
                let (shard, owner, generation, renewed, published_to) =
                    row.map_err(StoreError::corrupt)?;
                Ok(LeaseRow {
                    shard,
                    owner,
                    generation: generation.unwrap_or(0),
                    renewed: renewed.unwrap_or(0),
                    published_to: published_to.unwrap_or(0),
                })
            })
            .collect()
    }

    /// Takes `seen`'s shard for `owner` with generation `seen.generation + 1`
    /// if its row is still exactly as seen; `false` if someone changed it.
    pub async fn take_lease(&self, seen: &LeaseRow, owner: Uuid) -> Result<bool, StoreError> {
        let renewed = now_micros().max(seen.renewed + 1);
        let result = self
            .session
            .execute_unpaged(
                &self.leases.take,
                (
                    owner,
                    seen.generation + 1,
                    renewed,
                    seen.shard,
                    seen.generation,
                    seen.renewed,
                ),
            )
            .await
            .map_err(StoreError::db)?;
        applied(result)
    }

    /// Renews `owner`'s lease of `shard` at `generation`; `false`: it was
    /// taken from us.
    pub async fn renew_lease(
        &self,
        shard: i32,
        owner: Uuid,
        generation: i64,
        published_to: i64,
    ) -> Result<bool, StoreError> {
        self.owner_cas(&self.leases.renew, shard, owner, generation, published_to)
            .await
    }

    /// Frees `owner`'s lease of `shard` at `generation` (graceful hand-over:
    /// the next taker need not wait for it to expire).
    pub async fn release_lease(
        &self,
        shard: i32,
        owner: Uuid,
        generation: i64,
        published_to: i64,
    ) -> Result<bool, StoreError> {
        self.owner_cas(&self.leases.release, shard, owner, generation, published_to)
            .await
    }

    /// Runs `statement` (renew or release: `SET renewed = now, published_to
    /// ... IF owner = ? AND generation = ?`); whether it applied.
    async fn owner_cas(
        &self,
        statement: &PreparedStatement,
        shard: i32,
        owner: Uuid,
        generation: i64,
        published_to: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .session
            .execute_unpaged(
                statement,
                (now_micros(), published_to, shard, owner, generation),
            )
            .await
            .map_err(StoreError::db)?;
        applied(result)
    }

    /// Says `member` is alive for `ttl_secs`.
    pub async fn member_beat(&self, member: Uuid, ttl_secs: i32) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.leases.beat, (member, now_micros(), ttl_secs))
            .await
            .map_err(StoreError::db)?;
        Ok(())
    }

    /// Removes `member` at once (graceful shutdown).
    pub async fn member_leave(&self, member: Uuid) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.leases.leave, (member,))
            .await
            .map_err(StoreError::db)?;
        Ok(())
    }

    /// The members whose heartbeat has not expired.
    pub async fn members(&self) -> Result<Vec<Uuid>, StoreError> {
        let rows = self
            .session
            .execute_unpaged(&self.leases.members, &[])
            .await
            .map_err(StoreError::db)?
            .into_rows_result()
            .map_err(StoreError::corrupt)?;
        rows.rows::<(Uuid,)>()
            .map_err(StoreError::corrupt)?
            .map(|r| r.map(|(m,)| m).map_err(StoreError::corrupt))
            .collect()
    }

    /// Fences `shard`'s checkpoint to `generation` and returns its position:
    /// from now on only the holder of that generation can save it. `None`
    /// if a later generation already claimed it (our lease is gone) or the
    /// checkpoint row is missing.
    pub async fn claim_checkpoint(
        &self,
        shard: i32,
        generation: i64,
    ) -> Result<Option<i64>, StoreError> {
        let result = self
            .session
            .execute_unpaged(
                &self.leases.checkpoint_claim,
                (generation, shard, generation),
            )
            .await
            .map_err(StoreError::db)?;
        // Not applied either because the row is ours already (a retried
        // claim) or because a later owner claimed it: the read tells.
        let _ = applied(result)?;
        let row = self
            .session
            .execute_unpaged(&self.leases.checkpoint_read, (shard,))
            .await
            .map_err(StoreError::db)?
            .into_rows_result()
            .map_err(StoreError::corrupt)?
            .maybe_first_row::<(Option<i64>, Option<i64>)>()
            .map_err(StoreError::corrupt)?;
        Ok(match row {
            Some((Some(position), Some(g))) if g == generation => Some(position),
            _ => None,
        })
    }

    /// Saves `shard`'s checkpoint if `generation` still holds it; `false`:
    /// a later owner claimed it.
    pub async fn save_checkpoint(
        &self,
        shard: i32,
        generation: i64,
        position: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .session
            .execute_unpaged(
                &self.leases.checkpoint_save,
                (position, now_micros(), shard, generation),
            )
            .await
            .map_err(StoreError::db)?;
        applied(result)
    }
}
