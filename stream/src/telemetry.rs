//! Every notable occurrence of the runtime, each in one named function that
//! logs it *and* counts it — in the process's Prometheus metrics, labelled
//! with the operator's name, and in the runtime's [`Stats`] (what tests and
//! callers read through a [`Handle`](crate::Handle)).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Records polled from the source topic, by `operator`.
pub const RECORDS_TOTAL: &str = "cinerec_stream_records_total";
/// Events by `operator` and `outcome` = `processed`, `duplicate`, `dlq`, or
/// a skip reason the operator gave (`not_found`, `stale`, ...).
pub const EVENTS_TOTAL: &str = "cinerec_stream_events_total";
/// Events handed to the operator without the cache's full agreement.
pub const CACHE_DEGRADED_TOTAL: &str = "cinerec_stream_cache_degraded_total";
/// Claim attempts that found the event in flight at another consumer.
pub const HELD_ELSEWHERE_TOTAL: &str = "cinerec_stream_held_elsewhere_total";
/// Batches finished (offsets stored).
pub const BATCHES_TOTAL: &str = "cinerec_stream_batches_total";
/// Batches abandoned at shutdown (claims released, no offset stored).
pub const ABANDONED_TOTAL: &str = "cinerec_stream_abandoned_batches_total";
/// Seconds from a batch's first record to its offsets being stored.
pub const BATCH_SECONDS: &str = "cinerec_stream_batch_seconds";
/// Records per batch.
pub const BATCH_EVENTS: &str = "cinerec_stream_batch_events";
/// Dead-letter writes that failed and will be retried.
pub const DLQ_RETRIES_TOTAL: &str = "cinerec_stream_dlq_retries_total";
/// Offsets that could not be stored (partition revoked meanwhile).
pub const OFFSET_STORE_FAILURES_TOTAL: &str = "cinerec_stream_offset_store_failures_total";
/// Consumer lag of the source topic per `operator` and `partition`, every
/// librdkafka statistics report (1 s).
pub const CONSUMER_LAG: &str = "cinerec_stream_consumer_lag";

/// Counts of one runtime instance (shared with its handles).
#[derive(Debug, Default)]
pub struct Stats {
    records: AtomicU64,
    processed: AtomicU64,
    skipped: AtomicU64,
    duplicates: AtomicU64,
    dlq: AtomicU64,
    cache_degraded: AtomicU64,
    held_elsewhere: AtomicU64,
    batches: AtomicU64,
    abandoned: AtomicU64,
}

/// A point-in-time copy of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Records polled.
    pub records: u64,
    /// Events whose effect the operator reported [`Done`](crate::Outcome::Done).
    pub processed: u64,
    /// Events the operator [`Skipped`](crate::Outcome::Skipped).
    pub skipped: u64,
    /// Events skipped as done before, or repeated within a batch.
    pub duplicates: u64,
    /// Records written to the DLQ (undecodable, or dead in the operator).
    pub dlq: u64,
    /// Events handed over without the cache's full agreement.
    pub cache_degraded: u64,
    /// Claim attempts that found an event in flight elsewhere.
    pub held_elsewhere: u64,
    /// Batches finished.
    pub batches: u64,
    /// Batches abandoned at shutdown.
    pub abandoned: u64,
}

impl Stats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            records: r(&self.records),
            processed: r(&self.processed),
            skipped: r(&self.skipped),
            duplicates: r(&self.duplicates),
            dlq: r(&self.dlq),
            cache_degraded: r(&self.cache_degraded),
            held_elsewhere: r(&self.held_elsewhere),
            batches: r(&self.batches),
            abandoned: r(&self.abandoned),
        }
    }
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Registers the fixed outcomes of [`EVENTS_TOTAL`] and the operator's skip
/// reasons at 0, so a DLQ or
/// duplicate rate is defined (0) before the first such event.
pub(crate) fn register(operator: &'static str, skip_reasons: &[&'static str]) {
    for &outcome in ["processed", "duplicate", "dlq"].iter().chain(skip_reasons) {
        metrics::counter!(EVENTS_TOTAL, "operator" => operator, "outcome" => outcome).increment(0);
    }
}

/// A batch of `n` records was polled.
pub(crate) fn polled(stats: &Stats, operator: &'static str, n: usize) {
    metrics::counter!(RECORDS_TOTAL, "operator" => operator).increment(n as u64);
    add(&stats.records, n as u64);
}

/// The operator finished `n` events.
pub(crate) fn processed(stats: &Stats, operator: &'static str, n: usize) {
    if n == 0 {
        return;
    }
    tracing::debug!(operator, events = n, "processed");
    metrics::counter!(EVENTS_TOTAL, "operator" => operator, "outcome" => "processed")
        .increment(n as u64);
    add(&stats.processed, n as u64);
}

/// The operator skipped an event for `reason`.
pub(crate) fn skipped(stats: &Stats, operator: &'static str, key: &str, reason: &'static str) {
    tracing::debug!(operator, key, reason, "event skipped");
    metrics::counter!(EVENTS_TOTAL, "operator" => operator, "outcome" => reason).increment(1);
    add(&stats.skipped, 1);
}

/// `n` events were done before (cache) or repeated within their batch.
pub(crate) fn duplicates(stats: &Stats, operator: &'static str, n: usize) {
    if n == 0 {
        return;
    }
    tracing::debug!(operator, events = n, "duplicate events skipped");
    metrics::counter!(EVENTS_TOTAL, "operator" => operator, "outcome" => "duplicate")
        .increment(n as u64);
    add(&stats.duplicates, n as u64);
}

/// A record went to the DLQ.
pub(crate) fn sent_to_dlq(
    stats: &Stats,
    operator: &'static str,
    partition: i32,
    offset: i64,
    error: &str,
    attempts: u32,
) {
    tracing::warn!(
        operator,
        partition,
        offset,
        attempts,
        error,
        "record sent to the DLQ"
    );
    metrics::counter!(EVENTS_TOTAL, "operator" => operator, "outcome" => "dlq").increment(1);
    add(&stats.dlq, 1);
}

/// A dead-letter write failed and will be retried.
pub(crate) fn dlq_retrying(operator: &'static str, failures: u32, error: &str) {
    tracing::warn!(
        operator,
        failures,
        error,
        "dead-letter write failed: retrying"
    );
    metrics::counter!(DLQ_RETRIES_TOTAL, "operator" => operator).increment(1);
}

/// The cache could not fully record `events` claims: processed anyway.
pub(crate) fn cache_degraded(stats: &Stats, operator: &'static str, events: usize, why: &str) {
    tracing::warn!(
        operator,
        events,
        why,
        "idempotency cache degraded: processing anyway"
    );
    metrics::counter!(CACHE_DEGRADED_TOTAL, "operator" => operator).increment(events as u64);
    add(&stats.cache_degraded, events as u64);
}

/// `events` of the batch are in flight at another consumer: the batch
/// waits for their claims (done, or expired after the in-flight TTL).
pub(crate) fn held_elsewhere(stats: &Stats, operator: &'static str, events: usize) {
    tracing::info!(
        operator,
        events,
        "events in flight elsewhere: waiting for their claims"
    );
    metrics::counter!(HELD_ELSEWHERE_TOTAL, "operator" => operator).increment(events as u64);
    add(&stats.held_elsewhere, events as u64);
}

/// The batch claim's reports ([`cinerec_cache::Cache::claim_batch`]),
/// counted as above.
pub(crate) struct ClaimEvents<'a> {
    pub(crate) stats: &'a Stats,
    pub(crate) operator: &'static str,
}

impl cinerec_cache::BatchEvents for ClaimEvents<'_> {
    fn degraded(&self, keys: usize, why: cinerec_cache::DegradedBy) {
        cache_degraded(self.stats, self.operator, keys, why.as_str());
    }
    fn held_elsewhere(&self, keys: usize) {
        held_elsewhere(self.stats, self.operator, keys);
    }
}

/// A batch finished: offsets stored.
pub(crate) fn batch_done(stats: &Stats, operator: &'static str, records: usize, took: Duration) {
    tracing::debug!(
        operator,
        records,
        took_ms = took.as_millis() as u64,
        "batch done"
    );
    metrics::counter!(BATCHES_TOTAL, "operator" => operator).increment(1);
    metrics::histogram!(BATCH_SECONDS, "operator" => operator).record(took.as_secs_f64());
    metrics::histogram!(BATCH_EVENTS, "operator" => operator).record(records as f64);
    add(&stats.batches, 1);
}

/// Shutdown interrupted a batch (`during`: the claim wait or the effect).
pub(crate) fn abandoned(stats: &Stats, operator: &'static str, records: usize, during: &str) {
    tracing::info!(
        operator,
        records,
        during,
        "shutdown: batch abandoned (its claims released), offsets not stored"
    );
    metrics::counter!(ABANDONED_TOTAL, "operator" => operator).increment(1);
    add(&stats.abandoned, 1);
}

/// The done markers of a batch were not (fully) written: a redelivery
/// redoes the (idempotent) effect.
pub(crate) fn done_markers_missed(operator: &'static str, events: usize, why: &str) {
    tracing::warn!(operator, events, why, "done markers not fully written");
}

/// An offset could not be stored (its partition moved away meanwhile: the
/// new owner redoes the event, which the cache turns into a skip).
pub(crate) fn offset_store_failed(
    operator: &'static str,
    partition: i32,
    offset: i64,
    error: &dyn std::fmt::Display,
) {
    tracing::info!(operator, partition, offset, %error, "offset not stored");
    metrics::counter!(OFFSET_STORE_FAILURES_TOTAL, "operator" => operator).increment(1);
}
