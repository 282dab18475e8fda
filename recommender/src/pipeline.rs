//! The recommender as a keyed stream processor: restore the model from the
//! changelog, then run the [`Recommend`] operator on the at-least-once
//! runtime (`cinerec-stream`), which polls batches of `reviews.enriched` →
//! decodes (poison → DLQ) → claims each `event_id` in the recommender's own
//! cache → hands them to the operator: apply to the in-process [`Model`] →
//! append the states that advanced to the changelog and wait for their acks
//! → then the runtime marks the events done and stores the offsets. Beside
//! it, a **follower** applies every other instance's changelog records (the
//! model is a full replica on each instance), and two **flush** tasks write
//! the serving rows this instance owns, coalesced: a batch's own users at
//! once, the background refresh on the tick.
//!
//! # Why a crash neither loses nor doubles an effect
//!
//! * **The state is a function of a set.** The model keeps the highest
//!   version of each review ([`Model::apply`] ignores anything not newer) and
//!   derives likes, `N` and `C` from those states alone. Applying a state
//!   twice, late, out of order or from another instance changes nothing a
//!   newer version does not override, so duplicates, redeliveries, echoes of
//!   an instance's own changelog records and a zombie's writes are harmless.
//! * **Order per batch**: (a) the states that advanced go to the changelog
//!   and are acknowledged (`acks=all`), then (b) the cache's done markers,
//!   then (c) the Kafka offsets. A crash before (a) completes leaves offsets
//!   unstored: Kafka redelivers, the states are applied and appended again.
//!   After (a), the changelog holds the batch: a restarted (or the next)
//!   owner restores it, and the redelivered events are duplicates (cache) or
//!   stale (model). Offsets are stored only after (a) and (b): an event whose
//!   offset is committed or that the cache calls done is in the changelog.
//! * **Serving rows are derived, written later, and idempotent**: every
//!   flush interval the flush task recomputes the rows of the keys this
//!   instance owns ([`crate::ownership`]) that changed, and writes each at
//!   most once, only when its value differs from the last value *durably*
//!   written (the digest is recorded after Cassandra acknowledged the write,
//!   never before: a write that failed or was abandoned is not "written").
//!   A crash loses only pending rows; whoever takes the partition next marks
//!   every key it owns through it dirty and rewrites them from the restored
//!   model.
//! * **Write timestamps** are fenced by the partition's lease generation, so
//!   a zombie's late write loses to the new owner's ([`crate::ownership`]).
//! * A Cassandra or Kafka failure is retried with backoff for as long as it
//!   lasts; the batch's offsets wait (the partition blocks rather than lose).
//!   Only shutdown abandons a batch — claims released, no offset stored.
//!
//! # N instances
//!
//! Instances in one consumer group split the source partitions; each reads
//! the whole changelog, so each holds the whole model, and each writes only
//! the rows it owns. A revoked partition's pending rows are drained in the
//! revoke callback (bounded by `--drain-timeout-ms`; later is still safe);
//! an assigned partition's rows are all recomputed once its lease is taken.
//!
//! # The flush and the quiescence guarantee
//!
//! A like change of `(u, m)` changes `N(m)`, hence `similarity(m, j)` for
//! every `j` co-liked with `m`, hence the similar-movies rows of `m` and its
//! neighbours and the recommendations of every user who likes any of them.
//! Users whose own events advanced are flushed at the next tick, whatever
//! their number (their latency is the one measured); the rest is tracked as
//! dirty sets — movies whose `N` changed (expanded to their current
//! neighbours at flush time), movies a changed user likes, users to
//! recompute, genres with new events — and each tick recomputes up to
//! `--refresh-max-users` users and as many movies, leaving the rest for the
//! next. Once the input is idle the sets drain, and after one tick that ends
//! with nothing dirty every owned row equals the current model.

mod flush;
mod state;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cinerec_backoff::ExponentialBackoff;
use cinerec_events::EnrichedReview;
use cinerec_service_kit::Shutdown;
use cinerec_service_kit::clock::now_micros;
use cinerec_stream::{Abandoned, Claimed, Decoded, Operator, Outcome};
use rdkafka::Message as _;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use tracing::Instrument as _;

use self::flush::{Flusher, direct_loop, flush_loop};
use self::state::{Moves, Stamps, State};
use crate::changelog::{self, Reader};
use crate::config::Config;
use crate::kafka;
use crate::model::{ReviewState, TOP_N};
use crate::ownership::Leases;
use crate::store::{self, Store};
use crate::telemetry::{self, Outcomes, Stats};

/// The DLQ headers (the runtime's, re-exported for this crate's tests and
/// readers): why, and the source topic, partition and offset.
pub use cinerec_stream::{HEADER_ERROR, HEADER_OFFSET, HEADER_PARTITION, HEADER_TOPIC};

/// Once shutdown fires, how long the last flush may still take.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Trending movies considered for a cold-start top-up (some may be seen).
const FALLBACK_CANDIDATES: usize = TOP_N * 3;
/// Partitions the source topic is created with when it does not exist yet
/// (the enricher's default).
const SOURCE_PARTITIONS: i32 = 6;

/// A running recommender's handle on its counters and readiness.
#[derive(Debug, Clone)]
pub struct Handle {
    stats: Arc<Stats>,
    runtime: Arc<OnceLock<cinerec_stream::Handle>>,
    ready: Arc<AtomicBool>,
}

impl Handle {
    /// The instance's counters: the model's (applied, stale, late, flushes)
    /// and the runtime's (duplicates, dead letters, batches, cache degraded).
    pub fn stats(&self) -> telemetry::StatsSnapshot {
        let mut s = self.stats.snapshot();
        if let Some(r) = self.runtime.get().map(cinerec_stream::Handle::stats) {
            s.duplicates = r.duplicates;
            s.dlq = r.dlq;
            s.batches = r.batches;
            s.cache_degraded = r.cache_degraded;
        }
        s
    }

    /// Whether the model has been restored and consumption started.
    pub fn is_rebuilt(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// The recommender: the changelog and its reader, the store, the leases,
/// the shared state; [`run`](Self::run) puts the [`Recommend`] operator on
/// the at-least-once runtime.
pub struct Recommender {
    config: Config,
    changelog: changelog::Writer,
    changelog_topic: String,
    /// This instance's name (leases, changelog records' writer header).
    instance: String,
    store: Store,
    leases: Leases,
    state: Arc<Mutex<State>>,
    moves: Arc<Moves>,
    stats: Arc<Stats>,
    runtime: Arc<OnceLock<cinerec_stream::Handle>>,
    ready: Arc<AtomicBool>,
}

impl std::fmt::Debug for Recommender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recommender")
            .field("group", &self.config.kafka.group)
            .field("source", &self.config.kafka.source_topic)
            .field("changelog", &self.changelog_topic)
            .field("keyspace", &self.config.cql.keyspace)
            .finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves a model that may be half-updated;
    // nothing of it was recorded as done, and the process is going down anyway.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Recommender {
    /// Creates the source (if missing) and changelog topics, the keyspace
    /// and tables, the prepared statements and the changelog producer. The
    /// runtime (consumer, DLQ, cache) is created by [`run`](Self::run), after
    /// the model is restored.
    pub async fn new(config: Config) -> anyhow::Result<Recommender> {
        telemetry::register();
        let kafka = &config.kafka;
        cinerec_service_kit::kafka::ensure_topics(
            &kafka.brokers,
            &[(&kafka.source_topic, SOURCE_PARTITIONS)],
        )
        .await
        .with_context(|| format!("creating the source topic on {}", kafka.brokers))?;
        let partitions = changelog::partitions(&kafka.brokers, &kafka.source_topic)
            .await
            .with_context(|| format!("partitions of {}", kafka.source_topic))?;
        let changelog_topic = config.changelog_topic();
        changelog::ensure(&kafka.brokers, &changelog_topic, partitions)
            .await
            .with_context(|| format!("creating the changelog topic {changelog_topic}"))?;
        let session = store::connect(&config.cql).await?;
        store::migrate(&session, &config.cql).await?;
        let instance = config.instance();
        let leases = Leases::new(&session, &config.cql.keyspace, instance.clone()).await?;
        let store = Store::new(session, &config.cql).await?;
        let producer = kafka::producer(&config)?;
        Ok(Recommender {
            changelog: changelog::Writer::new(
                producer,
                changelog_topic.clone(),
                partitions,
                instance.clone(),
            ),
            instance,
            changelog_topic,
            state: Arc::new(Mutex::new(State::new(&config, partitions))),
            moves: Arc::new(Moves {
                drain_timeout: Duration::from_millis(config.drain_timeout_ms),
                ..Moves::default()
            }),
            stats: Arc::default(),
            runtime: Arc::default(),
            ready: Arc::default(),
            leases,
            store,
            config,
        })
    }

    /// A handle on the counters (take it before [`run`](Self::run)).
    pub fn handle(&self) -> Handle {
        Handle {
            stats: self.stats.clone(),
            runtime: self.runtime.clone(),
            ready: self.ready.clone(),
        }
    }

    /// The store (readiness probes share its session).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Restores the model, then consumes until `shutdown` fires; the
    /// changelog follower and the flush task run beside the consumer.
    ///
    /// Errors when the changelog cannot be read or a DLQ record cannot be
    /// written (nothing may be dropped): the caller exits, a restart retries.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Some(reader) = self.restore(&shutdown).await? else {
            return Ok(());
        };
        let follower = tokio::spawn(follow(
            reader,
            self.instance.clone(),
            self.state.clone(),
            shutdown.clone(),
        ));
        self.moves.flushing.store(true, Ordering::Release);
        let flusher = Flusher {
            config: self.config.clone(),
            state: self.state.clone(),
            moves: self.moves.clone(),
            store: self.store.clone(),
            leases: self.leases.clone(),
            stats: self.stats.clone(),
            shutdown: shutdown.clone(),
        };
        let direct = tokio::spawn(direct_loop(flusher.clone()));
        let flush = tokio::spawn(flush_loop(flusher));
        let operator = Recommend {
            state: self.state.clone(),
            moves: self.moves.clone(),
            changelog: self.changelog.clone(),
            changelog_topic: self.changelog_topic.clone(),
            backoff: self.config.backoff(),
            stats: self.stats.clone(),
        };
        let outcome = match cinerec_stream::Runtime::new(self.config.runtime(), operator).await {
            Ok(runtime) => {
                let _ = self.runtime.set(runtime.handle());
                self.ready.store(true, Ordering::Release);
                tracing::info!(group = %self.config.kafka.group, topic = %self.config.kafka.source_topic, changelog = %self.changelog_topic, "recommender consuming");
                runtime
                    .run(shutdown.clone())
                    .await
                    .map_err(anyhow::Error::from)
            }
            Err(e) => Err(anyhow::Error::from(e).context("starting the consumer")),
        };
        // The follower and the flushes stop with the same token; wait for
        // them so no write of this instance outlives `run`.
        shutdown.trigger();
        let _ = follower.await;
        let _ = direct.await;
        let _ = flush.await;
        tracing::info!(stats = ?self.handle().stats(), "recommender stopped");
        outcome
    }

    /// Reads every changelog partition to its end into a fresh model, then
    /// rebuilds trending from each review's latest live state (in event-time
    /// order, so the watermark keeps the older ones). `None`: shutdown came.
    async fn restore(&self, shutdown: &Shutdown) -> anyhow::Result<Option<Reader>> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let outcome = async {
                let mut reader =
                    Reader::new(&self.config.kafka.brokers, &self.changelog_topic).await?;
                let mut st = State::new(&self.config, lock(&self.state).own.partitions);
                let mut outcomes = Outcomes::default();
                let n = reader
                    .restore(|r| {
                        st.apply(&r.event, r.partition, false, &mut outcomes);
                    })
                    .await?;
                Ok::<_, KafkaError>((reader, st, n))
            };
            let (reader, mut st, records) = tokio::select! {
                _ = shutdown.wait() => return Ok(None),
                r = outcome => match r {
                    Ok(done) => done,
                    Err(e) => {
                        attempt += 1;
                        if attempt >= 10 {
                            return Err(e).context("restoring from the changelog");
                        }
                        tracing::warn!(error = %e, attempt, "restoring from the changelog: retrying");
                        tokio::time::sleep(self.config.backoff().delay(attempt)).await;
                        continue;
                    }
                },
            };
            let mut live: Vec<ReviewState> = st
                .model
                .review_states()
                .filter(|s| !s.deleted)
                .copied()
                .collect();
            live.sort_by_key(|s| s.changed_at_us);
            let State {
                trending,
                movie_genres,
                ..
            } = &mut st;
            for s in &live {
                if let Some(genres) = movie_genres.get(&s.movie_id) {
                    trending.observe(s.changed_at_us, s.movie_id, genres);
                }
            }
            // Nothing is owned yet: each partition's rows are marked when its
            // lease is taken.
            st.changed_n.clear();
            st.dirty_movies.clear();
            st.dirty_genres.clear();
            telemetry::model_size(
                st.model.reviews(),
                st.model.like_count(),
                st.model.pair_count(),
            );
            let reviews = st.model.reviews() as u64;
            *lock(&self.state) = st;
            telemetry::changelog_read(records);
            telemetry::rebuilt(reviews, started.elapsed());
            return Ok(Some(reader));
        }
    }
}

/// The recommender's effect, as an operator of the at-least-once runtime
/// (which decodes, claims in the recommender's cache, dead-letters, marks
/// done and stores offsets around it): apply the claimed events to the model,
/// append the states that advanced to the changelog and wait for their acks,
/// then wake the direct flush.
pub struct Recommend {
    state: Arc<Mutex<State>>,
    moves: Arc<Moves>,
    changelog: changelog::Writer,
    changelog_topic: String,
    backoff: ExponentialBackoff,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for Recommend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recommend")
            .field("changelog", &self.changelog_topic)
            .finish_non_exhaustive()
    }
}

impl Operator for Recommend {
    type Event = EnrichedReview;
    const NAME: &'static str = "recommender";
    const SKIP_REASONS: &'static [&'static str] = &["stale"];

    fn decode(&self, record: &OwnedMessage) -> Result<Decoded<EnrichedReview>, String> {
        let ev = decode_one(record)?;
        Ok(Decoded {
            key: ev.event_id.to_string(),
            event: ev,
        })
    }

    /// (a) apply in batch order under the lock, (b) the advanced states to
    /// the changelog, acknowledged — only then does the runtime mark the
    /// events done and store their offsets (see the module docs).
    async fn process(
        &self,
        batch: Vec<Claimed<EnrichedReview>>,
        shutdown: &Shutdown,
    ) -> Result<Vec<Outcome>, Abandoned> {
        let mut outcomes = Outcomes::default();
        let mut results = Vec::with_capacity(batch.len());
        let mut advanced: Vec<(i32, EnrichedReview)> = Vec::new();
        {
            let mut st = lock(&self.state);
            for c in batch {
                if st.apply(&c.event, c.partition, true, &mut outcomes) {
                    let stamps = Stamps {
                        kafka_ms: c.timestamp_ms.unwrap_or_else(|| now_micros() / 1_000),
                        accepted_ms: c.event.changed_at_us / 1_000,
                    };
                    st.direct.entry(c.event.user_id).or_default().push(stamps);
                    advanced.push((c.partition, c.event));
                    results.push(Outcome::Done);
                } else {
                    results.push(Outcome::Skipped("stale"));
                }
            }
        }
        let records: Vec<(i32, &EnrichedReview)> = advanced.iter().map(|(p, e)| (*p, e)).collect();
        let span = tracing::info_span!(
            "changelog.write",
            otel.name = "changelog write",
            otel.kind = "producer",
            messaging.system = "kafka",
            messaging.destination.name = %self.changelog_topic,
            cinerec.records = records.len(),
        );
        match self
            .changelog
            .write_all(&records, self.backoff, shutdown)
            .instrument(span)
            .await
        {
            Ok(bytes) => telemetry::changelog_written(records.len(), bytes),
            Err(changelog::Abandoned) => return Err(Abandoned),
        }
        telemetry::events_done(&self.stats, outcomes);
        if !records.is_empty() {
            self.moves.direct.notify_one();
        }
        Ok(results)
    }

    fn on_assign(&self, partitions: &[i32]) {
        self.moves.assigned(partitions);
    }

    fn on_revoke(&self, partitions: &[i32]) {
        self.moves.revoked(partitions);
    }
}

/// One record: an EnrichedReview whose values the model can take, or why not.
fn decode_one(m: &OwnedMessage) -> Result<EnrichedReview, String> {
    let payload = m.payload().ok_or("empty payload")?;
    let ev =
        EnrichedReview::decode(payload).map_err(|e| format!("undecodable EnrichedReview: {e}"))?;
    let out_of_range = |r: &f32| !r.is_finite() || !(0.0..=5.0).contains(r);
    if let Some(r) = ev.rating.filter(out_of_range) {
        return Err(format!("invalid rating {r} of review {}", ev.review_id));
    }
    if ev.version < 1 {
        return Err(format!(
            "invalid version {} of review {}",
            ev.version, ev.review_id
        ));
    }
    Ok(ev)
}

/// The model's view of an enriched review: a null rating is a tombstone.
pub fn review_state(ev: &EnrichedReview) -> ReviewState {
    let deleted = ev.deleted || ev.rating.is_none();
    ReviewState {
        review_id: ev.review_id.as_u128(),
        user_id: ev.user_id,
        movie_id: ev.movie_id,
        rating: if deleted {
            0.0
        } else {
            ev.rating.unwrap_or(0.0)
        },
        version: ev.version,
        changed_at_us: ev.changed_at_us,
        deleted,
    }
}

/// The replica follower: every changelog record of every other instance,
/// applied to the model (this instance's own are skipped undecoded: it
/// applied them before writing them; were they applied, they would be stale).
async fn follow(mut reader: Reader, own: String, state: Arc<Mutex<State>>, shutdown: Shutdown) {
    let mut outcomes = Outcomes::default();
    loop {
        let next = tokio::select! {
            _ = shutdown.wait() => return,
            r = reader.next(&own) => r,
        };
        match next {
            Ok(Some(r)) => {
                lock(&state).apply(&r.event, r.partition, true, &mut outcomes);
                telemetry::changelog_read(1);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "changelog read failed: retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The loop must be spawnable on a multi-threaded runtime.
#[allow(dead_code)]
fn assert_send(r: Recommender, s: Shutdown) {
    fn send<T: Send>(_: T) {}
    send(r.run(s));
}

#[cfg(test)]
mod tests;
