//! What a consumer implements to run on the [`Runtime`](crate::Runtime): how
//! to decode one record, and the effect of one batch of claimed events. The
//! loop around it (batching, dedup claims, DLQ, done markers, offsets,
//! shutdown) is the runtime's.

use std::future::Future;
use std::sync::Arc;

use cinerec_service_kit::Shutdown;
use rdkafka::message::OwnedMessage;

/// One consumer's effect, as hooks the runtime calls.
pub trait Operator: Send + Sync + 'static {
    /// The decoded event.
    type Event: Send + 'static;

    /// The operator's name: the `operator` label of the runtime's metrics
    /// and the name of its batch span (`<name> batch`).
    const NAME: &'static str;

    /// The reasons [`Outcome::Skipped`] may give: registered at 0 in
    /// `cinerec_stream_events_total{outcome=<reason>}`, so their rate is
    /// defined before the first such event.
    const SKIP_REASONS: &'static [&'static str] = &[];

    /// Decodes and validates one record: its idempotency key (the event id)
    /// and the event, or why not (the record goes to the DLQ, attempts 0).
    fn decode(&self, record: &OwnedMessage) -> Result<Decoded<Self::Event>, String>;

    /// The effect of one batch of claimed events (per partition in offset
    /// order). Returns one [`Outcome`] per event, in the same order.
    ///
    /// `Err(Abandoned)` only when `shutdown` interrupts it (e.g. a store
    /// retried for as long as it is down): the runtime then releases the
    /// batch's claims and stores no offset, so the next owner redoes it. The
    /// effect must therefore be idempotent per event (what was written before
    /// the interruption is written again).
    fn process(
        &self,
        batch: Vec<Claimed<Self::Event>>,
        shutdown: &Shutdown,
    ) -> impl Future<Output = Result<Vec<Outcome>, Abandoned>> + Send;

    /// Partitions of the source topic assigned to this consumer. Called
    /// synchronously from the consumer's rebalance callback, between batches:
    /// keep it cheap and non-blocking.
    fn on_assign(&self, _partitions: &[i32]) {}

    /// Partitions about to be revoked, before the runtime commits the stored
    /// offsets (so an operator may drain per-partition writes here). Called
    /// synchronously from the rebalance callback, between batches.
    fn on_revoke(&self, _partitions: &[i32]) {}
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<E> {
    /// The idempotency key: the event id (claimed in the cache as
    /// `<namespace>:<key>`; a repeat within one batch is a duplicate).
    pub key: String,
    /// The event.
    pub event: E,
}

/// An event the runtime claimed for the operator (or handed over without a
/// claim, when the cache is down or the runtime runs without one).
#[derive(Debug)]
pub struct Claimed<E> {
    /// The event.
    pub event: E,
    /// Its idempotency key.
    pub key: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// The record's Kafka timestamp (ms), if any.
    pub timestamp_ms: Option<i64>,
    /// The record itself (headers, trace context, key).
    pub record: Arc<OwnedMessage>,
    /// The record's consumer span (disabled when nothing exports spans).
    pub span: tracing::Span,
}

/// How the effect of one event ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: marked done, offset stored.
    Done,
    /// Nothing to do, for this reason (e.g. `not_found`, `stale`): marked
    /// done and counted under `outcome = <reason>`.
    Skipped(&'static str),
    /// Failed for good (after the operator's own retries): to the DLQ with
    /// `error` and `attempts` in headers, then marked done.
    Dead {
        /// Why.
        error: String,
        /// How many attempts were made.
        attempts: u32,
    },
}

/// [`Operator::process`] was interrupted by shutdown; nothing of the batch
/// is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("batch abandoned at shutdown")]
pub struct Abandoned;
