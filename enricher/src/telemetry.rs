//! Every notable occurrence of the enricher, each in one named function that
//! logs it *and* counts it — in the process's Prometheus metrics (`/metrics`)
//! and in the [`Stats`] of the enricher instance (what tests and readiness
//! read).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use uuid::Uuid;

/// Counter of events by outcome: `outcome` = `processed`, `duplicate`,
/// `not_found`, `dlq`.
pub const EVENTS_TOTAL: &str = "cinerec_enricher_events_total";
/// Claims that went ahead without the cache's full agreement.
pub const CACHE_DEGRADED_TOTAL: &str = "cinerec_enricher_cache_degraded_total";
/// Seconds from a batch's first poll to its offsets being stored.
pub const BATCH_SECONDS: &str = "cinerec_enricher_batch_seconds";
/// Events per batch.
pub const BATCH_EVENTS: &str = "cinerec_enricher_batch_events";
/// Claim attempts that found the event in flight at another consumer.
pub const HELD_ELSEWHERE_TOTAL: &str = "cinerec_enricher_held_elsewhere_total";
/// RPC or produce attempts that failed and will be retried.
pub const RETRIES_TOTAL: &str = "cinerec_enricher_retries_total";
/// Offsets that could not be stored (partition revoked meanwhile).
pub const OFFSET_STORE_FAILURES_TOTAL: &str = "cinerec_enricher_offset_store_failures_total";
/// Consumer lag of the source topic per `partition` (records between the
/// high watermark and this consumer's position), every statistics report.
pub const CONSUMER_LAG: &str = "cinerec_enricher_consumer_lag";
/// Seconds from handing an enriched record to the producer to its
/// acknowledgement by Kafka (`acks=all`), by `outcome` = `ok` or `error`.
pub const PRODUCE_SECONDS: &str = "cinerec_enricher_produce_seconds";

/// Counts of one enricher instance (shared with its handle).
#[derive(Debug, Default)]
pub struct Stats {
    /// Events whose EnrichedReview was produced.
    pub processed: AtomicU64,
    /// Events skipped because their event_id was already done (or twice in one batch).
    pub duplicates: AtomicU64,
    /// Events whose review does not exist.
    pub not_found: AtomicU64,
    /// Events sent to the DLQ.
    pub dlq: AtomicU64,
    /// Events processed although the cache could not fully record the claim.
    pub cache_degraded: AtomicU64,
    /// Claim attempts that found an event in flight at another consumer.
    pub held_elsewhere: AtomicU64,
    /// Batches completed.
    pub batches: AtomicU64,
}

/// A point-in-time copy of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// See [`Stats::processed`].
    pub processed: u64,
    /// See [`Stats::duplicates`].
    pub duplicates: u64,
    /// See [`Stats::not_found`].
    pub not_found: u64,
    /// See [`Stats::dlq`].
    pub dlq: u64,
    /// See [`Stats::cache_degraded`].
    pub cache_degraded: u64,
    /// See [`Stats::held_elsewhere`].
    pub held_elsewhere: u64,
    /// See [`Stats::batches`].
    pub batches: u64,
}

impl Stats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            processed: r(&self.processed),
            duplicates: r(&self.duplicates),
            not_found: r(&self.not_found),
            dlq: r(&self.dlq),
            cache_degraded: r(&self.cache_degraded),
            held_elsewhere: r(&self.held_elsewhere),
            batches: r(&self.batches),
        }
    }
}

/// Registers every outcome of [`EVENTS_TOTAL`] at 0, so a DLQ or skip rate
/// is defined (0) before the first such event instead of missing.
pub fn register_event_outcomes() {
    for outcome in ["processed", "duplicate", "not_found", "dlq"] {
        metrics::counter!(EVENTS_TOTAL, "outcome" => outcome).increment(0);
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// An EnrichedReview was produced for `event_id`.
pub fn processed(stats: &Arc<Stats>, event_id: Uuid, review_id: Uuid, version: i64) {
    tracing::debug!(%event_id, %review_id, version, "enriched");
    metrics::counter!(EVENTS_TOTAL, "outcome" => "processed").increment(1);
    bump(&stats.processed);
}

/// `event_id` was already done (cache) or seen earlier in the same batch.
pub fn duplicate_skipped(stats: &Arc<Stats>) {
    tracing::debug!("duplicate event skipped");
    metrics::counter!(EVENTS_TOTAL, "outcome" => "duplicate").increment(1);
    bump(&stats.duplicates);
}

/// review-svc does not know the review of `event_id`.
pub fn review_not_found(stats: &Arc<Stats>, event_id: Uuid, review_id: Uuid) {
    tracing::info!(%event_id, %review_id, "review not found, event skipped");
    metrics::counter!(EVENTS_TOTAL, "outcome" => "not_found").increment(1);
    bump(&stats.not_found);
}

/// A record went to the DLQ.
pub fn sent_to_dlq(stats: &Arc<Stats>, partition: i32, offset: i64, error: &str, attempts: u32) {
    tracing::warn!(partition, offset, attempts, error, "event sent to the DLQ");
    metrics::counter!(EVENTS_TOTAL, "outcome" => "dlq").increment(1);
    bump(&stats.dlq);
}

/// The cache could not fully record a claim; the event is processed anyway.
pub fn cache_degraded(stats: &Arc<Stats>, events: usize, why: &str) {
    tracing::warn!(events, why, "idempotency cache degraded: processing anyway");
    metrics::counter!(CACHE_DEGRADED_TOTAL).increment(events as u64);
    stats
        .cache_degraded
        .fetch_add(events as u64, Ordering::Relaxed);
}

/// Events of the batch are in flight at another consumer: the batch waits
/// for their claims (done, or expired after the in-flight TTL).
pub fn held_elsewhere(stats: &Arc<Stats>, events: usize) {
    tracing::info!(
        events,
        "events in flight elsewhere: waiting for their claims"
    );
    metrics::counter!(HELD_ELSEWHERE_TOTAL).increment(events as u64);
    stats
        .held_elsewhere
        .fetch_add(events as u64, Ordering::Relaxed);
}

/// The batch claim's reports ([`cinerec_cache::Cache::claim_batch`]),
/// counted as above.
#[derive(Debug)]
pub struct ClaimEvents<'a>(pub &'a Arc<Stats>);

impl cinerec_cache::BatchEvents for ClaimEvents<'_> {
    fn degraded(&self, keys: usize, why: cinerec_cache::DegradedBy) {
        cache_degraded(self.0, keys, why.as_str());
    }
    fn held_elsewhere(&self, keys: usize) {
        held_elsewhere(self.0, keys);
    }
}

/// An attempt failed and will be retried after a backoff.
pub fn retrying(what: &str, failures: u32, error: &str) {
    tracing::warn!(what, failures, error, "retrying");
    metrics::counter!(RETRIES_TOTAL, "what" => what.to_owned()).increment(1);
}

/// A batch finished: offsets stored.
pub fn batch_done(stats: &Arc<Stats>, events: usize, took: Duration) {
    tracing::debug!(events, took_ms = took.as_millis() as u64, "batch done");
    metrics::histogram!(BATCH_SECONDS).record(took.as_secs_f64());
    metrics::histogram!(BATCH_EVENTS).record(events as f64);
    bump(&stats.batches);
}

/// An offset could not be stored (its partition moved away meanwhile: the
/// new owner redoes the event, which the cache turns into a skip).
pub fn offset_store_failed(partition: i32, offset: i64, error: &dyn std::fmt::Display) {
    tracing::info!(partition, offset, %error, "offset not stored");
    metrics::counter!(OFFSET_STORE_FAILURES_TOTAL).increment(1);
}

/// Kafka answered one produce of an enriched record after `took`.
pub fn produce_answered(took: Duration, acknowledged: bool) {
    let outcome = if acknowledged { "ok" } else { "error" };
    metrics::histogram!(PRODUCE_SECONDS, "outcome" => outcome).record(took.as_secs_f64());
}
