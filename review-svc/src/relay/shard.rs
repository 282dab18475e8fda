//! One shard's publisher: the fast path, the sweep and the checkpoint of
//! the module docs of [`relay`](super), run while this replica holds the
//! shard's lease ([`super::lease`]).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use cinerec_service_kit::clock::now_micros;
use cinerec_service_kit::kafka::dlq;
use cinerec_service_kit::{Shutdown, trace_context};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    CLOCK_SLACK_MICROS, LOOKBACK_INTERVAL, MAX_CHASE, MAX_SCAN_ROWS, RETRY_PAUSE, Relay,
    RelayError, dlq_payload, dlq_topic, encode,
};
use crate::store::{ChangeRow, shard_of};
use crate::telemetry;

/// Why a shard's publisher stopped without a fatal error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ShardEnd {
    /// Asked to (shutdown or rebalancing).
    Stopped,
    /// Its lease was taken or ran out.
    LeaseLost,
}

/// Completes once the lease is revoked (`None`) or its validity has passed.
async fn past_due(lease: &mut watch::Receiver<Option<Instant>>) {
    loop {
        let Some(until) = *lease.borrow_and_update() else {
            return;
        };
        if until <= Instant::now() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep_until(until.into()) => {}
            changed = lease.changed() => if changed.is_err() { return },
        }
    }
}

/// One shard's publisher, for as long as this replica holds its lease.
pub(super) struct ShardRelay {
    relay: Relay,
    shard: i32,
    /// The generation of the lease it publishes under: the checkpoint only
    /// moves while the checkpoint row is fenced to it.
    generation: i64,
    /// Acked changes at or before this were (probably) published by the
    /// previous owner too: re-sending them is counted as a duplicate.
    republish_until: i64,
    /// The newest `changed_at` acked, reported with each lease renewal.
    published_to: Arc<AtomicI64>,
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
    /// Fences the shard's checkpoint to `generation` and reads it: from
    /// here on a previous owner (a zombie) cannot move it.
    pub(super) async fn start(
        relay: Relay,
        shard: i32,
        generation: i64,
        republish_until: i64,
        published_to: Arc<AtomicI64>,
    ) -> Result<ShardRelay, RelayError> {
        let checkpoint = match relay.store.claim_checkpoint(shard, generation).await? {
            Some(position) => position,
            None if relay.store.checkpoint(shard).await?.is_none() => {
                return Err(RelayError::NotMigrated(shard));
            }
            None => return Err(RelayError::LeaseLost(shard)),
        };
        published_to.fetch_max(checkpoint, Ordering::Relaxed);
        Ok(ShardRelay {
            relay,
            shard,
            generation,
            republish_until,
            published_to,
            checkpoint,
            cursor: checkpoint,
            head: checkpoint,
            last_lookback: Instant::now(),
            published: HashSet::new(),
            last_sweep: Instant::now(),
        })
    }

    /// Publishes until `shutdown`, or until the lease is past due or taken
    /// (`lease` holds the instant it is valid until; `None`: revoked). A
    /// step in flight when the lease runs out is dropped: sends already
    /// handed to the producer may still land (duplicates of what the next
    /// owner sends), nothing after them is sent.
    pub(super) async fn run(
        mut self,
        shutdown: Shutdown,
        mut lease: watch::Receiver<Option<Instant>>,
    ) -> Result<ShardEnd, RelayError> {
        // Looks in a row that found nothing: the pause grows with it.
        let mut empty = 0_u32;
        while !shutdown.is_triggered() {
            let step = tokio::select! {
                step = self.step() => step,
                () = past_due(&mut lease) => return Ok(ShardEnd::LeaseLost),
                () = shutdown.wait() => break,
            };
            if step.is_ok() {
                self.relay.health.ok(self.shard);
            }
            // An idle pause ends early when this process commits a change to
            // the shard; the pause after a failure does not.
            let idle = matches!(step, Ok(0));
            let pause = match step {
                Ok(0) => {
                    empty = empty.saturating_add(1);
                    self.relay.args.idle_pause(empty)
                }
                Ok(_) => {
                    empty = 0;
                    Duration::ZERO
                }
                Err(RelayError::LeaseLost(_)) => return Ok(ShardEnd::LeaseLost),
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
                let store = self.relay.store.clone();
                let committed = async {
                    if idle {
                        store.committed_to(self.shard).await
                    } else {
                        std::future::pending().await
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    // A change this process committed: look now.
                    () = committed => empty = 0,
                    () = past_due(&mut lease) => return Ok(ShardEnd::LeaseLost),
                    _ = shutdown.wait() => {}
                }
            }
        }
        Ok(ShardEnd::Stopped)
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
                    let saved = self
                        .relay
                        .store
                        .save_checkpoint(self.shard, self.generation, position)
                        .await?;
                    if !saved {
                        // A later owner fenced the checkpoint: stop at once.
                        return Err(RelayError::LeaseLost(self.shard));
                    }
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
                // The header every dead letter of the pipeline carries
                // (service-kit's), so one tool reads them all.
                let headers = match &error {
                    Some(reason) => dlq::with_error(OwnedHeaders::new(), reason),
                    None => OwnedHeaders::new(),
                };
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
        if let Some(newest) = acked.iter().map(|&(_, at)| at).max() {
            self.published_to.fetch_max(newest, Ordering::Relaxed);
        }
        let republished = acked
            .iter()
            .filter(|&&(_, at)| at <= self.republish_until)
            .count();
        if republished > 0 {
            telemetry::duplicates_republished(self.shard, republished);
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
