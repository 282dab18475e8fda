//! EVCache-compatible idempotency cache over memcached and Redis.
//!
//! Each consumer of the pipeline (enricher, recommender) makes its Kafka
//! processing idempotent by claiming the event id before the effect and
//! committing it after:
//!
//! ```text
//! match cache.claim(event_id, IN_FLIGHT_TTL).await? {
//!     Claim::AlreadyDone => { /* duplicate: skip, store the offset */ }
//!     Claim::InFlight => { /* someone else is on it: retry later, keep the offset */ }
//!     Claim::Claimed { .. } => {
//!         effect().await?;                          // must be idempotent
//!         cache.commit(event_id, DONE_TTL).await?;  // then store the offset
//!     }
//! }
//! ```
//!
//! # Keys, values, TTLs
//!
//! Keys on the wire are `<namespace>:<key>`; give each consumer its own
//! namespace (and, in production, its own cluster) so their claims never meet.
//! A claim key holds [`IN_FLIGHT_MARKER`] for `in_flight_ttl` after a claim and
//! [`DONE_MARKER`] for `done_ttl` after a commit. memcached counts TTLs in whole
//! seconds (we round up; its clock ticks once a second, so an entry may go up
//! to a second early), Redis in milliseconds. Plain [`Cache::get`]/[`Cache::set`]/
//! [`Cache::delete`] share the namespace: don't `set` a key you also claim.
//!
//! # Crash semantics
//!
//! * **Crash between claim and commit** (before or during the effect): the
//!   in-flight marker expires after `in_flight_ttl`; until then a redelivered
//!   event sees [`Claim::InFlight`] and must retry later, afterwards it claims
//!   and the event is redone. Pick `in_flight_ttl` above the longest effect.
//! * **Crash between effect and commit**: the effect happened but nothing says
//!   so; after the marker expires the event is processed again and **the effect
//!   is redone — effects must be idempotent** (upserts keyed by the event, not
//!   increments). The cache narrows duplicates, it cannot make them impossible.
//! * **Crash after commit, before the Kafka offset is stored**: the redelivered
//!   event sees [`Claim::AlreadyDone`] and is skipped; that is what the cache is for.
//!
//! # Replicas (zones) — EVCache behaviour
//!
//! Several URLs make several zones, listed local zone first. Every write
//! (claim's `add`, commit's `set`, release's `delete`, plain `set`/`delete`)
//! goes to **all zones concurrently**; plain reads go to the local zone and fall
//! back to the next on a miss or an error. Every zone operation has a timeout
//! (connect included) and a zone that failed is skipped for a retry interval,
//! so an outage costs at most one timeout per call and then fails fast.
//!
//! A claim sends `add` (+ `get`, same round trip) to every zone and decides:
//!
//! 1. any reachable zone says **done** → [`Claim::AlreadyDone`] (a done marker
//!    is the only evidence of a finished effect; believing it costs nothing);
//! 2. else any reachable zone holds **someone else's in-flight marker** →
//!    [`Claim::InFlight`];
//! 3. else (our `add` won on every zone that answered) →
//!    [`Claim::Claimed`], `degraded` if any zone did not answer — including
//!    when none did: an outage means "process anyway", at-least-once holds.
//!
//! Rule 2 is deliberately not "the local zone decides": clients in different
//! zones have different local zones, and a zone that was down and came back
//! empty would otherwise hand out a second claim while the first holder is
//! still working (its marker survives on the other zone). The price is a rare
//! race where two callers each win the `add` on a different zone: both get
//! `InFlight`, both delete their own fresh markers (counted as rollbacks), and
//! the next retry settles it. When the outcome is not `Claimed`, markers we
//! planted are deleted the same way so they do not read as `InFlight` later.
//!
//! Outages are visible: [`Cache::stats`] and the `metrics` facade count
//! degraded claims, degraded writes and zone failures (see [`Stats`]), and a
//! zone logs once when it goes down and once when it is back.
//!
//! # Backends
//!
//! Both protocols are spoken directly over tokio TCP with one pipelined
//! connection per zone: memcached's text protocol (`add`/`set` with exptime,
//! `get`, `delete`) and Redis RESP2 (`SET NX PX`, `SET PX`, `GET`, `DEL`).
//! Concurrent callers' requests coalesce into shared writes; reply parsing is
//! bounded (line length, value size) and a garbled stream drops the connection
//! instead of panicking.
#![forbid(unsafe_code)]

mod batch;
mod cache;
mod config;
mod conn;
mod error;
mod key;
mod memory;
mod proto;
mod stats;
mod store;

pub use crate::batch::{BatchEvents, BatchWait, DegradedBy, Settled};
pub use crate::cache::{Cache, Claim, DONE_MARKER, IN_FLIGHT_MARKER, Written};
pub use crate::config::{
    Backend, CacheConfig, DEFAULT_MAX_VALUE_SIZE, DEFAULT_OP_TIMEOUT, DEFAULT_QUEUE_DEPTH,
    DEFAULT_RETRY_INTERVAL, ZoneAddr,
};
pub use crate::error::{BoxError, Error, ErrorKind, Result};
pub use crate::key::MAX_KEY_LEN;
pub use crate::memory::MemoryStore;
pub use crate::proto::{Op, Reply};
pub use crate::stats::Stats;
pub use crate::store::{NetStore, Store};
