//! movie-svc: movie metadata in CockroachDB (PostgreSQL locally), served over
//! Avro RPC to the enricher (`getMovies`, its hot path) and to review-svc.
//!
//! * [`store`] — the `movies` table (sqlx; SQL that runs on both databases).
//! * [`seed`] — loads the seeded synthetic catalogue, idempotently.
#![forbid(unsafe_code)]

pub mod rpc;
pub mod seed;
pub mod service;
pub mod store;

/// The schema movie-svc keeps its tables in.
pub const DEFAULT_SCHEMA: &str = "movie_svc";
