//! The memory a server lets peers pin with frames they have not finished
//! sending: one budget per [`Responder`](crate::Responder), shared by all
//! its socket connections, plus a per-connection cap (both in [`Limits`]).
//!
//! Without it every connection could hold a partial frame of the largest
//! size allowed (16 MiB by default, ~23 MB of RSS each as measured), so a
//! handful of peers sending the first half of big frames took hundreds of
//! MB. Only frames larger than [`LARGE_FRAME`] are charged: smaller ones
//! live in the connection's ordinary read buffer.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::error::{Error, Kind, Result};
use crate::limits::Limits;

/// Frames up to this size are read into the connection's ordinary buffer
/// and not charged.
pub const LARGE_FRAME: usize = 64 * 1024;

/// Bytes reserved for frames still arriving, across the connections of one
/// server. Refusals are counted here and in the metric
/// `avro_rpc_server_frames_refused_total{limit}` (`connection`, `total`);
/// the bytes in use are the gauge `avro_rpc_server_incomplete_frame_bytes`.
#[derive(Debug)]
pub struct FrameBudget {
    max_total: usize,
    in_use: AtomicUsize,
    refused: AtomicU64,
}

impl FrameBudget {
    /// A budget of `max_total` bytes.
    pub fn new(max_total: usize) -> Self {
        FrameBudget {
            max_total,
            in_use: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Bytes reserved right now.
    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Acquire)
    }

    /// Frames refused so far (either limit).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Acquire)
    }

    fn try_charge(&self, n: usize) -> bool {
        let mut current = self.in_use.load(Ordering::Acquire);
        loop {
            let Some(next) = current.checked_add(n).filter(|&t| t <= self.max_total) else {
                return false;
            };
            match self.in_use.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    metrics::gauge!("avro_rpc_server_incomplete_frame_bytes").set(next as f64);
                    return true;
                }
                Err(actual) => current = actual,
            }
        }
    }

    fn release(&self, n: usize) {
        let before = self.in_use.fetch_sub(n, Ordering::AcqRel);
        metrics::gauge!("avro_rpc_server_incomplete_frame_bytes")
            .set(before.saturating_sub(n) as f64);
    }

    /// The one place a refusal is logged and counted.
    fn refuse(&self, limit: &'static str, wanted: usize, cap: usize) -> Error {
        self.refused.fetch_add(1, Ordering::AcqRel);
        metrics::counter!("avro_rpc_server_frames_refused_total", "limit" => limit).increment(1);
        tracing::warn!(
            limit,
            wanted,
            cap,
            in_use = self.in_use(),
            "frame refused: memory budget for incomplete frames"
        );
        Error::new(
            Kind::Decode,
            format!(
                "frame needs {wanted} bytes, over the {limit} budget of {cap} for incomplete frames"
            ),
        )
    }
}

/// What one connection has charged to a budget; given back when the frame
/// completes or the connection ends.
#[derive(Debug)]
pub(crate) struct Held<'a> {
    budget: Option<&'a FrameBudget>,
    charged: usize,
}

impl<'a> Held<'a> {
    /// A connection charging `budget` (`None`: only the per-connection cap).
    pub(crate) fn new(budget: Option<&'a FrameBudget>) -> Self {
        Held { budget, charged: 0 }
    }

    /// Raises this connection's reservation to `bytes`.
    pub(crate) fn charge_to(&mut self, bytes: usize, limits: &Limits) -> Result<()> {
        if bytes <= self.charged {
            return Ok(());
        }
        let cap = limits.max_incomplete_bytes_per_connection;
        if bytes > cap {
            return Err(match self.budget {
                Some(b) => b.refuse("connection", bytes, cap),
                None => Error::new(
                    Kind::Decode,
                    format!("frame needs {bytes} bytes, over the connection budget of {cap}"),
                ),
            });
        }
        if let Some(b) = self.budget {
            let more = bytes - self.charged;
            if !b.try_charge(more) {
                return Err(b.refuse("total", bytes, b.max_total));
            }
        }
        self.charged = bytes;
        Ok(())
    }

    /// The frame is complete: its bytes are a message now, not a partial frame.
    pub(crate) fn release_all(&mut self) {
        if let Some(b) = self.budget
            && self.charged > 0
        {
            b.release(self.charged);
        }
        self.charged = 0;
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.release_all();
    }
}
