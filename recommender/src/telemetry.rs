//! Every notable occurrence of the recommender, each in one named function
//! that logs it *and* counts it — in the process's Prometheus metrics
//! (`/metrics`) and in the [`Stats`] of the instance (what tests read).
//!
//! The consumer loop's own counters (events by outcome — `processed`,
//! `stale`, `duplicate`, `dlq` —, batches, cache degradation, consumer lag)
//! are the runtime's: `cinerec_stream_*{operator="recommender"}`.
//!
//! Metric names (seconds for durations, Prometheus conventions):
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | `recommender_late_events_total` | counter | |
//! | `recommender_cassandra_write_seconds` | histogram | `table` |
//! | `recommender_cassandra_retries_total` | counter | `table` |
//! | `recommender_event_latency_seconds` | histogram | Kafka record timestamp of the enriched record → its effects written |
//! | `recommender_review_latency_seconds` | histogram | review-svc accepted the review's version (`changed_at`, another host's clock) → its effects written: the whole pipeline |
//! | `recommender_model_reviews`, `recommender_model_likes`, `recommender_model_pairs` | gauge | |
//! | `recommender_rebuild_seconds` | gauge | |
//! | `recommender_refresh_seconds` | histogram | |
//! | `recommender_refresh_pending` | gauge | `kind` = `users`, `movies` |
//! | `recommender_changelog_records_total` | counter | `source` = `written` (this instance's batches), `read` (the replica follower) |
//! | `recommender_changelog_corrupt_total` | counter | |
//! | `recommender_serving_rows_total` | counter | `table`, `outcome` = `written`, `unchanged` (equal to the last value durably written: skipped) |
//! | `recommender_leases_total` | counter | `outcome` = `taken`, `failed`, `released` |
//! | `recommender_owned_partitions` | gauge | |

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Events behind the trending watermark (still applied to the like model).
pub const LATE_EVENTS_TOTAL: &str = "recommender_late_events_total";
/// One Cassandra write's latency (successful attempt).
pub const CASSANDRA_WRITE_SECONDS: &str = "recommender_cassandra_write_seconds";
/// Failed Cassandra write attempts (retried).
pub const CASSANDRA_RETRIES_TOTAL: &str = "recommender_cassandra_retries_total";
/// From the enriched record's Kafka timestamp to its effects written.
pub const EVENT_LATENCY_SECONDS: &str = "recommender_event_latency_seconds";
/// Review accepted by review-svc (`changed_at`) → its effects written.
pub const REVIEW_LATENCY_SECONDS: &str = "recommender_review_latency_seconds";
/// Reviews the model tracks (tombstones included).
pub const MODEL_REVIEWS: &str = "recommender_model_reviews";
/// (user, movie) likes.
pub const MODEL_LIKES: &str = "recommender_model_likes";
/// Movie pairs with `C > 0`.
pub const MODEL_PAIRS: &str = "recommender_model_pairs";
/// How long the last rebuild from `review_states` took.
pub const REBUILD_SECONDS: &str = "recommender_rebuild_seconds";
/// One refresh tick's duration.
pub const REFRESH_SECONDS: &str = "recommender_refresh_seconds";
/// Dirty users/movies left for later refresh ticks.
pub const REFRESH_PENDING: &str = "recommender_refresh_pending";
/// Changelog records written or read.
pub const CHANGELOG_RECORDS_TOTAL: &str = "recommender_changelog_records_total";
/// Changelog records that did not decode.
pub const CHANGELOG_CORRUPT_TOTAL: &str = "recommender_changelog_corrupt_total";
/// Serving rows by outcome of the flush.
pub const SERVING_ROWS_TOTAL: &str = "recommender_serving_rows_total";
/// Partition leases by outcome.
pub const LEASES_TOTAL: &str = "recommender_leases_total";
/// Partitions this instance owns (lease held).
pub const OWNED_PARTITIONS: &str = "recommender_owned_partitions";

/// Registers the counters at 0, so `/metrics` lists every outcome from the
/// start (a rate over a series that appears late misses its first events).
pub fn register() {
    metrics::counter!(LATE_EVENTS_TOTAL).increment(0);
    metrics::counter!(CHANGELOG_CORRUPT_TOTAL).increment(0);
}

/// Counts of one recommender instance's model and flushes (shared with its
/// handle; the loop's counts are the runtime's).
#[derive(Debug, Default)]
pub struct Stats {
    /// Events whose state advanced the model (in the changelog).
    pub applied: AtomicU64,
    /// Events whose state the model already had (or newer).
    pub stale: AtomicU64,
    /// Events behind the trending watermark.
    pub late: AtomicU64,
    /// Flushes completed.
    pub refreshes: AtomicU64,
    /// Flushes that ended with nothing left dirty.
    pub idle_refreshes: AtomicU64,
}

/// A point-in-time copy of the instance's counters: [`Stats`] and the
/// runtime's (duplicates, dead letters, batches, cache degraded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// See [`Stats::applied`].
    pub applied: u64,
    /// See [`Stats::stale`].
    pub stale: u64,
    /// Events skipped as done before (cache) or repeated within a batch.
    pub duplicates: u64,
    /// Records written to the DLQ.
    pub dlq: u64,
    /// See [`Stats::late`].
    pub late: u64,
    /// Events processed without the cache's full agreement.
    pub cache_degraded: u64,
    /// Batches finished.
    pub batches: u64,
    /// See [`Stats::refreshes`].
    pub refreshes: u64,
    /// See [`Stats::idle_refreshes`].
    pub idle_refreshes: u64,
}

impl StatsSnapshot {
    /// Every record handled one way or another.
    pub fn handled(&self) -> u64 {
        self.applied + self.stale + self.duplicates + self.dlq
    }
}

impl Stats {
    /// Reads the model's counters (the runtime's are 0 here).
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            applied: r(&self.applied),
            stale: r(&self.stale),
            late: r(&self.late),
            refreshes: r(&self.refreshes),
            idle_refreshes: r(&self.idle_refreshes),
            ..StatsSnapshot::default()
        }
    }
}

fn add(c: &AtomicU64, n: u64) {
    if n > 0 {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// Outcomes of one batch, counted together.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcomes {
    /// Advanced the model.
    pub applied: u64,
    /// Not newer than the model's state.
    pub stale: u64,
    /// Behind the trending watermark.
    pub late: u64,
}

/// A batch's events are applied (the runtime counts them by outcome too):
/// the instance's model counters, and late events.
pub fn events_done(stats: &Stats, o: Outcomes) {
    tracing::debug!(
        applied = o.applied,
        stale = o.stale,
        late = o.late,
        "batch applied"
    );
    if o.late > 0 {
        tracing::info!(events = o.late, "late events: not counted in trending");
        metrics::counter!(LATE_EVENTS_TOTAL).increment(o.late);
    }
    add(&stats.applied, o.applied);
    add(&stats.stale, o.stale);
    add(&stats.late, o.late);
}

/// One Cassandra write landed.
pub fn cassandra_write(table: &'static str, took: Duration) {
    metrics::histogram!(CASSANDRA_WRITE_SECONDS, "table" => table).record(took.as_secs_f64());
}

/// A Cassandra write failed and will be retried.
pub fn cassandra_retry(table: &'static str, failures: u32, error: &dyn std::fmt::Display) {
    tracing::warn!(table, failures, %error, "Cassandra write failed: retrying");
    metrics::counter!(CASSANDRA_RETRIES_TOTAL, "table" => table).increment(1);
}

/// An event's effects are written, `latency` after its Kafka timestamp.
pub fn event_latency(latency: Duration) {
    metrics::histogram!(EVENT_LATENCY_SECONDS).record(latency.as_secs_f64());
}

/// An event's effects are written, `latency` after review-svc accepted its
/// review's version.
pub fn review_latency(latency: Duration) {
    metrics::histogram!(REVIEW_LATENCY_SECONDS).record(latency.as_secs_f64());
}

/// The model's size.
pub fn model_size(reviews: usize, likes: usize, pairs: usize) {
    metrics::gauge!(MODEL_REVIEWS).set(reviews as f64);
    metrics::gauge!(MODEL_LIKES).set(likes as f64);
    metrics::gauge!(MODEL_PAIRS).set(pairs as f64);
}

/// The model was restored from the changelog (every partition, to the end seen at start).
pub fn rebuilt(reviews: u64, took: Duration) {
    tracing::info!(
        reviews,
        took_ms = took.as_millis() as u64,
        "model restored from the changelog"
    );
    metrics::gauge!(REBUILD_SECONDS).set(took.as_secs_f64());
}

/// A refresh tick finished.
pub fn refreshed(stats: &Stats, users: usize, movies: usize, left: (usize, usize), took: Duration) {
    tracing::debug!(
        users,
        movies,
        users_left = left.0,
        movies_left = left.1,
        took_ms = took.as_millis() as u64,
        "refresh"
    );
    metrics::histogram!(REFRESH_SECONDS).record(took.as_secs_f64());
    metrics::gauge!(REFRESH_PENDING, "kind" => "users").set(left.0 as f64);
    metrics::gauge!(REFRESH_PENDING, "kind" => "movies").set(left.1 as f64);
    add(&stats.refreshes, 1);
    if left == (0, 0) {
        add(&stats.idle_refreshes, 1);
    }
}

/// Changelog records this instance's batches wrote (`bytes` encoded).
pub fn changelog_written(records: usize, bytes: usize) {
    metrics::counter!(CHANGELOG_RECORDS_TOTAL, "source" => "written").increment(records as u64);
    tracing::trace!(records, bytes, "changelog records written");
}

/// A changelog record read by the replica follower.
pub fn changelog_read(records: u64) {
    metrics::counter!(CHANGELOG_RECORDS_TOTAL, "source" => "read").increment(records);
}

/// A changelog record that did not decode (skipped: its writer only writes
/// what it decoded, so this is outside interference; counted and logged).
pub fn changelog_corrupt(partition: i32, offset: i64, error: &str) {
    tracing::error!(
        partition,
        offset,
        error,
        "changelog record undecodable: skipped"
    );
    metrics::counter!(CHANGELOG_CORRUPT_TOTAL).increment(1);
}

/// A flush wrote `written` rows of `table` and skipped `unchanged` rows whose
/// value equals the last one durably written.
pub fn serving_rows(table: &'static str, written: u64, unchanged: u64) {
    if written > 0 {
        metrics::counter!(SERVING_ROWS_TOTAL, "table" => table, "outcome" => "written")
            .increment(written);
    }
    if unchanged > 0 {
        metrics::counter!(SERVING_ROWS_TOTAL, "table" => table, "outcome" => "unchanged")
            .increment(unchanged);
    }
}

/// A partition's lease was taken (its serving rows are this instance's now).
pub fn lease_taken(partition: i32, generation: i64, owned: usize) {
    tracing::info!(partition, generation, owned, "partition lease taken");
    metrics::counter!(LEASES_TOTAL, "outcome" => "taken").increment(1);
    metrics::gauge!(OWNED_PARTITIONS).set(owned as f64);
}

/// Taking a lease failed (retried at the next flush).
pub fn lease_failed(partition: i32, error: &dyn std::fmt::Display) {
    tracing::warn!(partition, %error, "partition lease not taken: retrying");
    metrics::counter!(LEASES_TOTAL, "outcome" => "failed").increment(1);
}

/// A revoked partition's rows were drained and its lease let go.
pub fn lease_released(partition: i32, drained_rows: usize, owned: usize) {
    tracing::info!(
        partition,
        drained_rows,
        owned,
        "partition revoked: drained, lease released"
    );
    metrics::counter!(LEASES_TOTAL, "outcome" => "released").increment(1);
    metrics::gauge!(OWNED_PARTITIONS).set(owned as f64);
}
