//! The Kafka events of cinerec, one place for every producer and consumer.
//!
//! * [`codec`] — a generic Avro single-object codec: `C3 01`, the writer
//!   schema's CRC-64-AVRO fingerprint (little-endian), the datum. Decoding
//!   looks the writer schema up by fingerprint among the known versions and
//!   resolves it to the reader schema, so schemas evolve compatibly.
//! * [`review_changed`] — `reviews.changed` (`protocols/review_changed.avsc`),
//!   published by review-svc's CDC relay: ids only.
//! * [`enriched_review`] — `reviews.enriched`
//!   (`protocols/review_enriched.avsc`), published by the enricher: the
//!   latest review with its movie and user, what the recommender consumes.
//!
//! The event types themselves (fields, enums, their Avro `Value` mappings)
//! are generated from the `.avsc` files at build time; the modules add only
//! the codec wiring and the record keys.
#![forbid(unsafe_code)]

pub mod codec;
pub mod enriched_review;
pub mod review_changed;

#[cfg(test)]
mod golden_wire;

/// The types generated from `protocols/*.avsc` by `build.rs`: one struct per
/// record, one enum per enum, each with `to_value`/`from_value`.
mod generated {
    include!(concat!(env!("OUT_DIR"), "/avro_schemas.rs"));
}

pub use codec::{CodecError, SingleObjectCodec};
pub use enriched_review::{EnrichedReview, Tier};
pub use generated::ValueError;
pub use review_changed::{ChangeOp, ReviewChanged};
