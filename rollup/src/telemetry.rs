//! Every notable occurrence of the sink, each in one named function that logs
//! it *and* counts it: in the process's Prometheus metrics (`/metrics`) and in
//! the [`Stats`] of the instance (what tests read).

use std::sync::atomic::{AtomicU64, Ordering};

use cinerec_events::EnrichedReview;

use crate::aggregate::Invalid;

/// Events by outcome: `applied`, `duplicate`, `invalid`, `undecodable`.
pub const EVENTS_TOTAL: &str = "cinerec_rollup_events_total";
/// Batch transactions that failed and will be retried.
pub const DB_RETRIES_TOTAL: &str = "cinerec_rollup_db_retries_total";
/// Seconds of a batch's transaction (its retries included).
pub const BATCH_SECONDS: &str = "cinerec_rollup_batch_seconds";
/// Snapshots of the recommender's tables by outcome: `ok`, `error`.
pub const SNAPSHOTS_TOTAL: &str = "cinerec_rollup_snapshots_total";
/// When the last snapshot was written (seconds since the epoch).
pub const LAST_SNAPSHOT_SECONDS: &str = "cinerec_rollup_last_snapshot_timestamp_seconds";
/// Counts of one sink instance.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events added to the rollups.
    pub applied: AtomicU64,
    /// Events skipped as already applied.
    pub duplicates: AtomicU64,
    /// Events failing validation.
    pub invalid: AtomicU64,
    /// Messages that are no EnrichedReview.
    pub undecodable: AtomicU64,
    /// Snapshots written.
    pub snapshots: AtomicU64,
    /// Snapshots that failed.
    pub snapshot_errors: AtomicU64,
}

impl Stats {
    /// A relaxed read of one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A batch was committed.
pub fn batch_applied(stats: &Stats, applied: u64, duplicates: u64, seconds: f64) {
    stats.applied.fetch_add(applied, Ordering::Relaxed);
    stats.duplicates.fetch_add(duplicates, Ordering::Relaxed);
    metrics::counter!(EVENTS_TOTAL, "outcome" => "applied").increment(applied);
    metrics::counter!(EVENTS_TOTAL, "outcome" => "duplicate").increment(duplicates);
    metrics::histogram!(BATCH_SECONDS).record(seconds);
    if duplicates > 0 {
        tracing::info!(duplicates, "skipped events already rolled up");
    }
    tracing::debug!(applied, duplicates, "batch rolled up");
}

/// An event failed validation (logged here, counted when its batch commits).
pub fn invalid_event(event: &EnrichedReview, why: &Invalid) {
    tracing::warn!(event_id = %event.event_id, reason = %why, "invalid enriched review skipped");
}

/// Invalid events of a committed batch.
pub fn invalid_counted(stats: &Stats, n: u64) {
    stats.invalid.fetch_add(n, Ordering::Relaxed);
    metrics::counter!(EVENTS_TOTAL, "outcome" => "invalid").increment(n);
}

/// A message could not be decoded (the runtime writes it to the DLQ).
pub fn undecodable(stats: &Stats, partition: i32, offset: i64, error: &dyn std::fmt::Display) {
    stats.undecodable.fetch_add(1, Ordering::Relaxed);
    metrics::counter!(EVENTS_TOTAL, "outcome" => "undecodable").increment(1);
    tracing::warn!(partition, offset, error = %error, "undecodable message: to the DLQ");
}

/// A batch transaction failed; it is retried after `backoff_ms`.
pub fn db_retry(error: &anyhow::Error, backoff_ms: u64) {
    metrics::counter!(DB_RETRIES_TOTAL).increment(1);
    tracing::warn!(error = %error, backoff_ms, "rollup transaction failed, retrying");
}

/// A snapshot was written.
pub fn snapshot_written(stats: &Stats, at_us: i64, movies: usize, genres: usize, malformed: u64) {
    stats.snapshots.fetch_add(1, Ordering::Relaxed);
    metrics::counter!(SNAPSHOTS_TOTAL, "outcome" => "ok").increment(1);
    metrics::gauge!(LAST_SNAPSHOT_SECONDS).set(at_us as f64 / 1e6);
    if malformed > 0 {
        tracing::warn!(malformed, "snapshot rows with lists of unequal length");
    }
    tracing::debug!(movies, genres, "snapshot written");
}

/// A snapshot failed (recommender not up yet, Cassandra or the database down).
pub fn snapshot_failed(stats: &Stats, error: &anyhow::Error) {
    stats.snapshot_errors.fetch_add(1, Ordering::Relaxed);
    metrics::counter!(SNAPSHOTS_TOTAL, "outcome" => "error").increment(1);
    tracing::warn!(error = %error, "snapshot failed; next interval retries");
}
