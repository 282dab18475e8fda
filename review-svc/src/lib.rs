//! review-svc: where reviews enter cinerec (DESIGN.md §2, steps 1–2).
//!
//! * [`api`] — the public HTTP/JSON API (validation, auth, `Idempotency-Key`).
//! * [`store`] — reviews in Cassandra/ScyllaDB: a per-review version counter
//!   (LWT) serialises writers; each write is one LOGGED BATCH holding the
//!   review version *and* its change record (the transactional outbox).
//! * [`acknowledged`] — the latest acknowledged version of every review, read
//!   whole by review-svc's commit rule (for reconcile).
//! * [`relay`] — tails the change log and publishes every change to Kafka
//!   `reviews.changed` ([`event`]), checkpointing only after Kafka acks.
//! * [`rpc`] — `ReviewService` over Avro RPC: the latest version of reviews,
//!   for the enricher's delayed materialization.
//! * [`auth`], [`directory`] — who may write, and whether users/movies exist.
//! * [`recommendations`] — `GET /v1/users/{id}/recommendations`, read from the
//!   recommender's `recommendations_by_user`.
//! * [`http_server`] — the API's HTTP server: head/idle/request timeouts,
//!   connection limit, load shedding.
//! * [`telemetry`] — the one place each notable occurrence is logged and counted.
#![forbid(unsafe_code)]

pub mod acknowledged;
pub mod api;
pub mod auth;
pub mod config;
pub mod directory;
pub mod event;
pub mod http_server;
pub mod model;
pub mod recommendations;
pub mod relay;
pub mod rpc;
pub mod store;
pub mod telemetry;
