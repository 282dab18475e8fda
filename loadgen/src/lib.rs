//! loadgen: writes reviews "sporadically, according to a well-justified
//! distribution" (issue 7). [`workload`] is the model — when reviews arrive,
//! who writes them, about which movie, with which rating, and which are edits
//! or deletes — as a deterministic, seeded stream of operations; the driver
//! sends them to review-svc. See `README.md` for the justification of every
//! distribution.
#![forbid(unsafe_code)]

pub mod driver;
pub mod replay;
pub mod token;
pub mod workload;
