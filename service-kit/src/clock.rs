//! The wall clock in the unit every cinerec timestamp is stored in.
//!
//! One definition instead of one per crate. Crates below service-kit in the
//! crate graph (`events`, `cache`, `avro-rpc`) and `bench` (which does not
//! depend on service-kit) keep their own.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch on this host's clock; 0 if the clock
/// reads before the epoch, `i64::MAX` if it reads past what an `i64` holds.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_micros_is_after_2020_and_monotone_enough() {
        let a = now_micros();
        assert!(a > 1_577_836_800_000_000, "{a}");
        assert!(now_micros() >= a);
    }
}
