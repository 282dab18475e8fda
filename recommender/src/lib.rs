//! recommender: consumer 2 of the pipeline (DESIGN.md §2 step 4, §5):
//! `reviews.enriched` → claim `event_id` in its own cache → the item–item
//! co-occurrence model, in process → its changelog in Kafka → mark done →
//! store the offset; recommendations, similar movies and trending flushed to
//! Cassandra/ScyllaDB, coalesced. N instances share the work.
//!
//! * [`model`] — the co-occurrence model (likes by latest review, `N`, `C`,
//!   shrunk cosine similarity, per-user top-N with a trending fallback) and its batch
//!   recomputation for reconciliation.
//! * [`trending`] — per-genre counts over event-time sliding windows with a
//!   watermark.
//! * [`config`] — flags/env parsed once into [`Config`].
//! * [`kafka`] — consumer (manual offset store, cooperative rebalancing
//!   with the ownership hooks, lag), producer.
//! * [`changelog`] — the compacted Kafka topic that makes the model durable
//!   (written per batch, read in full by every instance).
//! * [`ownership`] — which instance writes which serving row, partition
//!   leases and the fenced write timestamps that make a zombie's write lose.
//! * [`store`] — the serving tables in Cassandra: schema, timestamped writes.
//! * [`pipeline`] — the batch loop, the changelog follower, the flush task,
//!   and why a crash neither loses nor doubles an effect.
//! * [`telemetry`] — each notable occurrence, logged and counted.
//! * [`reconcile`] — the batch recomputation from review-svc's reviews,
//!   diffed against what the recommender wrote; [`oracle`] its independent
//!   top-20.
//! * [`evaluate`] — offline quality: hit-rate, NDCG and coverage of the
//!   model, popularity and the `implicit` library on a held-out like.
#![forbid(unsafe_code)]

pub mod changelog;
pub mod config;
pub mod evaluate;
pub mod kafka;
pub mod model;
pub mod oracle;
pub mod ownership;
pub mod pipeline;
pub mod reconcile;
pub mod store;
pub mod telemetry;
pub mod trending;

pub use config::Config;
pub use pipeline::{Handle, Recommender};
