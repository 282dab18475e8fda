//! Exponential backoff, in one place.
//!
//! Every retry loop in cinerec waits the same way: after the `n`-th
//! consecutive failure, `base · 2^(n−1)`, never more than `max`. What differs
//! is only what the loop does with that bound — sleep it exactly (a writer
//! that must not give up), or draw a uniform wait below it ("full jitter",
//! so clients that failed together do not retry together), or add a few
//! milliseconds of jitter to a short spin on a contended row.
//!
//! The crate is a value type and two functions on it; it knows nothing of
//! tokio, tower or the error being retried, so the RPC retry policy below
//! service-kit in the crate graph and the consumers above it share it. The
//! shape follows linkerd2-proxy's `exp-backoff` crate: one small concern,
//! tested exhaustively at its edges (no failures yet, huge failure counts,
//! a cap below the base).
#![forbid(unsafe_code)]

use std::time::Duration;

/// `base · 2^(failures−1)` capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExponentialBackoff {
    base: Duration,
    max: Duration,
}

impl ExponentialBackoff {
    /// Waits doubling from `base` up to `max`; a `max` below `base` is
    /// raised to `base` (the first wait is never shortened).
    pub const fn new(base: Duration, max: Duration) -> Self {
        let max = if max.as_nanos() < base.as_nanos() {
            base
        } else {
            max
        };
        ExponentialBackoff { base, max }
    }

    /// The first wait.
    pub const fn base(&self) -> Duration {
        self.base
    }

    /// The longest wait.
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// The wait after `failures` consecutive failures: `base` after the
    /// first (and for 0, so a caller's off-by-one cannot make it spin),
    /// doubling after each further one, at most `max`.
    pub fn delay(&self, failures: u32) -> Duration {
        // 2^31 · base already exceeds any sane cap; past it, shifting would overflow.
        let doublings = failures.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .map_or(self.max, |d| d.min(self.max))
    }

    /// A uniform random wait in `[0, delay(failures)]` ("full jitter").
    pub fn full_jitter(&self, failures: u32) -> Duration {
        let bound = u64::try_from(self.delay(failures).as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rand::random_range(0..=bound))
    }

    /// `delay(failures)` plus a uniform random extra in `[0, spread)`: a short
    /// spin keeps its exponential floor but racers drift apart.
    pub fn with_added_jitter(&self, failures: u32, spread: Duration) -> Duration {
        let spread = u64::try_from(spread.as_micros()).unwrap_or(u64::MAX);
        let extra = if spread == 0 {
            0
        } else {
            rand::random_range(0..spread)
        };
        self.delay(failures)
            .saturating_add(Duration::from_micros(extra))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_from_the_base_up_to_the_cap() {
        let b = ExponentialBackoff::new(10 * MS, 100 * MS);
        let waits: Vec<Duration> = (1..=6).map(|n| b.delay(n)).collect();
        assert_eq!(
            waits,
            [10 * MS, 20 * MS, 40 * MS, 80 * MS, 100 * MS, 100 * MS]
        );
    }

    #[test]
    fn zero_failures_wait_the_base() {
        assert_eq!(ExponentialBackoff::new(5 * MS, 60 * MS).delay(0), 5 * MS);
    }

    #[test]
    fn huge_failure_counts_wait_the_cap_without_overflow() {
        let b = ExponentialBackoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for n in [32, 33, 64, 1_000, u32::MAX] {
            assert_eq!(b.delay(n), Duration::from_secs(30), "{n}");
        }
        let huge = ExponentialBackoff::new(Duration::MAX / 2, Duration::MAX);
        assert_eq!(huge.delay(40), Duration::MAX);
    }

    #[test]
    fn a_cap_below_the_base_is_raised_to_it() {
        let b = ExponentialBackoff::new(50 * MS, 10 * MS);
        assert_eq!(b.max(), 50 * MS);
        assert_eq!(b.delay(1), 50 * MS);
        assert_eq!(b.delay(9), 50 * MS);
    }

    #[test]
    fn full_jitter_stays_within_the_bound() {
        let b = ExponentialBackoff::new(10 * MS, 100 * MS);
        for n in 1..=8 {
            for _ in 0..200 {
                assert!(b.full_jitter(n) <= b.delay(n));
            }
        }
    }

    #[test]
    fn added_jitter_keeps_the_floor_and_stays_below_the_spread() {
        let b = ExponentialBackoff::new(2 * MS, 100 * MS);
        for n in 1..=8 {
            for _ in 0..200 {
                let w = b.with_added_jitter(n, 5 * MS);
                assert!(w >= b.delay(n) && w < b.delay(n) + 5 * MS, "{w:?}");
            }
        }
        assert_eq!(b.with_added_jitter(1, Duration::ZERO), 2 * MS);
    }
}
