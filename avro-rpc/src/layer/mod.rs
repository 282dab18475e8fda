//! tower layers specific to Avro RPC.
//!
//! - [`deadline`]: a per-call deadline carried to the server in call
//!   metadata (client side) and enforced around the handler (server side).
//! - [`retry`]: a `tower::retry` policy that resends only messages the
//!   protocol marks `"idempotent": true`, with exponential backoff and jitter.
//! - [`circuit_breaker`]: stop sending to a peer after repeated transport
//!   failures or timeouts, fail fast while open, probe after a cool-down.
//! - [`trace`]: client and server spans after the OpenTelemetry RPC
//!   conventions, with seams to inject/extract trace context in metadata.
//!
//! Stock tower layers apply unchanged because [`Client`](crate::Client) is a
//! plain `Service<Call>` and handlers are plain `Service<Request>`:
//! `tower::limit::ConcurrencyLimitLayer` (on either side),
//! `tower::balance::p2c::Balance` over several clients (one per endpoint,
//! e.g. fed by `tower::discover::ServiceList`), `tower::load_shed`,
//! `tower::buffer` (to share one stack between tasks). See the crate README
//! for the recommended order.

#[cfg(feature = "client")]
pub mod circuit_breaker;
pub mod deadline;
#[cfg(feature = "client")]
pub mod retry;
pub mod trace;
