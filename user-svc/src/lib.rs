//! user-svc: user profiles in CockroachDB (PostgreSQL locally), served over
//! Avro RPC to the enricher (`getUsers`, its hot path) and to review-svc
//! (`getUser`, to check a review's author exists).
//!
//! * [`store`] — the `users` table (sqlx; SQL that runs on both databases).
//! * [`seed`] — loads the seeded synthetic user base, idempotently.
#![forbid(unsafe_code)]

pub mod rpc;
pub mod seed;
pub mod service;
pub mod store;

/// The schema user-svc keeps its tables in.
pub const DEFAULT_SCHEMA: &str = "user_svc";
