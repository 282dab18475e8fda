//! Every notable occurrence of review-svc, each in one named function that
//! both logs and counts, so a dashboard and the logs never disagree (the
//! Vector `internal_events` pattern). Metric names are the public contract
//! of this module.

use std::time::Duration;

use uuid::Uuid;

use crate::model::Op;

/// A request refused with a 4xx; `code` is the JSON `error` field.
pub fn request_rejected(code: &'static str, status: u16, reason: &str) {
    tracing::debug!(code, status, reason, "request rejected");
    metrics::counter!("review_svc_requests_rejected_total", "code" => code).increment(1);
}

/// A request that failed on our side or a dependency's (5xx).
pub fn request_failed(code: &'static str, error: &dyn std::fmt::Display) {
    tracing::warn!(code, %error, "request failed");
    metrics::counter!("review_svc_requests_failed_total", "code" => code).increment(1);
}

/// The API server closed a connection that sat idle, or that started a
/// request head and did not finish it in time (`reason`: `idle_timeout`,
/// `header_timeout`).
pub fn http_connection_closed(reason: &'static str) {
    tracing::debug!(reason, "API connection closed");
    metrics::counter!("review_svc_http_connections_closed_total", "reason" => reason).increment(1);
    if reason == "header_timeout" {
        metrics::counter!("review_svc_requests_rejected_total", "code" => reason).increment(1);
    }
}

/// user-svc or movie-svc could not answer an existence check (down,
/// deadline passed, or a system error): the request fails with 503.
pub fn directory_unavailable(dependency: &'static str, addr: &str, error: &dyn std::fmt::Display) {
    tracing::warn!(dependency, %addr, %error, "directory dependency unavailable");
    metrics::counter!("review_svc_directory_unavailable_total", "dependency" => dependency)
        .increment(1);
}

/// A review version accepted and durably stored with its change record.
pub fn review_written(op: Op, latency: Duration) {
    metrics::counter!("review_svc_writes_total", "op" => op.as_str()).increment(1);
    metrics::histogram!("review_svc_write_seconds", "op" => op.as_str())
        .record(latency.as_secs_f64());
}

/// A write answered from an earlier one with the same `Idempotency-Key`.
pub fn idempotent_replay(review_id: Uuid) {
    tracing::info!(%review_id, "idempotent replay");
    metrics::counter!("review_svc_idempotent_replays_total").increment(1);
}

/// A writer found another write of the same review in flight and waited.
pub fn version_contended(review_id: Uuid) {
    tracing::debug!(%review_id, "version counter contended");
    metrics::counter!("review_svc_version_contention_total").increment(1);
}

/// A writer took over a reservation whose writer died before committing.
pub fn stale_reservation_taken_over(review_id: Uuid, version: i64) {
    tracing::warn!(%review_id, version, "took over a stale version reservation");
    metrics::counter!("review_svc_stale_reservations_total").increment(1);
}

/// Changes published and acknowledged by Kafka; `lag` from `changed_at` to ack.
pub fn changes_published(shard: i32, count: usize, lags: impl Iterator<Item = Duration>) {
    metrics::counter!("review_svc_relay_published_total").increment(count as u64);
    let histogram = metrics::histogram!("review_svc_cdc_lag_seconds");
    for lag in lags {
        histogram.record(lag.as_secs_f64());
    }
    tracing::trace!(shard, count, "changes published");
}

/// Kafka answered one send of the relay after `took` (from handing it to
/// the producer), acknowledging it (`acks=all`) or not.
pub fn produce_answered(took: Duration, acknowledged: bool) {
    let outcome = if acknowledged { "ok" } else { "error" };
    metrics::histogram!("review_svc_relay_produce_seconds", "outcome" => outcome)
        .record(took.as_secs_f64());
}

/// Kafka refused or timed out a change; the relay rewinds to its checkpoint.
pub fn publish_failed(shard: i32, error: &dyn std::fmt::Display) {
    tracing::warn!(shard, %error, "publishing a change failed; rewinding to the checkpoint");
    metrics::counter!("review_svc_relay_publish_failures_total").increment(1);
}

/// The sweep found a change the fast path had not seen (it landed after a
/// younger row had been read). Normal under load; a high rate means slow writes.
pub fn late_change_found(shard: i32, review_id: Uuid, version: i64) {
    tracing::debug!(shard, %review_id, version, "late change found by the sweep");
    metrics::counter!("review_svc_relay_late_changes_total").increment(1);
}

/// A change whose predecessor was not yet published was held back while the
/// predecessor was fetched and published first (keeps per-review order).
pub fn predecessor_published_first(review_id: Uuid, version: i64) {
    tracing::debug!(%review_id, version, "predecessor published first");
    metrics::counter!("review_svc_relay_predecessor_chases_total").increment(1);
}

/// A change's predecessor could not be found (its writer died between
/// reserving the version and committing it): published without it.
pub fn predecessor_missing(review_id: Uuid, version: i64) {
    tracing::info!(%review_id, version, "predecessor of a change not found; publishing without it");
    metrics::counter!("review_svc_relay_predecessor_missing_total").increment(1);
}

/// A change-log row that cannot become an event (unknown op): sent to the
/// DLQ topic with the reason, loudly.
pub fn change_row_invalid(shard: i32, review_id: Uuid, version: i64, reason: &str) {
    tracing::error!(shard, %review_id, version, reason, "invalid change-log row sent to the DLQ");
    metrics::counter!("review_svc_relay_invalid_rows_total").increment(1);
}

/// The relay could not read the change log or save its checkpoint; retried.
pub fn relay_store_error(shard: i32, error: &dyn std::fmt::Display) {
    tracing::warn!(shard, %error, "change-log read or checkpoint failed; retrying");
    metrics::counter!("review_svc_relay_store_errors_total").increment(1);
}

/// The checkpoint of a shard moved.
pub fn checkpoint_saved(shard: i32, position: i64) {
    tracing::trace!(shard, position, "checkpoint saved");
    metrics::gauge!("review_svc_relay_checkpoint_age_seconds", "shard" => shard.to_string())
        .set((cinerec_service_kit::clock::now_micros() - position) as f64 / 1e6);
}

/// This relay replica took (`true`) or gave up a shard's lease: the gauge
/// `review_svc_relay_shards_owned` counts the leases it holds.
pub fn shard_ownership(owned: bool) {
    let gauge = metrics::gauge!("review_svc_relay_shards_owned");
    if owned {
        gauge.increment(1.0);
    } else {
        gauge.decrement(1.0);
    }
}

/// This replica took a shard's lease. `takeover`: from an owner that never
/// released it (it died or hung), after the lease TTL; otherwise the shard
/// was free (first start, or a graceful hand-over).
pub fn lease_taken(shard: i32, generation: i64, takeover: bool) {
    if takeover {
        tracing::warn!(shard, generation, "took over an expired shard lease");
        metrics::counter!("review_svc_relay_lease_takeovers_total").increment(1);
    } else {
        tracing::info!(shard, generation, "took a free shard lease");
    }
    metrics::counter!("review_svc_relay_leases_taken_total").increment(1);
}

/// This replica lost a shard's lease without giving it up (another replica
/// took it, or renewals failed until it was past due): it stopped
/// publishing the shard.
pub fn lease_lost(shard: i32, generation: i64, why: &str) {
    tracing::warn!(
        shard,
        generation,
        why,
        "shard lease lost; stopped publishing it"
    );
    metrics::counter!("review_svc_relay_lease_losses_total").increment(1);
}

/// This replica gave a shard's lease up (rebalancing or shutdown).
pub fn lease_released(shard: i32, generation: i64) {
    tracing::info!(shard, generation, "shard lease released");
    metrics::counter!("review_svc_relay_leases_released_total").increment(1);
}

/// A lease or membership statement failed (Cassandra slow or down); leases
/// not renewed in time expire and their shards stop.
pub fn lease_store_error(error: &dyn std::fmt::Display) {
    tracing::warn!(%error, "relay lease statement failed");
    metrics::counter!("review_svc_relay_lease_errors_total").increment(1);
}

/// Changes published again after a shard changed hands: acked at or before
/// what the previous owner had reported published (the unsettled window
/// after its checkpoint). Consumers dedupe them by event id.
pub fn duplicates_republished(shard: i32, count: usize) {
    tracing::debug!(shard, count, "changes republished after a hand-over");
    metrics::counter!("review_svc_relay_duplicates_republished_total").increment(count as u64);
}
