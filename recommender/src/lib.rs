//! recommender: consumer 2 of the pipeline (DESIGN.md §2 step 4, §5).
//!
//! * [`model`] — the item–item co-occurrence model (likes by latest review,
//!   `N`, `C`, similarity, per-user top-N with a trending fallback) and its
//!   batch recomputation for reconciliation.
//! * [`trending`] — per-genre counts over event-time sliding windows with a
//!   watermark.
#![forbid(unsafe_code)]

pub mod model;
pub mod trending;
