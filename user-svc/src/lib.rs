//! user-svc: user profiles in CockroachDB (PostgreSQL locally), served over
//! Avro RPC to the enricher (`getUsers`, its hot path) and to review-svc
//! (`getUser`, to check a review's author exists).
//!
//! * [`proto`] — the types, client and server trait generated from
//!   `protocols/user.avpr`; its `User` is also the store's row, its `Tier`
//!   the events' `Tier`, so a user has one type from table to wire.
//! * [`store`] — the `users` table (sqlx; SQL that runs on both databases).
//! * [`seed`] — loads the seeded synthetic user base, idempotently.
#![forbid(unsafe_code)]

/// Types, client and server trait generated from `protocols/user.avpr`.
#[allow(missing_docs)]
pub mod proto {
    avro_rpc::include_protocol!("user_service");
}

pub mod rpc;
pub mod seed;
pub mod service;
pub mod store;

/// The schema user-svc keeps its tables in.
pub const DEFAULT_SCHEMA: &str = "user_svc";
