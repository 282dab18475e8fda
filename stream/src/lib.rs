//! The at-least-once operator runtime every cinerec consumer runs on
//! (DESIGN.md §2, §4; issue 12). It owns the consumer loop — poll a batch
//! (size + linger) → decode each record into a fate → claim the fresh event
//! ids in the consumer's own EVCache namespace → hand the claimed events to
//! the [`Operator`] → write the dead ones to the DLQ → mark done → store the
//! offsets — and a consumer implements only its effect, as the hooks of
//! [`Operator`]. The enricher and rollup run on it.
//!
//! * [`config`] — the shared Kafka, cache and CQL flags, with per-consumer
//!   `const` defaults.
//! * [`operator`] — the trait and what passes through it.
//! * [`runtime`] — the loop.
//! * [`consumer`] — the Kafka consumer: stored-offsets-only commits,
//!   rebalance hooks, lag.
//! * [`lag`] — group lag measured from the broker (the `stream-lag` binary).
//! * [`telemetry`] — each notable occurrence, logged and counted with the
//!   operator's name as a label.
//!
//! # Why a crash neither loses nor doubles an effect
//!
//! * **Offsets are stored only after the effect.** A record's offset is
//!   stored after its event's effect is acknowledged (the operator returned
//!   [`Outcome::Done`] or [`Outcome::Skipped`]; a DLQ record was acked by
//!   Kafka) or it was decided a duplicate; after the done markers too.
//!   librdkafka auto-commits *stored* offsets only
//!   (`enable.auto.offset.store=false`), so a crash anywhere redoes events,
//!   never loses one.
//! * **Claims make the redo a skip.** Each fresh event id is claimed in the
//!   consumer's own cache before the effect (`<namespace>:<event id>`,
//!   in-flight TTL: one batch with its retries) and marked done after it
//!   (done TTL: longer than any redelivery window). A redelivery of a done
//!   event is a duplicate; a crash between effect and done marker leaves an
//!   in-flight claim that expires, and the event is redone — so the
//!   operator's effect must itself be idempotent per event (an absolute
//!   value, a latest-version-wins write, a ledger in the same transaction).
//!   A cache outage degrades to "process anyway", counted: at-least-once
//!   still holds, the idempotent effect absorbs the duplicate.
//! * **Batches run to completion between two polls**, so a rebalance (which
//!   happens inside a poll) never finds half-done work: what is stored is
//!   done, and the revoke callback commits it before the partitions move.
//! * **Per partition, events reach the operator in offset order** (a batch
//!   is polled in order; the operator sees one batch at a time).
//! * **A poison record never blocks its partition**: undecodable (attempts
//!   0) or dead in the operator ([`Outcome::Dead`]), it goes to
//!   `<source>.dlq` with service-kit's header set (error, attempts, source
//!   topic/partition/offset, the `traceparent`), then its offset is stored.
//!   If the DLQ itself is unwritable after [`runtime::DLQ_ATTEMPTS`], the
//!   runtime stops *without* storing the batch's offsets (claims released):
//!   nothing is dropped, a restart redelivers it.
//! * **Shutdown finishes or abandons explicitly.** Shutdown while waiting for
//!   claims another consumer holds, or while the operator retries its effect,
//!   abandons the batch: its claims are released and no offset is stored, so
//!   a stop never waits out a foreign in-flight TTL and the next owner redoes
//!   the batch at once. Otherwise the batch in hand completes, and the final
//!   commit writes its offsets.
#![forbid(unsafe_code)]

pub mod config;
pub mod consumer;
pub mod error;
pub mod lag;
pub mod operator;
pub mod runtime;
pub mod telemetry;

pub use config::{CacheArgs, CacheDefaults, CqlArgs, Defaults, KafkaArgs};
pub use error::Error;
pub use operator::{Abandoned, Claimed, Decoded, Operator, Outcome};
pub use runtime::{Config, Handle, Runtime};
pub use telemetry::StatsSnapshot;

/// The DLQ headers (service-kit's, re-exported for operators' tests and
/// readers): why, how many attempts (0: not retryable, e.g. undecodable), and
/// the source topic, partition and offset.
pub use cinerec_service_kit::kafka::dlq::{
    HEADER_ATTEMPTS, HEADER_ERROR, HEADER_OFFSET, HEADER_PARTITION, HEADER_TOPIC,
};
