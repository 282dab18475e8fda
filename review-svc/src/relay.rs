//! The CDC relay: tails the change log (`review_changes`) and publishes each
//! change to Kafka `reviews.changed` as a [`ReviewChanged`] event, keyed by
//! `review_id`, through an idempotent producer.
//!
//! The change log has [`CHANGE_SHARDS`](crate::store::CHANGE_SHARDS) shards
//! (a review's changes all live in one shard). Every process running the
//! relay (each `serve` replica, or `relay`) is a member of one group per
//! keyspace: the shards are spread over the live members by leases in
//! Cassandra ([`lease`]: how they are taken, renewed, balanced and fenced),
//! so in the normal case each change is published by exactly one replica,
//! and a replica killed without warning has its shards taken over by the
//! others a lease TTL (3 s by default) after its last renewal.
//!
//! A member runs one task per shard it holds the lease of (`relay/shard.rs`). Each
//! task keeps:
//!
//! * `checkpoint` (persisted) — every change with `changed_at <= checkpoint`
//!   is acknowledged by Kafka. It only moves to `now - settle` after a sweep
//!   has re-read and published everything up to there, and only after the
//!   acks; it never passes a row that may still land (an acknowledged write
//!   lands within [`crate::store::WRITE_TIMEOUT`] of its `changed_at`).
//! * `head` / `cursor` (memory) — the fast path reads rows after the newest
//!   one seen every poll, so a change reaches Kafka milliseconds after it is
//!   written; every 100 ms it re-reads from `cursor`, which trails now by a
//!   look-back window, so rows landing slightly out of order are still
//!   caught quickly.
//! * `published` (memory) — changes after the checkpoint already acked, so
//!   the sweep does not send them twice.
//!
//! After a crash, and whenever a shard changes hands, the new task starts
//! from the checkpoint with an empty `published`: the unsettled window is
//! sent again (at-least-once; the event id is stored in the row, so
//! duplicates carry the same id; they are counted). The checkpoint is
//! fenced by the lease generation, so only the current holder moves it, and
//! a holder stops publishing before its lease can be taken.
//!
//! Per-review order: writers serialise versions (see `store`), each change
//! row names its predecessor's `changed_at`, and the relay publishes a
//! missing predecessor before its successor. Sends are enqueued in order
//! on one producer with idempotence on, which keeps order per partition.

pub mod lease;
mod shard;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use cinerec_service_kit::Shutdown;
use cinerec_service_kit::clock::now_micros;
use cinerec_service_kit::kafka::{self, dlq};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use uuid::Uuid;

use crate::config::{KafkaArgs, RelayArgs};
use crate::event::{ChangeOp, ReviewChanged};
use crate::store::{ChangeRow, ReviewStore, StoreError};
use crate::telemetry;

/// How far ahead of this host's clock the fast path looks, for writers
/// whose clocks run ahead.
pub const CLOCK_SLACK_MICROS: i64 = 1_000_000;
/// How often the fast path re-reads its look-back window for rows that
/// landed out of order (the other polls read only after the newest row seen).
pub const LOOKBACK_INTERVAL: Duration = Duration::from_millis(100);
/// Most change rows one scan reads (per shard): bounds memory and the time
/// between checkpoints while a relay works through a backlog.
pub const MAX_SCAN_ROWS: usize = 10_000;
/// Longest predecessor chain the relay follows for one change.
pub const MAX_CHASE: usize = 64;
/// Pause after a failed step before retrying (database or Kafka down).
pub const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Why the relay stopped or a step failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading the change log or saving the checkpoint failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Kafka refused or lost a change.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The keyspace has no checkpoint for a shard: `migrate` never ran.
    #[error("no relay checkpoint for shard {0}; run `review-svc migrate` first")]
    NotMigrated(i32),
    /// Another replica holds the shard's lease now (not fatal: the shard
    /// stops here and goes on there).
    #[error("the lease of shard {0} was taken by another relay")]
    LeaseLost(i32),
    /// A shard's task panicked.
    #[error("relay task of shard {0} panicked: {1}")]
    Panicked(i32, String),
}

/// The idempotent producer the relay publishes with (service-kit's, with a
/// short linger and lz4: change events are small and come in bursts).
pub fn producer(args: &KafkaArgs) -> Result<FutureProducer, KafkaError> {
    kafka::idempotent_producer(
        &args.kafka_brokers,
        &[("linger.ms", "2"), ("compression.type", "lz4")],
    )
}

/// Creates the change topic and its DLQ if they do not exist.
pub async fn ensure_topic(args: &KafkaArgs) -> Result<(), RelayError> {
    let dlq = dlq_topic(&args.changes_topic);
    kafka::ensure_topics(
        &args.kafka_brokers,
        &[(&args.changes_topic, args.topic_partitions), (&dlq, 1)],
    )
    .await?;
    Ok(())
}

/// The dead-letter topic of `topic`: service-kit's rule (DESIGN.md §2:
/// `<topic>.dlq`), the same as every consumer's.
pub fn dlq_topic(topic: &str) -> String {
    dlq::topic_for(topic)
}

/// The event of a change row, or why there is none.
fn encode(row: &ChangeRow) -> Result<Vec<u8>, String> {
    let op = ChangeOp::parse(&row.op).ok_or_else(|| format!("unknown op {:?}", row.op))?;
    ReviewChanged {
        event_id: row.event_id,
        review_id: row.review_id,
        user_id: row.user_id,
        version: row.version,
        op,
        changed_at_us: row.changed_at,
    }
    .encode()
    .map_err(|e| e.to_string())
}

/// A DLQ record's body: the row as JSON (it has no valid Avro form).
fn dlq_payload(row: &ChangeRow) -> Vec<u8> {
    serde_json::json!({
        "event_id": row.event_id,
        "review_id": row.review_id,
        "user_id": row.user_id,
        "version": row.version,
        "op": row.op,
        "changed_at": row.changed_at,
    })
    .to_string()
    .into_bytes()
}

/// The relay of one keyspace into one topic, as one member of the replicas
/// sharing its shards.
#[derive(Clone)]
pub struct Relay {
    store: Arc<ReviewStore>,
    producer: FutureProducer,
    topic: String,
    args: RelayArgs,
    health: RelayHealth,
    /// This replica's id in `relay_leases` / `relay_members`.
    member: Uuid,
}

/// When each owned shard last completed a poll, and when the lease table
/// last answered, for the readiness probe: a relay that cannot read the
/// change log, reach Kafka or renew its leases reads as not ready.
#[derive(Debug, Clone)]
pub struct RelayHealth {
    /// µs since the epoch of each shard's last successful step.
    last_ok: Arc<Vec<AtomicI64>>,
    /// Whether this replica holds each shard's lease (only held shards are
    /// checked: the others are someone else's to publish).
    owned: Arc<Vec<AtomicBool>>,
    /// µs since the epoch of the last lease tick that read the lease table.
    leases_ok: Arc<AtomicI64>,
}

/// A shard that has not completed a poll for this long is unhealthy (Kafka
/// acks time out after 30 s, so a healthy relay never comes close).
pub const UNHEALTHY_AFTER: Duration = Duration::from_secs(45);

impl RelayHealth {
    fn new() -> RelayHealth {
        let shards = crate::store::CHANGE_SHARDS as usize;
        RelayHealth {
            last_ok: Arc::new((0..shards).map(|_| AtomicI64::new(now_micros())).collect()),
            owned: Arc::new((0..shards).map(|_| AtomicBool::new(false)).collect()),
            leases_ok: Arc::new(AtomicI64::new(now_micros())),
        }
    }

    fn ok(&self, shard: i32) {
        if let Some(at) = self.last_ok.get(shard as usize) {
            at.store(now_micros(), Ordering::Relaxed);
        }
    }

    fn set_owned(&self, shard: i32, owned: bool) {
        // The gauge moves by one per flip, not to a count read after the
        // store: releases run in their own tasks, and two of them setting
        // the counts they read could land out of order and leave the gauge
        // stale for good (seen: 4 while the flags said 3).
        if let Some(flag) = self.owned.get(shard as usize)
            && flag.swap(owned, Ordering::Relaxed) != owned
        {
            telemetry::shard_ownership(owned);
        }
        if owned {
            self.ok(shard);
        }
    }

    fn leases_answered(&self) {
        self.leases_ok.store(now_micros(), Ordering::Relaxed);
    }

    /// The shards this replica holds the lease of (and publishes).
    pub fn owned(&self) -> Vec<i32> {
        self.owned
            .iter()
            .enumerate()
            .filter(|(_, owned)| owned.load(Ordering::Relaxed))
            .map(|(shard, _)| shard as i32)
            .collect()
    }

    /// `Err` naming the owned shards that made no progress for
    /// [`UNHEALTHY_AFTER`], or saying the lease table stopped answering.
    pub fn check(&self) -> Result<(), String> {
        let limit = now_micros() - UNHEALTHY_AFTER.as_micros() as i64;
        if self.leases_ok.load(Ordering::Relaxed) < limit {
            return Err(format!(
                "relay leases could not be read or renewed for {UNHEALTHY_AFTER:?}"
            ));
        }
        let stuck: Vec<i32> = self
            .owned()
            .into_iter()
            .filter(|&shard| {
                self.last_ok
                    .get(shard as usize)
                    .is_some_and(|at| at.load(Ordering::Relaxed) < limit)
            })
            .collect();
        if stuck.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "relay shards {stuck:?} made no progress for {UNHEALTHY_AFTER:?}"
            ))
        }
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("topic", &self.topic)
            .field("member", &self.member)
            .field("args", &self.args)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay publishing `store`'s changes to `topic`, as the member
    /// `args.relay_member_id` (default: a fresh random id).
    pub fn new(
        store: Arc<ReviewStore>,
        producer: FutureProducer,
        topic: &str,
        args: RelayArgs,
    ) -> Relay {
        Relay {
            store,
            producer,
            topic: topic.to_owned(),
            member: args.relay_member_id.unwrap_or_else(Uuid::new_v4),
            args,
            health: RelayHealth::new(),
        }
    }

    /// The relay's health, for a readiness check (and the shards it owns).
    pub fn health(&self) -> RelayHealth {
        self.health.clone()
    }

    /// This replica's member id in the lease table.
    pub fn member(&self) -> Uuid {
        self.member
    }

    /// Publishes the shards this replica wins leases of until `shutdown`,
    /// then stops them and releases their leases; returns the first fatal
    /// error (the keyspace was never migrated, a task panicked).
    pub async fn run(self, shutdown: Shutdown) -> Result<(), RelayError> {
        lease::Members::new(self).run(shutdown).await
    }
}
