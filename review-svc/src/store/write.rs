//! Creates and edits: reserve the next version on the review's head (an LWT
//! where a race can happen), then commit the version, its change row and
//! the head's `committed` marker in one logged batch; an `Idempotency-Key`
//! replays the write it first answered.

use std::time::{Duration, Instant};

use cinerec_backoff::ExponentialBackoff;
use cinerec_service_kit::clock::now_micros;
use scylla::statement::batch::{Batch, BatchType};
use scylla::value::{CqlValue, Row};
use uuid::Uuid;

use super::{
    IDEMPOTENT_ID_NAMESPACE, MAX_WRITE_ATTEMPTS, RESERVATION_LEASE_MICROS, ReviewStore, StoreError,
    WRITE_TIMEOUT, bucket_of, shard_of,
};
use crate::model::{Content, Op, Review};
use crate::telemetry;

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

/// What a write returns.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// The review as written (or as found, on a replay).
    pub review: Review,
    /// Whether an earlier write with the same `Idempotency-Key` answered.
    pub replayed: bool,
}

/// A stable digest of a write request, to tell a retry from a different
/// request that reuses its `Idempotency-Key`.
fn request_hash(parts: &str) -> String {
    Uuid::new_v5(&IDEMPOTENT_ID_NAMESPACE, parts.as_bytes()).to_string()
}

pub(super) fn applied(
    result: scylla::response::query_result::QueryResult,
) -> Result<bool, StoreError> {
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
                telemetry::idempotent_replay(review_id);
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
                telemetry::idempotent_replay(review_id);
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
                None => telemetry::version_contended(review_id),
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
            telemetry::stale_reservation_taken_over(review_id, head.version);
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
        telemetry::review_written(res.op, started.elapsed());
        // A relay in this process publishes it now, not at its next poll.
        if let Some(signal) = usize::try_from(shard_of(res.review_id))
            .ok()
            .and_then(|i| self.committed.get(i))
        {
            signal.notify_one();
        }
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
    telemetry::version_contended(review_id);
    let wait = CONTENDED_BACKOFF.with_added_jitter(attempt.saturating_add(1), CONTENDED_JITTER);
    tokio::time::sleep(wait).await;
}
