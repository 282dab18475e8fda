//! Counters of what the cache decided, and the one place each notable
//! occurrence is both logged and counted.
//!
//! Every count is kept twice: in [`Stats`] (read with
//! [`Cache::stats`](crate::Cache::stats), handy in tests and health checks) and
//! through the `metrics` facade, so whatever recorder the service installs
//! (e.g. a Prometheus exporter) sees it. Metric names:
//!
//! | metric | labels | meaning |
//! | --- | --- | --- |
//! | `cinerec_cache_claims_total` | `namespace`, `outcome` = `claimed`, `degraded`, `already_done`, `in_flight` | claim decisions |
//! | `cinerec_cache_degraded_writes_total` | `namespace`, `op` = `commit`, `release`, `set`, `delete` | writes that missed at least one zone |
//! | `cinerec_cache_zone_failures_total` | `namespace`, `zone` | batches a zone failed (down, timeout, garbled) |
//! | `cinerec_cache_unexpected_values_total` | `namespace` | claim keys holding something other than a claim marker |

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Error;

/// A snapshot of a cache's counters since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Claims that returned `Claimed { degraded: false }`.
    pub claimed: u64,
    /// Claims that returned `Claimed { degraded: true }`: at least one zone
    /// could not record the claim, so a duplicate may slip through.
    pub claimed_degraded: u64,
    /// Claims that returned `AlreadyDone` (duplicates skipped).
    pub already_done: u64,
    /// Claims that returned `InFlight`.
    pub in_flight: u64,
    /// commit/release/set/delete calls that missed at least one zone.
    pub degraded_writes: u64,
    /// Batches that failed on a zone (down, timeout, protocol error).
    pub zone_failures: u64,
    /// Claim keys found holding a value that is not a claim marker.
    pub unexpected_values: u64,
    /// Our own in-flight markers deleted again because the claim lost on
    /// another zone.
    pub rollbacks: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    claimed: AtomicU64,
    claimed_degraded: AtomicU64,
    already_done: AtomicU64,
    in_flight: AtomicU64,
    degraded_writes: AtomicU64,
    zone_failures: AtomicU64,
    unexpected_values: AtomicU64,
    rollbacks: AtomicU64,
}

/// Claim outcomes of one call, counted together so a batch costs one update.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ClaimTally {
    pub(crate) claimed: u64,
    pub(crate) degraded: u64,
    pub(crate) already_done: u64,
    pub(crate) in_flight: u64,
    pub(crate) rollbacks: u64,
}

fn add(c: &AtomicU64, n: u64) {
    if n > 0 {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            claimed: g(&self.claimed),
            claimed_degraded: g(&self.claimed_degraded),
            already_done: g(&self.already_done),
            in_flight: g(&self.in_flight),
            degraded_writes: g(&self.degraded_writes),
            zone_failures: g(&self.zone_failures),
            unexpected_values: g(&self.unexpected_values),
            rollbacks: g(&self.rollbacks),
        }
    }

    /// Claim decisions of one call. A degraded claim is logged: it is the
    /// moment at-least-once stops being backed by the cache.
    pub(crate) fn claims(&self, ns: &str, t: ClaimTally) {
        add(&self.claimed, t.claimed);
        add(&self.claimed_degraded, t.degraded);
        add(&self.already_done, t.already_done);
        add(&self.in_flight, t.in_flight);
        add(&self.rollbacks, t.rollbacks);
        for (outcome, n) in [
            ("claimed", t.claimed),
            ("degraded", t.degraded),
            ("already_done", t.already_done),
            ("in_flight", t.in_flight),
        ] {
            // Every outcome is exported from the first claim on, at 0 until
            // it happens, so a rate of degraded claims can be graphed (and
            // alerted on) before the first outage.
            metrics::counter!("cinerec_cache_claims_total", "namespace" => ns.to_owned(), "outcome" => outcome)
                .increment(n);
        }
        if t.degraded > 0 {
            tracing::debug!(
                namespace = ns,
                claims = t.degraded,
                "cache degraded: claimed without every zone"
            );
        }
    }

    /// A write that did not reach every zone.
    pub(crate) fn degraded_write(&self, ns: &str, op: &'static str) {
        add(&self.degraded_writes, 1);
        metrics::counter!("cinerec_cache_degraded_writes_total", "namespace" => ns.to_owned(), "op" => op)
            .increment(1);
        tracing::debug!(namespace = ns, op, "cache degraded: write missed a zone");
    }

    /// A zone failed a batch. The zone logs its own down/up transitions at
    /// warn/info; per batch we only count, to keep an outage from flooding logs.
    pub(crate) fn zone_failed(&self, ns: &str, zone: &str, error: &Error) {
        add(&self.zone_failures, 1);
        metrics::counter!("cinerec_cache_zone_failures_total", "namespace" => ns.to_owned(), "zone" => zone.to_owned())
            .increment(1);
        tracing::debug!(namespace = ns, zone, %error, "cache zone failed a batch");
    }

    /// A claim key held a foreign value (someone used `set` on it).
    pub(crate) fn unexpected_value(&self, ns: &str, zone: &str, key: &str) {
        add(&self.unexpected_values, 1);
        metrics::counter!("cinerec_cache_unexpected_values_total", "namespace" => ns.to_owned())
            .increment(1);
        tracing::warn!(
            namespace = ns,
            zone,
            key,
            "claim key holds a value that is not a claim marker"
        );
    }
}
