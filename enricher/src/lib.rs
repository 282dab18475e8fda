//! The enricher, consumer 1 of the pipeline (DESIGN.md §2 step 3):
//! `reviews.changed` → claim `event_id` in its own cache → the *latest*
//! review, its movie and its user over Avro RPC (one multi-get per batch
//! each) → `EnrichedReview` to `reviews.enriched`, keyed by `user_id` →
//! mark done → store the offset. At-least-once on Kafka, idempotent through
//! the cache.
//!
//! * [`config`] — flags/env parsed once into [`Config`].
//! * [`kafka`] — idempotent producer, sink topic creation.
//! * [`rpc`] — the three typed Avro RPC clients and retried multi-gets.
//! * [`pipeline`] — the effect, an operator on the at-least-once runtime
//!   ([`cinerec_stream`], which owns the loop and its invariants).
//! * [`telemetry`] — each notable occurrence, logged and counted.
#![forbid(unsafe_code)]

pub mod config;
pub mod kafka;
pub mod pipeline;
pub mod rpc;
pub mod telemetry;

pub use config::Config;
pub use pipeline::{Enrich, Enricher, Handle};
