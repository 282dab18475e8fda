//! recommender: consumer 2 of the pipeline (DESIGN.md §2 step 4, §5):
//! `reviews.enriched` → claim `event_id` in its own cache → the item–item
//! co-occurrence model → likes, `N`, `C`, recommendations, similar movies and
//! trending in Cassandra/ScyllaDB → mark done → store the offset.
//!
//! * [`model`] — the co-occurrence model (likes by latest review, `N`, `C`,
//!   similarity, per-user top-N with a trending fallback) and its batch
//!   recomputation for reconciliation.
//! * [`trending`] — per-genre counts over event-time sliding windows with a
//!   watermark.
//! * [`config`] — flags/env parsed once into [`Config`].
//! * [`kafka`] — consumer (manual offset store, cooperative rebalancing,
//!   lag), DLQ producer.
//! * [`store`] — the Cassandra tables: schema, timestamped writes, the
//!   checkpoint read of a restart.
//! * [`pipeline`] — the batch loop, the refresh task, and why a crash
//!   neither loses nor doubles an effect.
//! * [`telemetry`] — each notable occurrence, logged and counted.
//! * [`reconcile`] — the batch recomputation from review-svc's reviews,
//!   diffed against what the recommender wrote.
//!
//! Only one recommender instance may run per keyspace (the model is global).
#![forbid(unsafe_code)]

pub mod config;
pub mod kafka;
pub mod model;
pub mod pipeline;
pub mod reconcile;
pub mod store;
pub mod telemetry;
pub mod trending;

pub use config::Config;
pub use pipeline::{Handle, Recommender};
