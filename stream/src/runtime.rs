//! The loop: poll a batch → decode each record into a fate → claim the
//! fresh event ids in the consumer's cache → hand the claimed events to the
//! [`Operator`] → write the dead ones to the DLQ → mark done → store the
//! offsets. Its invariants are the crate's (see the crate docs).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cinerec_backoff::ExponentialBackoff;
use cinerec_cache::{BatchWait, Cache, CacheConfig, Settled};
use cinerec_service_kit::kafka::dlq::DeadLetters;
use cinerec_service_kit::kafka::{self as kit};
use cinerec_service_kit::{Shutdown, trace_context};
use rdkafka::Message as _;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, Producer as _};
use tracing::Instrument as _;

use crate::config::{CacheArgs, KafkaArgs};
use crate::consumer::{self, RuntimeConsumer};
use crate::error::Error;
use crate::operator::{Claimed, Decoded, Operator, Outcome};
use crate::telemetry::{self, ClaimEvents, Stats, StatsSnapshot};

/// Attempts at writing one dead letter before the runtime stops (it cannot
/// skip the record and must not drop it: a restart redelivers it).
pub const DLQ_ATTEMPTS: u32 = 20;
/// First backoff between dead-letter attempts; doubles up to [`DLQ_MAX_BACKOFF`].
pub const DLQ_FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest backoff between dead-letter attempts.
pub const DLQ_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest wait for an event another consumer holds in flight, as a multiple
/// of the in-flight TTL (its claim has expired by then at the latest; the
/// event is then taken over, degraded).
pub const IN_FLIGHT_WAIT_FACTOR: u32 = 2;
/// Partitions of the DLQ topic when the runtime creates it.
pub const DLQ_PARTITIONS: i32 = 1;

/// What a [`Runtime`] runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Brokers, group, source and DLQ topics, batching.
    pub kafka: KafkaArgs,
    /// The consumer's idempotency cache; `None` for an operator that dedups
    /// in its own store (e.g. rollup's ledger, in the same transaction as
    /// the effect): every decoded event, a repeat within the batch included,
    /// is then handed over unclaimed.
    pub cache: Option<CacheArgs>,
}

/// A running runtime's counters.
#[derive(Debug, Clone)]
pub struct Handle {
    stats: Arc<Stats>,
}

impl Handle {
    /// The counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }
}

/// One consumer: the source topic's at-least-once consumer, the DLQ
/// producer, the cache, and the operator.
pub struct Runtime<O: Operator> {
    operator: Arc<O>,
    kafka: KafkaArgs,
    cache: Option<(Cache, CacheArgs)>,
    consumer: RuntimeConsumer,
    producer: FutureProducer,
    dlq_topic: String,
    stats: Arc<Stats>,
}

impl<O: Operator> std::fmt::Debug for Runtime<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("operator", &O::NAME)
            .field("group", &self.kafka.group)
            .field("source", &self.kafka.source_topic)
            .field("dlq", &self.dlq_topic)
            .finish_non_exhaustive()
    }
}

/// Where one record of a batch got to.
#[derive(Debug)]
enum Fate {
    /// Decoded, first of its key in the batch: to claim and hand over.
    Fresh(String),
    /// Done before, or a repeat within the batch: skipped.
    Duplicate,
    /// To the DLQ; `key` (when it decoded) is marked done after.
    Dead {
        key: Option<String>,
        error: String,
        attempts: u32,
    },
    /// The operator's effect is done (or skipped for `reason`): to mark done.
    Finished {
        key: String,
        skipped: Option<&'static str>,
    },
    /// Written to the DLQ.
    Buried(Option<String>),
}

impl<O: Operator> Runtime<O> {
    /// Creates the DLQ topic if needed, the consumer (subscribed), the DLQ
    /// producer and the cache (which connects lazily).
    pub async fn new(config: Config, operator: O) -> Result<Runtime<O>, Error> {
        let dlq_topic = config.kafka.dlq_topic();
        kit::ensure_topics(&config.kafka.brokers, &[(&dlq_topic, DLQ_PARTITIONS)]).await?;
        // The claim key is `<namespace>:<event id>`; the in-flight TTL covers
        // one batch with its retries, the done TTL any redelivery window.
        let cache = match config.cache {
            Some(args) => Some((
                Cache::new(&CacheConfig::new(
                    args.cache_namespace.clone(),
                    &args.cache_urls,
                )?)?,
                args,
            )),
            None => None,
        };
        let operator = Arc::new(operator);
        telemetry::register(O::NAME, O::SKIP_REASONS);
        Ok(Runtime {
            consumer: consumer::consumer(&config.kafka, operator.clone())?,
            producer: kit::idempotent_producer(&config.kafka.brokers, &[("linger.ms", "2")])?,
            operator,
            kafka: config.kafka,
            cache,
            dlq_topic,
            stats: Arc::default(),
        })
    }

    /// A handle on the counters (take it before [`run`](Self::run)).
    pub fn handle(&self) -> Handle {
        Handle {
            stats: self.stats.clone(),
        }
    }

    /// The operator (shared with the consumer's rebalance callback).
    pub fn operator(&self) -> &Arc<O> {
        &self.operator
    }

    /// Consumes until `shutdown` fires, then finishes or abandons the batch
    /// in hand, commits the stored offsets and flushes the producer.
    ///
    /// Errors only when a dead letter cannot be written (nothing may be
    /// dropped, nothing may block) or the operator breaks its contract: the
    /// caller exits and a restart redelivers.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), Error> {
        tracing::info!(operator = O::NAME, group = %self.kafka.group, topic = %self.kafka.source_topic, "consuming");
        let outcome = self.consume(&shutdown).await;
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                tracing::warn!(operator = O::NAME, error = %e, "final commit failed (stored offsets commit on close)")
            }
        }
        if let Err(e) = self.producer.flush(Duration::from_secs(10)) {
            tracing::warn!(operator = O::NAME, error = %e, "producer flush at shutdown");
        }
        tracing::info!(operator = O::NAME, stats = ?self.stats.snapshot(), "stopped");
        outcome
    }

    async fn consume(&self, shutdown: &Shutdown) -> Result<(), Error> {
        loop {
            let Some(batch) = self.next_batch(shutdown).await else {
                return Ok(());
            };
            self.batch(batch, shutdown).await?;
            if shutdown.is_triggered() {
                return Ok(());
            }
        }
    }

    /// Waits for a first record (or shutdown: `None`), then collects more
    /// until the batch is full or the linger time has passed.
    async fn next_batch(&self, shutdown: &Shutdown) -> Option<Vec<Arc<OwnedMessage>>> {
        let mut batch = Vec::new();
        loop {
            let first = tokio::select! {
                biased;
                () = shutdown.wait() => return None,
                m = self.consumer.recv() => m,
            };
            match first {
                Ok(m) => {
                    batch.push(Arc::new(m.detach()));
                    break;
                }
                Err(e) => {
                    tracing::warn!(operator = O::NAME, error = %e, "poll failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let until = tokio::time::Instant::now() + self.kafka.batch_linger();
        while batch.len() < self.kafka.batch_size {
            match tokio::time::timeout_at(until, self.consumer.recv()).await {
                Err(_) => break,
                Ok(Ok(m)) => batch.push(Arc::new(m.detach())),
                Ok(Err(e)) => {
                    tracing::warn!(operator = O::NAME, error = %e, "poll failed");
                    break;
                }
            }
        }
        Some(batch)
    }

    /// One batch, to completion — every record ends processed, skipped,
    /// duplicate or in the DLQ, and its offset stored — or abandoned at
    /// shutdown (claims released, no offset stored).
    ///
    /// Traces: each record gets a consumer span parented to the producer
    /// context in its headers; the batch's work runs in one `<operator>
    /// batch` span, a child of the first record's span and linked to the
    /// others', since one claim round trip or one write serves many events.
    async fn batch(&self, batch: Vec<Arc<OwnedMessage>>, shutdown: &Shutdown) -> Result<(), Error> {
        let started = Instant::now();
        telemetry::polled(&self.stats, O::NAME, batch.len());
        let spans: Vec<tracing::Span> = batch
            .iter()
            .map(|m| trace_context::consumer_span(m.as_ref(), &self.kafka.group))
            .collect();
        let name = format!("{} batch", O::NAME);
        let batch_span = trace_context::batch_span(&name, &spans);
        async {
            let (mut fates, mut events) = self.decode(&batch);
            if !self.claim(&mut fates, &mut events, shutdown).await {
                telemetry::abandoned(&self.stats, O::NAME, batch.len(), "claim wait");
                return Ok(());
            }
            if !self
                .hand_over(&batch, &spans, &mut fates, events, shutdown)
                .await?
            {
                telemetry::abandoned(&self.stats, O::NAME, batch.len(), "effect");
                return Ok(());
            }
            if let Err(e) = self.bury(&batch, &mut fates).await {
                // Stop without storing offsets: give the claims back so the
                // restarted consumer (or the next owner) redoes them at once.
                self.release(&fates).await;
                return Err(e);
            }
            self.mark_done(&fates).await;
            self.count(&fates);
            self.store_offsets(&batch);
            telemetry::batch_done(&self.stats, O::NAME, batch.len(), started.elapsed());
            Ok(())
        }
        .instrument(batch_span)
        .await
    }

    /// One fate per record; the decoded events beside them (`Some` exactly
    /// for the [`Fate::Fresh`] ones). With a cache, a repeat of a key within
    /// the batch is a duplicate (the first one's effect covers it, and
    /// `claim_batch` takes distinct keys); without one, every record is
    /// handed over and the operator's store dedups them all.
    fn decode(&self, batch: &[Arc<OwnedMessage>]) -> (Vec<Fate>, Vec<Option<O::Event>>) {
        let dedup = self.cache.is_some();
        let mut seen = HashSet::with_capacity(batch.len());
        batch
            .iter()
            .map(|m| match self.operator.decode(m) {
                Err(error) => (
                    Fate::Dead {
                        key: None,
                        error,
                        attempts: 0,
                    },
                    None,
                ),
                Ok(Decoded { key, event }) if !dedup || seen.insert(key.clone()) => {
                    (Fate::Fresh(key), Some(event))
                }
                Ok(_) => (Fate::Duplicate, None),
            })
            .unzip()
    }

    /// Claims every fresh key ([`Cache::claim_batch`]): done before →
    /// duplicate; held by another consumer → wait for it (its claim expires
    /// by the in-flight TTL; after [`IN_FLIGHT_WAIT_FACTOR`] times that it is
    /// taken over); cache unreachable → process anyway, counted. Without a
    /// cache every fresh event goes ahead. `false`: shutdown came during the
    /// wait (the claims taken are released by `claim_batch`).
    async fn claim(
        &self,
        fates: &mut [Fate],
        events: &mut [Option<O::Event>],
        shutdown: &Shutdown,
    ) -> bool {
        let Some((cache, args)) = &self.cache else {
            return true;
        };
        let fresh: Vec<(usize, &str)> = fates
            .iter()
            .enumerate()
            .filter_map(|(i, f)| match f {
                Fate::Fresh(key) => Some((i, key.as_str())),
                _ => None,
            })
            .collect();
        if fresh.is_empty() {
            return true;
        }
        let keys: Vec<&str> = fresh.iter().map(|(_, k)| *k).collect();
        let ttl = args.in_flight_ttl();
        let wait = BatchWait::up_to(ttl * IN_FLIGHT_WAIT_FACTOR);
        let reports = ClaimEvents {
            stats: &self.stats,
            operator: O::NAME,
        };
        let settled = match cache
            .claim_batch(&keys, ttl, wait, shutdown.wait(), &reports)
            .await
        {
            Ok(Some(settled)) => settled,
            Ok(None) => return false,
            Err(e) => {
                // Only a repeated key errors, and decode() keeps one record
                // per key; process anyway rather than stall.
                telemetry::cache_degraded(&self.stats, O::NAME, keys.len(), &e.to_string());
                vec![Settled::Claimed { degraded: true }; keys.len()]
            }
        };
        let done_before: Vec<usize> = fresh
            .iter()
            .zip(settled)
            .filter(|(_, s)| *s == Settled::AlreadyDone)
            .map(|((i, _), _)| *i)
            .collect();
        for i in done_before {
            fates[i] = Fate::Duplicate;
            events[i] = None;
        }
        true
    }

    /// Hands the claimed events to the operator and records its outcomes.
    /// `Ok(false)`: the operator abandoned the batch at shutdown (its claims
    /// are released here).
    async fn hand_over(
        &self,
        batch: &[Arc<OwnedMessage>],
        spans: &[tracing::Span],
        fates: &mut [Fate],
        events: Vec<Option<O::Event>>,
        shutdown: &Shutdown,
    ) -> Result<bool, Error> {
        let mut handed = Vec::new();
        let mut claimed = Vec::new();
        for (i, event) in events.into_iter().enumerate() {
            let (Some(event), Fate::Fresh(key)) = (event, &fates[i]) else {
                continue;
            };
            let m = &batch[i];
            handed.push(i);
            claimed.push(Claimed {
                event,
                key: key.clone(),
                partition: m.partition(),
                offset: m.offset(),
                timestamp_ms: m.timestamp().to_millis(),
                record: m.clone(),
                span: spans[i].clone(),
            });
        }
        if claimed.is_empty() {
            return Ok(true);
        }
        let outcomes = match self.operator.process(claimed, shutdown).await {
            Ok(outcomes) => outcomes,
            Err(_abandoned) => {
                self.release(fates).await;
                return Ok(false);
            }
        };
        if outcomes.len() != handed.len() {
            self.release(fates).await;
            return Err(Error::Outcomes {
                operator: O::NAME,
                expected: handed.len(),
                got: outcomes.len(),
            });
        }
        for (i, outcome) in handed.into_iter().zip(outcomes) {
            let Fate::Fresh(key) = std::mem::replace(&mut fates[i], Fate::Duplicate) else {
                continue;
            };
            fates[i] = match outcome {
                Outcome::Done => Fate::Finished { key, skipped: None },
                Outcome::Skipped(reason) => Fate::Finished {
                    key,
                    skipped: Some(reason),
                },
                Outcome::Dead { error, attempts } => Fate::Dead {
                    key: Some(key),
                    error,
                    attempts,
                },
            };
        }
        Ok(true)
    }

    /// Gives back the claims of every event of the batch not yet marked done.
    async fn release(&self, fates: &[Fate]) {
        let Some((cache, _)) = &self.cache else {
            return;
        };
        let keys: Vec<&str> = fates
            .iter()
            .filter_map(|f| match f {
                Fate::Fresh(key) | Fate::Finished { key, .. } => Some(key.as_str()),
                Fate::Dead { key, .. } | Fate::Buried(key) => key.as_deref(),
                Fate::Duplicate => None,
            })
            .collect();
        if keys.is_empty() {
            return;
        }
        if let Err(e) = cache.release_many(&keys).await {
            tracing::warn!(operator = O::NAME, error = %e, "claims not released (they expire by their in-flight TTL)");
        }
    }

    /// Writes every dead record to the DLQ: the original key, payload and
    /// `traceparent`, the reason and the source position in headers
    /// (service-kit's [`dlq`](cinerec_service_kit::kafka::dlq) set).
    async fn bury(&self, batch: &[Arc<OwnedMessage>], fates: &mut [Fate]) -> Result<(), Error> {
        let dlq = DeadLetters {
            producer: &self.producer,
            topic: &self.dlq_topic,
            max_attempts: DLQ_ATTEMPTS,
        };
        for (m, fate) in batch.iter().zip(fates.iter_mut()) {
            let Fate::Dead {
                key,
                error,
                attempts,
            } = fate
            else {
                continue;
            };
            dlq.send_with_retries(m, error, Some(*attempts), dlq_backoff, |failures, e| {
                telemetry::dlq_retrying(O::NAME, failures, e)
            })
            .await
            .map_err(Error::DeadLetter)?;
            telemetry::sent_to_dlq(
                &self.stats,
                O::NAME,
                m.partition(),
                m.offset(),
                error,
                *attempts,
            );
            *fate = Fate::Buried(key.take());
        }
        Ok(())
    }

    /// Marks handled events done in the cache (finished, skipped, buried),
    /// so redeliveries are skipped. A failed write only makes a redelivery
    /// redo the (idempotent) effect.
    async fn mark_done(&self, fates: &[Fate]) {
        let Some((cache, args)) = &self.cache else {
            return;
        };
        let keys: Vec<&str> = fates
            .iter()
            .filter_map(|f| match f {
                Fate::Finished { key, .. } | Fate::Buried(Some(key)) => Some(key.as_str()),
                _ => None,
            })
            .collect();
        if keys.is_empty() {
            return;
        }
        match cache.commit_many(&keys, args.done_ttl()).await {
            Ok(w) if !w.degraded => {}
            Ok(_) => {
                telemetry::done_markers_missed(O::NAME, keys.len(), "a cache zone missed them")
            }
            Err(e) => telemetry::done_markers_missed(O::NAME, keys.len(), &e.to_string()),
        }
    }

    fn count(&self, fates: &[Fate]) {
        let (mut processed, mut duplicates) = (0, 0);
        for f in fates {
            match f {
                Fate::Finished { skipped: None, .. } => processed += 1,
                Fate::Finished {
                    key,
                    skipped: Some(reason),
                } => telemetry::skipped(&self.stats, O::NAME, key, reason),
                Fate::Duplicate => duplicates += 1,
                // Counted when written.
                Fate::Buried(_) => {}
                other => {
                    tracing::error!(operator = O::NAME, fate = ?other, "record left unfinished in a batch")
                }
            }
        }
        telemetry::processed(&self.stats, O::NAME, processed);
        telemetry::duplicates(&self.stats, O::NAME, duplicates);
    }

    fn store_offsets(&self, batch: &[Arc<OwnedMessage>]) {
        for m in batch {
            // rd_kafka_offset_store stores offset + 1: the next to consume.
            if let Err(e) = self
                .consumer
                .store_offset(m.topic(), m.partition(), m.offset())
            {
                telemetry::offset_store_failed(O::NAME, m.partition(), m.offset(), &e);
            }
        }
    }
}

/// The pauses between failed dead-letter writes.
const DLQ_BACKOFF: ExponentialBackoff = ExponentialBackoff::new(DLQ_FIRST_BACKOFF, DLQ_MAX_BACKOFF);

/// The pause after the `failures`-th failed dead-letter write.
fn dlq_backoff(failures: u32) -> Duration {
    DLQ_BACKOFF.delay(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlq_backoff_doubles_up_to_its_cap() {
        assert_eq!(dlq_backoff(1), DLQ_FIRST_BACKOFF);
        assert_eq!(dlq_backoff(2), DLQ_FIRST_BACKOFF * 2);
        assert_eq!(dlq_backoff(40), DLQ_MAX_BACKOFF);
    }
}
