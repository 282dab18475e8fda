//! The enricher's loop: poll a batch of `reviews.changed` → decode → claim
//! each `event_id` in the enricher's cache → fetch the *latest* reviews, then
//! their movies and users, each as one multi-get per batch → produce
//! `EnrichedReview`s to `reviews.enriched` → mark the events done in the
//! cache → store the offsets.
//!
//! Invariants:
//! * An offset is stored only after its event's effect is acknowledged by
//!   Kafka (an EnrichedReview, a DLQ record) or the event was decided a skip
//!   (duplicate, review not found). librdkafka auto-commits stored offsets
//!   only, so a crash anywhere redoes events, never loses one.
//! * Batches run to completion between two polls, so a rebalance (which
//!   happens inside a poll) never finds half-done work: what is stored is done.
//! * Per partition, events are handled and their records enqueued in offset
//!   order; the idempotent producer keeps that order per output partition.
//! * A poison event (undecodable, or failing after the retry budget) goes to
//!   the DLQ with the reason in headers; it never blocks its partition.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cinerec_cache::{BatchWait, Cache, CacheConfig, Settled};
use cinerec_events::{EnrichedReview, ReviewChanged, Tier};
use cinerec_service_kit::kafka::dlq::{self, DeadLetters};
use cinerec_service_kit::{Shutdown, trace_context};
use futures::future::join_all;
use rdkafka::Message as _;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tracing::Instrument as _;

use crate::config::Config;
use crate::kafka::{self, EnricherConsumer};
use crate::rpc::{self, Clients, Failure};
use crate::telemetry::{self, Stats};

/// The DLQ headers (service-kit's, re-exported for this crate's tests and
/// readers): why, how many attempts (0: not retryable, e.g. undecodable), and
/// the source topic, partition and offset.
pub use cinerec_service_kit::kafka::dlq::{
    HEADER_ATTEMPTS, HEADER_ERROR, HEADER_OFFSET, HEADER_PARTITION, HEADER_TOPIC,
};

/// Attempts at writing a DLQ record before the enricher stops (it cannot
/// skip the record and must not drop it: a restart redelivers it).
const DLQ_ATTEMPTS: u32 = 20;
/// Longest wait for an event another consumer holds in flight, as a multiple
/// of the in-flight TTL (its claim expires by then at the latest).
const IN_FLIGHT_WAIT_FACTOR: u32 = 2;

/// How claiming a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claiming {
    /// Every event is decided: claimed, duplicate or dead.
    Done,
    /// Shutdown came while waiting for claims held elsewhere.
    Abandoned,
}

/// One event of a batch and where it got to.
#[derive(Debug)]
enum Fate {
    /// Decoded, first of its event_id in the batch: to be claimed.
    Fresh(ReviewChanged),
    /// Skip: done before, or a repeat within the batch.
    Duplicate,
    /// Claimed (or processed anyway, cache degraded): to materialize.
    Claimed(ReviewChanged),
    /// Claimed; its review does not exist.
    NotFound(ReviewChanged),
    /// Claimed and materialized: to produce.
    Enriched(ReviewChanged, Box<EnrichedReview>),
    /// Produced to the sink.
    Produced(ReviewChanged),
    /// To the DLQ (with the event when it decoded, to mark it done after).
    Dead {
        event: Option<ReviewChanged>,
        error: String,
        attempts: u32,
    },
    /// Written to the DLQ.
    Buried(Option<ReviewChanged>),
}

/// A running enricher's handle on its counters.
#[derive(Debug, Clone)]
pub struct Handle {
    stats: Arc<Stats>,
}

impl Handle {
    /// The instance's counters.
    pub fn stats(&self) -> telemetry::StatsSnapshot {
        self.stats.snapshot()
    }
}

/// The enricher: one consumer, one producer, one cache, three RPC clients.
pub struct Enricher {
    config: Config,
    consumer: EnricherConsumer,
    producer: FutureProducer,
    cache: Cache,
    clients: Clients,
    stats: Arc<Stats>,
    dlq_topic: String,
}

impl std::fmt::Debug for Enricher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enricher")
            .field("group", &self.config.group)
            .field("source", &self.config.source_topic)
            .field("sink", &self.config.sink_topic)
            .finish_non_exhaustive()
    }
}

impl Enricher {
    /// Creates the sink/DLQ topics if needed, the Kafka clients, the cache and
    /// the RPC clients (which connect lazily).
    pub async fn new(config: Config) -> anyhow::Result<Enricher> {
        kafka::ensure_topics(&config)
            .await
            .with_context(|| format!("creating topics on {}", config.brokers))?;
        // The claim key is `<namespace>:<event_id>`; in-flight TTL covers one
        // batch with its retries, done TTL any redelivery window.
        let cache = Cache::new(&CacheConfig::new(
            config.cache_namespace.clone(),
            &config.cache_urls,
        )?)?;
        let clients = rpc::connect(config.endpoints(), config.retry())?;
        telemetry::register_event_outcomes();
        Ok(Enricher {
            consumer: kafka::consumer(&config)?,
            producer: kafka::producer(&config)?,
            dlq_topic: config.dlq_topic(),
            cache,
            clients,
            stats: Arc::default(),
            config,
        })
    }

    /// A handle on the counters (take it before [`run`](Self::run)).
    pub fn handle(&self) -> Handle {
        Handle {
            stats: self.stats.clone(),
        }
    }

    /// Consumes until `shutdown` fires, then finishes the batch in hand,
    /// stores its offsets, commits them and flushes the producer.
    ///
    /// Errors only when a DLQ record cannot be written (nothing may be
    /// dropped, nothing may block): the caller exits and a restart redelivers.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        tracing::info!(group = %self.config.group, topic = %self.config.source_topic, "enricher consuming");
        let outcome = self.consume(&shutdown).await;
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "final commit failed (stored offsets commit on close)")
            }
        }
        if let Err(e) = rdkafka::producer::Producer::flush(&self.producer, Duration::from_secs(10))
        {
            tracing::warn!(error = %e, "producer flush at shutdown");
        }
        tracing::info!(stats = ?self.stats.snapshot(), "enricher stopped");
        outcome
    }

    async fn consume(&self, shutdown: &Shutdown) -> anyhow::Result<()> {
        loop {
            let Some(batch) = self.next_batch(shutdown).await else {
                return Ok(());
            };
            self.process(batch, shutdown).await?;
            if shutdown.is_triggered() {
                return Ok(());
            }
        }
    }

    /// Waits for a first record (or shutdown: `None`), then collects more
    /// until the batch is full or the linger time has passed.
    async fn next_batch(&self, shutdown: &Shutdown) -> Option<Vec<OwnedMessage>> {
        let mut batch = Vec::new();
        loop {
            let first = tokio::select! {
                biased;
                _ = shutdown.wait() => return None,
                m = self.consumer.recv() => m,
            };
            match first {
                Ok(m) => {
                    batch.push(m.detach());
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "poll failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let until = tokio::time::Instant::now() + self.config.batch_linger();
        while batch.len() < self.config.batch_size {
            match tokio::time::timeout_at(until, self.consumer.recv()).await {
                Err(_) => break,
                Ok(Ok(m)) => batch.push(m.detach()),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "poll failed");
                    break;
                }
            }
        }
        Some(batch)
    }

    /// One batch, to completion: every record ends produced, skipped or in
    /// the DLQ, and its offset stored. The one exception: shutdown while
    /// waiting for claims other consumers hold abandons the batch explicitly
    /// (claims released, no offset stored), so a stop never waits for a
    /// foreign in-flight TTL; the batch is redelivered to the next owner.
    ///
    /// Traces: each record gets a consumer span (`reviews.changed process`)
    /// parented to the producer context in its headers; the batch's work
    /// (claims, the multi-get RPCs, produce) runs in one `enrich batch` span,
    /// a child of the first record's span and linked to the others', since
    /// one RPC serves many events.
    async fn process(&self, batch: Vec<OwnedMessage>, shutdown: &Shutdown) -> anyhow::Result<()> {
        let started = Instant::now();
        let spans: Vec<tracing::Span> = batch
            .iter()
            .map(|m| trace_context::consumer_span(m, &self.config.group))
            .collect();
        let work = async {
            let mut fates = self.decode(&batch);
            if self.claim(&mut fates, shutdown).await == Claiming::Abandoned {
                self.abandon(&fates);
                return Ok(());
            }
            self.materialize(&mut fates).await;
            self.produce(&batch, &spans, &mut fates).await;
            self.bury(&batch, &mut fates).await?;
            self.mark_done(&fates).await;
            self.count(&fates);
            self.store_offsets(&batch);
            telemetry::batch_done(&self.stats, batch.len(), started.elapsed());
            Ok(())
        };
        work.instrument(trace_context::batch_span("enrich batch", &spans))
            .await
    }

    fn decode(&self, batch: &[OwnedMessage]) -> Vec<Fate> {
        let mut seen = HashSet::with_capacity(batch.len());
        batch
            .iter()
            .map(|m| match m.payload().map(ReviewChanged::decode) {
                None => Fate::Dead {
                    event: None,
                    error: "empty payload".into(),
                    attempts: 0,
                },
                Some(Err(e)) => Fate::Dead {
                    event: None,
                    error: format!("undecodable ReviewChanged: {e}"),
                    attempts: 0,
                },
                Some(Ok(ev)) if seen.insert(ev.event_id) => Fate::Fresh(ev),
                Some(Ok(_)) => Fate::Duplicate,
            })
            .collect()
    }

    /// Claims every fresh event ([`Cache::claim_batch`]): done before →
    /// duplicate; held by another consumer → wait for it (its claim expires by
    /// the in-flight TTL; after twice that it is taken over); cache
    /// unreachable → process anyway, counted.
    async fn claim(&self, fates: &mut [Fate], shutdown: &Shutdown) -> Claiming {
        let ttl = self.config.in_flight_ttl();
        let fresh: Vec<(usize, String)> = fates
            .iter()
            .enumerate()
            .filter_map(|(i, f)| match f {
                Fate::Fresh(ev) => Some((i, ev.event_id.to_string())),
                _ => None,
            })
            .collect();
        let keys: Vec<&str> = fresh.iter().map(|(_, k)| k.as_str()).collect();
        let wait = BatchWait::up_to(ttl * IN_FLIGHT_WAIT_FACTOR);
        let events = telemetry::ClaimEvents(&self.stats);
        let settled = match self
            .cache
            .claim_batch(&keys, ttl, wait, shutdown.wait(), &events)
            .await
        {
            Ok(Some(settled)) => settled,
            Ok(None) => return Claiming::Abandoned,
            Err(e) => {
                // Only a repeated key errors, and decode() keeps one record per
                // event id; process anyway rather than stall.
                telemetry::cache_degraded(&self.stats, keys.len(), &e.to_string());
                vec![Settled::Claimed { degraded: true }; keys.len()]
            }
        };
        for ((i, _), settled) in fresh.iter().zip(settled) {
            if let Fate::Fresh(ev) = fates[*i] {
                fates[*i] = match settled {
                    Settled::Claimed { .. } => Fate::Claimed(ev),
                    Settled::AlreadyDone => Fate::Duplicate,
                };
            }
        }
        Claiming::Done
    }

    /// Shutdown while the batch waited for foreign claims: `claim_batch` has
    /// given back the claims it took; no offset is stored, so the next run
    /// redoes the batch.
    fn abandon(&self, fates: &[Fate]) {
        tracing::info!(
            events = fates.len(),
            "shutdown while waiting for foreign claims: batch abandoned (its claims released), offsets not stored"
        );
    }

    /// Delayed materialization: the latest reviews, then movies and users,
    /// one multi-get each for the whole batch.
    async fn materialize(&self, fates: &mut [Fate]) {
        let claimed: Vec<ReviewChanged> = fates
            .iter()
            .filter_map(|f| match f {
                Fate::Claimed(ev) => Some(*ev),
                _ => None,
            })
            .collect();
        if claimed.is_empty() {
            return;
        }
        let review_ids = unique(claimed.iter().map(|ev| ev.review_id));
        let reviews = match self.clients.reviews(&review_ids).await {
            Ok(r) => r,
            Err(failure) => return kill_claimed(fates, &failure),
        };
        let movie_ids = unique(reviews.found.values().map(|r| r.movie_id));
        let user_ids = unique(reviews.found.values().map(|r| r.user_id));
        let (movies, users) = tokio::join!(
            self.clients.movies(&movie_ids),
            self.clients.users(&user_ids)
        );
        let enriched_at = now_micros();
        for fate in fates.iter_mut() {
            let Fate::Claimed(ev) = *fate else { continue };
            let Some(review) = reviews.found.get(&ev.review_id) else {
                *fate = Fate::NotFound(ev);
                continue;
            };
            let dead = |error: String, attempts: u32| Fate::Dead {
                event: Some(ev),
                error,
                attempts,
            };
            let movie = match &movies {
                Err(f) => {
                    *fate = dead(f.error.clone(), f.attempts);
                    continue;
                }
                Ok(m) => m.found.get(&review.movie_id),
            };
            let user = match &users {
                Err(f) => {
                    *fate = dead(f.error.clone(), f.attempts);
                    continue;
                }
                Ok(u) => u.found.get(&review.user_id),
            };
            let (Some(movie), Some(user)) = (movie, user) else {
                *fate = dead(
                    format!(
                        "movie {} or user {} of review {} unknown to movie-svc/user-svc",
                        review.movie_id, review.user_id, ev.review_id
                    ),
                    1,
                );
                continue;
            };
            let enriched = EnrichedReview {
                event_id: ev.event_id,
                review_id: ev.review_id,
                version: review.version,
                deleted: review.deleted,
                rating: if review.deleted { None } else { review.rating },
                user_id: review.user_id,
                movie_id: review.movie_id,
                changed_at_us: review.changed_at,
                movie_title: movie.title.clone(),
                movie_year: movie.year,
                movie_genres: movie.genres.clone(),
                movie_popularity: movie.popularity,
                user_country: user.country.clone(),
                user_zone: user.zone.clone(),
                user_preferred_genres: user.preferred_genres.clone(),
                user_tier: match user.tier {
                    rpc::user::Tier::Free => Tier::Free,
                    rpc::user::Tier::Standard => Tier::Standard,
                    rpc::user::Tier::Premium => Tier::Premium,
                },
                enriched_at_us: enriched_at,
            };
            *fate = Fate::Enriched(ev, Box::new(enriched));
        }
    }

    /// Produces every enriched event, enqueued in batch order; failed
    /// deliveries are retried with backoff, then go to the DLQ.
    async fn produce(&self, batch: &[OwnedMessage], spans: &[tracing::Span], fates: &mut [Fate]) {
        let retry = self.config.retry();
        let mut failures = 0u32;
        loop {
            let pending: Vec<usize> = (0..fates.len())
                .filter(|&i| matches!(fates[i], Fate::Enriched(..)))
                .collect();
            if pending.is_empty() {
                return;
            }
            let mut deliveries = Vec::with_capacity(pending.len());
            let mut errors: HashMap<usize, String> = HashMap::new();
            for &i in &pending {
                let Fate::Enriched(ev, enriched) = &fates[i] else {
                    continue;
                };
                let (ev, key) = (*ev, enriched.key());
                let payload = match enriched.encode() {
                    Ok(p) => p,
                    Err(e) => {
                        fates[i] = Fate::Dead {
                            event: Some(ev),
                            error: format!("encoding EnrichedReview of {}: {e}", ev.event_id),
                            attempts: 0,
                        };
                        continue;
                    }
                };
                let publish =
                    trace_context::producer_span(Some(&spans[i]), &self.config.sink_topic, &key);
                let mut record = FutureRecord::to(&self.config.sink_topic)
                    .key(&key)
                    .payload(&payload)
                    .headers(output_trace_headers(&batch[i], &publish));
                // The enriched record keeps the change's Kafka timestamp (the
                // moment the review entered the log), so the recommender's
                // latency histogram measures the whole pipeline from there.
                if let Some(ms) = batch[i].timestamp().to_millis() {
                    record = record.timestamp(ms);
                }
                match self.producer.send_result(record) {
                    Ok(delivery) => deliveries.push((i, delivery, publish, Instant::now())),
                    Err((e, _)) => {
                        errors.insert(i, e.to_string());
                    }
                }
            }
            // Each producer span stays open until its record is acknowledged.
            let results = join_all(deliveries.into_iter().map(
                |(i, d, publish, sent)| async move {
                    let result = d.instrument(publish).await;
                    telemetry::produce_answered(sent.elapsed(), matches!(result, Ok(Ok(_))));
                    (i, result)
                },
            ))
            .await;
            for (i, result) in results {
                match result {
                    Ok(Ok(_)) => {
                        if let Fate::Enriched(ev, _) = &fates[i] {
                            fates[i] = Fate::Produced(*ev);
                        }
                    }
                    Ok(Err((e, _))) => {
                        errors.insert(i, e.to_string());
                    }
                    Err(_) => {
                        errors.insert(i, "producer dropped the delivery".into());
                    }
                }
            }
            if errors.is_empty() {
                return;
            }
            failures += 1;
            if failures >= retry.attempts {
                for (i, error) in errors {
                    fates[i] = Fate::Dead {
                        event: fate_event(&fates[i]),
                        error: format!("producing to {}: {error}", self.config.sink_topic),
                        attempts: failures,
                    };
                }
                return;
            }
            let sample = errors.values().next().cloned().unwrap_or_default();
            telemetry::retrying("produce", failures, &sample);
            tokio::time::sleep(retry.backoff(failures)).await;
        }
    }

    /// Writes every dead record to the DLQ: the original key and payload,
    /// the reason and the source position in headers.
    async fn bury(&self, batch: &[OwnedMessage], fates: &mut [Fate]) -> anyhow::Result<()> {
        let dlq = DeadLetters {
            producer: &self.producer,
            topic: &self.dlq_topic,
            max_attempts: DLQ_ATTEMPTS,
        };
        for (m, fate) in batch.iter().zip(fates.iter_mut()) {
            let Fate::Dead {
                event,
                error,
                attempts,
            } = &*fate
            else {
                continue;
            };
            dlq.send_with_retries(
                m,
                error,
                Some(*attempts),
                |failures| self.config.retry().backoff(failures),
                |failures, e| telemetry::retrying("dlq", failures, e),
            )
            .await
            .map_err(anyhow::Error::msg)?;
            telemetry::sent_to_dlq(&self.stats, m.partition(), m.offset(), error, *attempts);
            *fate = Fate::Buried(*event);
        }
        Ok(())
    }

    /// Marks handled events done in the cache (produced, not found, buried),
    /// so redeliveries are skipped. A failed write only makes a redelivery
    /// redo the (idempotent) effect.
    async fn mark_done(&self, fates: &[Fate]) {
        let keys: Vec<String> = fates
            .iter()
            .filter_map(|f| match f {
                Fate::Produced(ev) | Fate::NotFound(ev) | Fate::Buried(Some(ev)) => {
                    Some(ev.event_id.to_string())
                }
                _ => None,
            })
            .collect();
        if keys.is_empty() {
            return;
        }
        match self.cache.commit_many(&keys, self.config.done_ttl()).await {
            Ok(w) if !w.degraded => {}
            Ok(_) => tracing::warn!(events = keys.len(), "done markers missed a cache zone"),
            Err(e) => tracing::warn!(error = %e, "done markers not written"),
        }
    }

    fn count(&self, fates: &[Fate]) {
        for f in fates {
            match f {
                Fate::Produced(ev) => {
                    telemetry::processed(&self.stats, ev.event_id, ev.review_id, ev.version)
                }
                Fate::Duplicate => telemetry::duplicate_skipped(&self.stats),
                Fate::NotFound(ev) => {
                    telemetry::review_not_found(&self.stats, ev.event_id, ev.review_id)
                }
                // Counted when written.
                Fate::Buried(_) => {}
                other => tracing::error!(fate = ?other, "event left unfinished in a batch"),
            }
        }
    }

    fn store_offsets(&self, batch: &[OwnedMessage]) {
        for m in batch {
            // rd_kafka_offset_store stores offset + 1: the next to consume.
            if let Err(e) = self
                .consumer
                .store_offset(m.topic(), m.partition(), m.offset())
            {
                telemetry::offset_store_failed(m.partition(), m.offset(), &e);
            }
        }
    }
}

fn fate_event(f: &Fate) -> Option<ReviewChanged> {
    match f {
        Fate::Fresh(ev)
        | Fate::Claimed(ev)
        | Fate::NotFound(ev)
        | Fate::Enriched(ev, _)
        | Fate::Produced(ev) => Some(*ev),
        Fate::Dead { event, .. } | Fate::Buried(event) => *event,
        Fate::Duplicate => None,
    }
}

/// Every claimed event of the batch goes to the DLQ with `failure`.
fn kill_claimed(fates: &mut [Fate], failure: &Failure) {
    for f in fates.iter_mut() {
        if let Fate::Claimed(ev) = *f {
            *f = Fate::Dead {
                event: Some(ev),
                error: failure.error.clone(),
                attempts: failure.attempts,
            };
        }
    }
}

/// The output record's trace headers: the producer span's context, or,
/// when this process exports no spans, the source record's `traceparent`
/// passed through unchanged (the trace still connects downstream).
fn output_trace_headers(m: &OwnedMessage, publish: &tracing::Span) -> OwnedHeaders {
    let cx = trace_context::context_of(publish);
    if trace_context::W3cContext::of(&cx).is_some() {
        trace_context::inject_kafka(&cx, OwnedHeaders::new())
    } else {
        dlq::traceparent_of(m)
    }
}

fn unique<T: Copy + Eq + std::hash::Hash>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items.filter(|i| seen.insert(*i)).collect()
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The loop must be spawnable on a multi-threaded runtime.
#[allow(dead_code)]
fn assert_send(e: Enricher, s: Shutdown, c: &Clients) {
    fn send<T: Send>(_: T) {}
    send(c.reviews(&[]));
    send(c.movies(&[]));
    send(e.run(s));
}
