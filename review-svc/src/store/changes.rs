//! The transactional outbox as the CDC relay reads it: change rows by
//! shard and time bucket, one change by key (to chase a missing
//! predecessor), and each shard's checkpoint.

use futures::TryStreamExt;
use uuid::Uuid;

use super::{ReviewStore, StoreError, bucket_of};

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

impl ReviewStore {
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
}
