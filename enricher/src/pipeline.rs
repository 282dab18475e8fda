//! The enricher's effect, as an operator on the at-least-once runtime
//! ([`cinerec_stream`]): for a batch of claimed `reviews.changed` events,
//! fetch the *latest* reviews, then their movies and users, each as one
//! multi-get per batch (delayed materialization) → produce `EnrichedReview`s
//! to `reviews.enriched`, keyed by `user_id`. The runtime around it polls,
//! decodes, claims each `event_id` in the enricher's cache, writes the dead
//! events to the DLQ, marks done and stores the offsets; why a crash neither
//! loses nor doubles an effect is written in the runtime's crate docs.
//!
//! Invariants of the effect:
//! * [`Outcome::Done`] only once Kafka acknowledged the EnrichedReview
//!   (`acks=all`, idempotent producer); the runtime stores the offset after.
//! * Per partition, events are handled and their records enqueued in offset
//!   order; the idempotent producer keeps that order per output partition.
//! * The effect is idempotent: the enriched record carries the *latest*
//!   review (not the event's version) and its event_id, so a redo produces
//!   the same record again, which the recommender's claims skip.
//! * RPC failures after the retry budget, and a movie or user unknown to
//!   their services, are [`Outcome::Dead`] (→ DLQ); a review that no longer
//!   exists is [`Outcome::Skipped`] (`not_found`).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use anyhow::Context as _;
use cinerec_events::{EnrichedReview, ReviewChanged};
use cinerec_service_kit::clock::now_micros;
use cinerec_service_kit::kafka::dlq;
use cinerec_service_kit::{Shutdown, trace_context};
use cinerec_stream::{Abandoned, Claimed, Decoded, Operator, Outcome, Runtime};
use futures::future::join_all;
use rdkafka::Message as _;
use rdkafka::message::{OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tracing::Instrument as _;

use crate::config::Config;
use crate::kafka;
use crate::rpc::{self, Clients, Failure, Retry};
use crate::telemetry;

/// The DLQ headers (service-kit's, re-exported for this crate's tests and
/// readers): why, how many attempts (0: not retryable, e.g. undecodable), and
/// the source topic, partition and offset.
pub use cinerec_stream::{
    HEADER_ATTEMPTS, HEADER_ERROR, HEADER_OFFSET, HEADER_PARTITION, HEADER_TOPIC,
};

/// A running enricher's handle on its counters (the runtime's).
pub type Handle = cinerec_stream::Handle;

/// Where one claimed event of a batch got to.
#[derive(Debug)]
enum Step {
    /// Claimed: to materialize.
    Claimed,
    /// Its review does not exist.
    NotFound,
    /// Materialized: to produce.
    Enriched(Box<EnrichedReview>),
    /// Produced to the sink and acknowledged.
    Produced,
    /// For the DLQ.
    Dead { error: String, attempts: u32 },
}

/// The enricher's effect: one producer, three RPC clients.
pub struct Enrich {
    producer: FutureProducer,
    clients: Clients,
    sink_topic: String,
    retry: Retry,
}

impl std::fmt::Debug for Enrich {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrich")
            .field("sink", &self.sink_topic)
            .finish_non_exhaustive()
    }
}

impl Operator for Enrich {
    type Event = ReviewChanged;
    const NAME: &'static str = "enricher";
    const SKIP_REASONS: &'static [&'static str] = &["not_found"];

    fn decode(&self, record: &OwnedMessage) -> Result<Decoded<ReviewChanged>, String> {
        let payload = record.payload().ok_or("empty payload")?;
        let event = ReviewChanged::decode(payload)
            .map_err(|e| format!("undecodable ReviewChanged: {e}"))?;
        Ok(Decoded {
            key: event.event_id.to_string(),
            event,
        })
    }

    async fn process(
        &self,
        batch: Vec<Claimed<ReviewChanged>>,
        _shutdown: &Shutdown,
    ) -> Result<Vec<Outcome>, Abandoned> {
        // Every retry is bounded (RPCs, produce): the batch always finishes.
        let mut steps: Vec<Step> = batch.iter().map(|_| Step::Claimed).collect();
        self.materialize(&batch, &mut steps).await;
        self.produce(&batch, &mut steps).await;
        Ok(batch
            .iter()
            .zip(steps)
            .map(|(c, step)| match step {
                Step::Produced => Outcome::Done,
                Step::NotFound => {
                    telemetry::review_not_found(c.event.event_id, c.event.review_id);
                    Outcome::Skipped("not_found")
                }
                Step::Dead { error, attempts } => Outcome::Dead { error, attempts },
                other => Outcome::Dead {
                    error: format!("left unfinished by the enricher ({other:?})"),
                    attempts: 0,
                },
            })
            .collect())
    }
}

/// The enricher: its effect on the runtime.
#[derive(Debug)]
pub struct Enricher {
    runtime: Runtime<Enrich>,
}

impl Enricher {
    /// Creates the sink topic if needed, the producer, the RPC clients (which
    /// connect lazily) and the runtime (consumer, DLQ, cache).
    pub async fn new(config: Config) -> anyhow::Result<Enricher> {
        kafka::ensure_topics(&config)
            .await
            .with_context(|| format!("creating topics on {}", config.kafka.brokers))?;
        let clients = rpc::connect(config.endpoints(), config.retry())?;
        let enrich = Enrich {
            producer: kafka::producer(&config)?,
            clients,
            sink_topic: config.sink_topic.clone(),
            retry: config.retry(),
        };
        let runtime = Runtime::new(
            cinerec_stream::Config {
                kafka: config.kafka,
                cache: Some(config.cache),
            },
            enrich,
        )
        .await?;
        Ok(Enricher { runtime })
    }

    /// A handle on the counters (take it before [`run`](Self::run)).
    pub fn handle(&self) -> Handle {
        self.runtime.handle()
    }

    /// Consumes until `shutdown` fires (see [`Runtime::run`]).
    ///
    /// Errors only when a DLQ record cannot be written (nothing may be
    /// dropped, nothing may block): the caller exits and a restart redelivers.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        Ok(self.runtime.run(shutdown).await?)
    }
}

impl Enrich {
    /// Delayed materialization: the latest reviews, then movies and users,
    /// one multi-get each for the whole batch.
    async fn materialize(&self, batch: &[Claimed<ReviewChanged>], steps: &mut [Step]) {
        if batch.is_empty() {
            return;
        }
        let review_ids = unique(batch.iter().map(|c| c.event.review_id));
        let reviews = match self.clients.reviews(&review_ids).await {
            Ok(r) => r,
            Err(failure) => return kill_claimed(steps, &failure),
        };
        let movie_ids = unique(reviews.found.values().map(|r| r.movie_id));
        let user_ids = unique(reviews.found.values().map(|r| r.user_id));
        let (movies, users) = tokio::join!(
            self.clients.movies(&movie_ids),
            self.clients.users(&user_ids)
        );
        let enriched_at = now_micros();
        for (c, step) in batch.iter().zip(steps.iter_mut()) {
            if !matches!(step, Step::Claimed) {
                continue;
            }
            let ev = c.event;
            let Some(review) = reviews.found.get(&ev.review_id) else {
                *step = Step::NotFound;
                continue;
            };
            let movie = match &movies {
                Err(f) => {
                    *step = dead(f.error.clone(), f.attempts);
                    continue;
                }
                Ok(m) => m.found.get(&review.movie_id),
            };
            let user = match &users {
                Err(f) => {
                    *step = dead(f.error.clone(), f.attempts);
                    continue;
                }
                Ok(u) => u.found.get(&review.user_id),
            };
            let (Some(movie), Some(user)) = (movie, user) else {
                *step = dead(
                    format!(
                        "movie {} or user {} of review {} unknown to movie-svc/user-svc",
                        review.movie_id, review.user_id, ev.review_id
                    ),
                    1,
                );
                continue;
            };
            *step = Step::Enriched(Box::new(EnrichedReview {
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
                user_tier: user.tier,
                enriched_at_us: enriched_at,
            }));
        }
    }

    /// Produces every enriched event, enqueued in batch order; failed
    /// deliveries are retried with backoff, then go to the DLQ.
    async fn produce(&self, batch: &[Claimed<ReviewChanged>], steps: &mut [Step]) {
        let mut failures = 0u32;
        loop {
            let pending: Vec<usize> = (0..steps.len())
                .filter(|&i| matches!(steps[i], Step::Enriched(..)))
                .collect();
            if pending.is_empty() {
                return;
            }
            let mut deliveries = Vec::with_capacity(pending.len());
            let mut errors: HashMap<usize, String> = HashMap::new();
            for &i in &pending {
                let Step::Enriched(enriched) = &steps[i] else {
                    continue;
                };
                let (c, key) = (&batch[i], enriched.key());
                let payload = match enriched.encode() {
                    Ok(p) => p,
                    Err(e) => {
                        steps[i] = dead(
                            format!("encoding EnrichedReview of {}: {e}", c.event.event_id),
                            0,
                        );
                        continue;
                    }
                };
                let publish = trace_context::producer_span(Some(&c.span), &self.sink_topic, &key);
                let mut record = FutureRecord::to(&self.sink_topic)
                    .key(&key)
                    .payload(&payload)
                    .headers(output_trace_headers(&c.record, &publish));
                // The enriched record keeps the change's Kafka timestamp (the
                // moment the review entered the log), so the recommender's
                // latency histogram measures the whole pipeline from there.
                if let Some(ms) = c.timestamp_ms {
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
                    Ok(Ok(_)) => steps[i] = Step::Produced,
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
            if failures >= self.retry.attempts {
                for (i, error) in errors {
                    steps[i] = dead(
                        format!("producing to {}: {error}", self.sink_topic),
                        failures,
                    );
                }
                return;
            }
            let sample = errors.values().next().cloned().unwrap_or_default();
            telemetry::retrying("produce", failures, &sample);
            tokio::time::sleep(self.retry.backoff.delay(failures)).await;
        }
    }
}

fn dead(error: String, attempts: u32) -> Step {
    Step::Dead { error, attempts }
}

/// Every event still to materialize goes to the DLQ with `failure`.
fn kill_claimed(steps: &mut [Step], failure: &Failure) {
    for step in steps.iter_mut() {
        if matches!(step, Step::Claimed) {
            *step = dead(failure.error.clone(), failure.attempts);
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

/// The loop must be spawnable on a multi-threaded runtime.
#[allow(dead_code)]
fn assert_send(e: Enricher, s: Shutdown, c: &Clients) {
    fn send<T: Send>(_: T) {}
    send(c.reviews(&[]));
    send(c.movies(&[]));
    send(e.run(s));
}
