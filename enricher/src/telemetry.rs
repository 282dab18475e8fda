//! The enricher's own notable occurrences, each in one named function that
//! logs it *and* counts it in the process's Prometheus metrics (`/metrics`).
//! Events by outcome, duplicates, the DLQ, cache degradation, batches and
//! consumer lag are the runtime's (`cinerec_stream_*{operator="enricher"}`,
//! [`cinerec_stream::telemetry`]).

use std::time::Duration;

use uuid::Uuid;

/// RPC or produce attempts that failed and will be retried.
pub const RETRIES_TOTAL: &str = "cinerec_enricher_retries_total";
/// Seconds from handing an enriched record to the producer to its
/// acknowledgement by Kafka (`acks=all`), by `outcome` = `ok` or `error`.
pub const PRODUCE_SECONDS: &str = "cinerec_enricher_produce_seconds";

/// review-svc does not know the review of `event_id`: skipped (counted by
/// the runtime as `outcome="not_found"`).
pub fn review_not_found(event_id: Uuid, review_id: Uuid) {
    tracing::info!(%event_id, %review_id, "review not found, event skipped");
}

/// An attempt failed and will be retried after a backoff.
pub fn retrying(what: &str, failures: u32, error: &str) {
    tracing::warn!(what, failures, error, "retrying");
    metrics::counter!(RETRIES_TOTAL, "what" => what.to_owned()).increment(1);
}

/// Kafka answered one produce of an enriched record after `took`.
pub fn produce_answered(took: Duration, acknowledged: bool) {
    let outcome = if acknowledged { "ok" } else { "error" };
    metrics::histogram!(PRODUCE_SECONDS, "outcome" => outcome).record(took.as_secs_f64());
}
