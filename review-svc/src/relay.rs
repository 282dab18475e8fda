//! The CDC relay: tails the change log (`review_changes`) and publishes each
//! change to Kafka `reviews.changed` as a [`ReviewChanged`] event, keyed by
//! `review_id`, through an idempotent producer.
//!
//! One task per change-log shard (a review's changes all live in one shard).
//! Each task keeps:
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
//! After a crash the task restarts from the checkpoint with an empty
//! `published`: the unsettled window is sent again (at-least-once; the
//! event id is stored in the row, so duplicates carry the same id).
//!
//! Per-review order: writers serialise versions (see `store`), each change
//! row names its predecessor's `changed_at`, and the relay publishes a
//! missing predecessor before its successor. Sends are enqueued in order
//! on one producer with idempotence on, which keeps order per partition.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cinerec_service_kit::clock::now_micros;
use cinerec_service_kit::kafka::{self, dlq::HEADER_ERROR};
use cinerec_service_kit::{Shutdown, trace_context};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use uuid::Uuid;

use crate::config::{KafkaArgs, RelayArgs};
use crate::event::{ChangeOp, ReviewChanged};
use crate::store::{ChangeRow, ReviewStore, StoreError, shard_of};
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

/// The dead-letter topic of `topic` (DESIGN.md §2: `<topic>.dlq`).
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}.dlq")
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

/// The relay of one keyspace into one topic.
#[derive(Clone)]
pub struct Relay {
    store: Arc<ReviewStore>,
    producer: FutureProducer,
    topic: String,
    args: RelayArgs,
    health: RelayHealth,
}

/// When each shard last completed a poll, for the readiness probe: a relay
/// that cannot read the change log or reach Kafka reads as not ready.
#[derive(Debug, Clone)]
pub struct RelayHealth {
    /// µs since the epoch of each shard's last successful step (0: none yet).
    last_ok: Arc<Vec<std::sync::atomic::AtomicI64>>,
}

/// A shard that has not completed a poll for this long is unhealthy (Kafka
/// acks time out after 30 s, so a healthy relay never comes close).
pub const UNHEALTHY_AFTER: Duration = Duration::from_secs(45);

impl RelayHealth {
    fn new() -> RelayHealth {
        RelayHealth {
            last_ok: Arc::new(
                (0..crate::store::CHANGE_SHARDS)
                    .map(|_| std::sync::atomic::AtomicI64::new(now_micros()))
                    .collect(),
            ),
        }
    }

    fn ok(&self, shard: i32) {
        if let Some(at) = self.last_ok.get(shard as usize) {
            at.store(now_micros(), std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// `Err` naming the shards that made no progress for [`UNHEALTHY_AFTER`].
    pub fn check(&self) -> Result<(), String> {
        let limit = now_micros() - UNHEALTHY_AFTER.as_micros() as i64;
        let stuck: Vec<usize> = self
            .last_ok
            .iter()
            .enumerate()
            .filter(|(_, at)| at.load(std::sync::atomic::Ordering::Relaxed) < limit)
            .map(|(shard, _)| shard)
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
            .field("args", &self.args)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay publishing `store`'s changes to `topic`.
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
            args,
            health: RelayHealth::new(),
        }
    }

    /// The relay's health, for a readiness check.
    pub fn health(&self) -> RelayHealth {
        self.health.clone()
    }

    /// Runs every shard until `shutdown`; returns the first fatal error.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), RelayError> {
        let mut tasks = tokio::task::JoinSet::new();
        for shard in 0..crate::store::CHANGE_SHARDS {
            let relay = self.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move { ShardRelay::start(relay, shard).await?.run(shutdown).await });
        }
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            let result = joined.unwrap_or_else(|e| {
                Err(RelayError::Store(StoreError::Database(format!(
                    "relay task panicked: {e}"
                ))))
            });
            if let Err(e) = result {
                // One shard failing fatally stops them all: a partial relay
                // would look healthy while one shard's reviews never flow.
                shutdown.trigger();
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

struct ShardRelay {
    relay: Relay,
    shard: i32,
    /// Persisted: every change at or before it is acked.
    checkpoint: i64,
    /// Where the look-back pass reads from: it trails now by the look-back
    /// window (or follows the rows read, behind a backlog).
    cursor: i64,
    /// The newest `changed_at` read: most polls read only after it.
    head: i64,
    /// When the look-back pass last ran.
    last_lookback: Instant,
    /// Acked changes after `checkpoint`, as `(review_id, changed_at)`.
    published: HashSet<(Uuid, i64)>,
    last_sweep: Instant,
}

impl ShardRelay {
    async fn start(relay: Relay, shard: i32) -> Result<ShardRelay, RelayError> {
        let checkpoint = relay
            .store
            .checkpoint(shard)
            .await?
            .ok_or(RelayError::NotMigrated(shard))?;
        Ok(ShardRelay {
            relay,
            shard,
            checkpoint,
            cursor: checkpoint,
            head: checkpoint,
            last_lookback: Instant::now(),
            published: HashSet::new(),
            last_sweep: Instant::now(),
        })
    }

    async fn run(mut self, shutdown: Shutdown) -> Result<(), RelayError> {
        while !shutdown.is_triggered() {
            let step = self.step().await;
            if step.is_ok() {
                self.relay.health.ok(self.shard);
            }
            let pause = match step {
                Ok(0) => self.relay.args.poll(),
                Ok(_) => Duration::ZERO,
                Err(e) => {
                    match &e {
                        RelayError::Kafka(k) => telemetry::publish_failed(self.shard, k),
                        other => telemetry::relay_store_error(self.shard, other),
                    }
                    // Read again from the checkpoint: nothing after it is
                    // assumed sent unless it was acked.
                    self.cursor = self.checkpoint;
                    self.head = self.checkpoint;
                    RETRY_PAUSE
                }
            };
            if !pause.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.wait() => {}
                }
            }
        }
        Ok(())
    }

    /// One poll: the fast path, then the sweep if due. Returns how many
    /// changes were published.
    async fn step(&mut self) -> Result<usize, RelayError> {
        let now = now_micros();
        let until = now + CLOCK_SLACK_MICROS;
        // Most polls read only rows newer than any seen (cheap, in-order
        // arrivals). Every LOOKBACK_INTERVAL the poll reads from the trailing
        // cursor instead, catching rows that landed out of `changed_at` order
        // (concurrent writers) within ~100 ms instead of the sweep's settle
        // delay; the `published` set skips the ones already sent.
        let lookback = self.last_lookback.elapsed() >= LOOKBACK_INTERVAL;
        let from = if lookback {
            self.last_lookback = Instant::now();
            self.cursor
        } else {
            self.cursor.max(self.head)
        };
        let rows = self
            .relay
            .store
            .scan_changes(self.shard, from, until, MAX_SCAN_ROWS)
            .await?;
        let seen_up_to = rows.last().map(|r| r.changed_at);
        let mut sent = self.publish(rows, false).await?;
        if let Some(at) = seen_up_to {
            self.head = self.head.max(at);
        }
        // The cursor trails now by the look-back window; behind a backlog it
        // follows the rows read.
        let behind_now = now - self.relay.args.lookback().as_micros() as i64;
        let next = seen_up_to.map_or(behind_now, |at| at.min(behind_now));
        self.cursor = self.cursor.max(next);
        if self.last_sweep.elapsed() >= self.relay.args.sweep() {
            self.last_sweep = Instant::now();
            let horizon = now - self.relay.args.settle().as_micros() as i64;
            if horizon > self.checkpoint {
                let rows = self
                    .relay
                    .store
                    .scan_changes(self.shard, self.checkpoint, horizon, MAX_SCAN_ROWS)
                    .await?;
                // A truncated slice ends mid-log: checkpoint just before its
                // last row's time, as more rows may share that microsecond.
                let position = if rows.len() >= MAX_SCAN_ROWS {
                    rows.last().map_or(horizon, |r| r.changed_at - 1)
                } else {
                    horizon
                };
                sent += self.publish(rows, true).await?;
                if position > self.checkpoint {
                    self.relay
                        .store
                        .save_checkpoint(self.shard, position)
                        .await?;
                    telemetry::checkpoint_saved(self.shard, position);
                    self.checkpoint = position;
                    self.published.retain(|&(_, at)| at > position);
                    self.cursor = self.cursor.max(position);
                    self.head = self.head.max(position);
                }
            }
        }
        Ok(sent)
    }

    /// Publishes the rows not yet acked, in order, each after its
    /// predecessor; returns when Kafka acked them all.
    async fn publish(&mut self, rows: Vec<ChangeRow>, sweeping: bool) -> Result<usize, RelayError> {
        let mut queue: Vec<ChangeRow> = Vec::new();
        let mut queued: HashSet<(Uuid, i64)> = HashSet::new();
        for row in rows {
            let key = (row.review_id, row.changed_at);
            if self.published.contains(&key) || queued.contains(&key) {
                continue;
            }
            if sweeping {
                telemetry::late_change_found(self.shard, row.review_id, row.version);
            }
            for earlier in self.unpublished_predecessors(&row, &queued).await? {
                telemetry::predecessor_published_first(earlier.review_id, earlier.version);
                queued.insert((earlier.review_id, earlier.changed_at));
                queue.push(earlier);
            }
            queued.insert(key);
            queue.push(row);
        }
        self.send_in_order(queue).await
    }

    /// The predecessors of `row` that landed but are neither acked nor
    /// queued, oldest first.
    async fn unpublished_predecessors(
        &self,
        row: &ChangeRow,
        queued: &HashSet<(Uuid, i64)>,
    ) -> Result<Vec<ChangeRow>, RelayError> {
        let mut chain = Vec::new();
        let mut prev = row.prev_changed_at;
        while let Some(at) = prev {
            let key = (row.review_id, at);
            if at <= self.checkpoint
                || self.published.contains(&key)
                || queued.contains(&key)
                || chain.len() >= MAX_CHASE
            {
                break;
            }
            match self
                .relay
                .store
                .change_at(shard_of(row.review_id), at, row.review_id)
                .await?
            {
                Some(earlier) => {
                    prev = earlier.prev_changed_at;
                    chain.push(earlier);
                }
                None => {
                    telemetry::predecessor_missing(row.review_id, row.version);
                    break;
                }
            }
        }
        chain.reverse();
        Ok(chain)
    }

    async fn send_in_order(&mut self, queue: Vec<ChangeRow>) -> Result<usize, RelayError> {
        // Each send keeps its producer span open until Kafka acknowledges it.
        // With the moment each was handed to the producer, for its latency.
        let mut in_flight: VecDeque<(DeliveryFuture, (Uuid, i64), tracing::Span, Instant)> =
            VecDeque::new();
        let mut acked = Vec::with_capacity(queue.len());
        let topic = self.relay.topic.clone();
        let dlq = dlq_topic(&topic);
        for row in &queue {
            let key = (row.review_id, row.changed_at);
            let record_key = row.review_id.to_string();
            // A row that cannot become an event goes to the DLQ with the
            // reason in a header: never silently dropped, never blocking.
            let (topic, payload, error) = match encode(row) {
                Ok(payload) => (topic.as_str(), payload, None),
                Err(reason) => {
                    telemetry::change_row_invalid(self.shard, row.review_id, row.version, &reason);
                    (dlq.as_str(), dlq_payload(row), Some(reason))
                }
            };
            let span = publish_span(topic, &record_key, row);
            loop {
                let mut headers = OwnedHeaders::new();
                if let Some(reason) = &error {
                    headers = headers.insert(Header {
                        // The header every dead letter of the pipeline
                        // carries (service-kit's DLQ), so one tool reads all.
                        key: HEADER_ERROR,
                        value: Some(reason.as_str()),
                    });
                }
                let headers =
                    trace_context::inject_kafka(&trace_context::context_of(&span), headers);
                let record = FutureRecord::to(topic)
                    .key(&record_key)
                    .payload(&payload)
                    .headers(headers);
                match self.relay.producer.send_result(record) {
                    Ok(delivery) => {
                        in_flight.push_back((delivery, key, span, Instant::now()));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        // Wait for the oldest send instead of skipping ahead:
                        // enqueue order is publish order.
                        match in_flight.pop_front() {
                            Some((delivery, key, _span, sent)) => {
                                acked.push(self.await_ack((delivery, key), sent).await?)
                            }
                            None => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                    Err((e, _)) => return Err(e.into()),
                }
            }
        }
        while let Some((delivery, key, _span, sent)) = in_flight.pop_front() {
            acked.push(self.await_ack((delivery, key), sent).await?);
        }
        let now = now_micros();
        telemetry::changes_published(
            self.shard,
            acked.len(),
            acked
                .iter()
                .map(|&(_, at)| Duration::from_micros((now - at).max(0) as u64)),
        );
        Ok(acked.len())
    }

    /// Waits for one send's answer. Sends are awaited in enqueue order, so a
    /// send's latency (from `sent`) can include waiting behind an earlier
    /// one; within a partition Kafka acknowledges in that order anyway.
    async fn await_ack(
        &mut self,
        (delivery, key): (DeliveryFuture, (Uuid, i64)),
        sent: Instant,
    ) -> Result<(Uuid, i64), RelayError> {
        let answer = delivery.await;
        telemetry::produce_answered(sent.elapsed(), matches!(answer, Ok(Ok(_))));
        match answer {
            Ok(Ok(_)) => {
                self.published.insert(key);
                Ok(key)
            }
            Ok(Err((e, _))) => Err(e.into()),
            Err(_cancelled) => Err(KafkaError::Canceled.into()),
        }
    }
}

/// The producer span of one change event (OTel messaging conventions), a
/// child of the trace context the change row carries from the request that
/// wrote it; its own context goes into the record's headers.
fn publish_span(topic: &str, key: &str, row: &ChangeRow) -> tracing::Span {
    // Not exporting: no per-row span on the relay's hot path.
    if !cinerec_service_kit::telemetry::exporting() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "relay.publish",
        otel.name = %format_args!("{topic} publish"),
        otel.kind = "producer",
        messaging.system = "kafka",
        messaging.operation.type = "send",
        messaging.operation.name = "send",
        messaging.destination.name = %topic,
        messaging.kafka.message.key = %key,
        messaging.message.id = %row.event_id,
        cinerec.review_id = %row.review_id,
        cinerec.version = row.version,
    );
    if let Some(traceparent) = &row.traceparent {
        let written = trace_context::W3cContext {
            traceparent: traceparent.clone(),
            tracestate: row.tracestate.clone(),
        };
        trace_context::set_parent(&span, written.context());
    }
    span
}
