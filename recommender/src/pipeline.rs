//! The recommender's loop: rebuild the model from `review_states`, then poll
//! batches of `reviews.enriched` → decode (poison → DLQ) → claim each
//! `event_id` in the recommender's own cache → apply to the [`Model`] →
//! write the batch's effects → write its `review_states` → mark the events
//! done → store the offsets. Beside it, a refresh task keeps the derived rows
//! (recommendations, similar movies, trending) up to date.
//!
//! # Why a crash neither loses nor doubles an effect
//!
//! * **Effects are absolute values of a function of the latest review
//!   states**: a batch writes `likes_by_user`, `movie_likes`, `co_likes` as
//!   the model's current value for every key the batch touched (insert, or
//!   delete when absent/0), never an increment; the model itself ignores any
//!   state not newer than the one it holds ([`Model::apply`]). Applying a
//!   state twice, or writing a value twice, changes nothing.
//! * **Order of writes per batch**: (a) the aggregates and the batch users'
//!   recommendations (and `similar_movies` of movies whose `N` changed), then
//!   (b) the `review_states` of the states that advanced (the checkpoint),
//!   then the cache's done markers, then the Kafka offsets. A crash before
//!   (b) completes leaves the checkpoint without the batch: the restarted
//!   model lacks it, the offsets were not stored, so Kafka redelivers the
//!   batch and it is applied and written again — the same absolute values.
//!   A crash after (b) leaves a checkpoint that already includes the batch
//!   and aggregates that already reflect it; the redelivered events are then
//!   duplicates (cache) or stale (model): no effect. Offsets are stored only
//!   after both, so nothing is skipped.
//! * **Write timestamps** come from one [`Clock`] read while the model is
//!   locked, so whichever value was computed from the later model wins in
//!   Cassandra, whatever order concurrent writes and retries land in, and a
//!   restarted process (wall clock) wins over its predecessor.
//! * **Restart**: [`Recommender::run`] first pages through `review_states`
//!   and rebuilds the model and trending, then marks every user and movie
//!   dirty (the refresh work a crash interrupted is redone), then consumes
//!   from the committed offsets.
//! * A Cassandra failure is retried with backoff for as long as it lasts;
//!   the batch's offsets wait (the partition blocks rather than lose). Only
//!   shutdown abandons a batch — without storing its offsets.
//!
//! **Only one recommender instance may be active** per keyspace: the model is
//! global (a movie's `N` counts every user, whatever partition their events
//! are on), so two instances would each hold part of it and overwrite each
//! other's absolute values. Deploy with one replica and the `Recreate`
//! strategy.
//!
//! # The refresh task and the quiescence guarantee
//!
//! A like change of `(u, m)` changes `N(m)`, hence `similarity(m, j)` for
//! every `j` co-liked with `m`, hence the similar-movies rows of `m` and its
//! neighbours and the recommendations of every user who likes any of them.
//! The batch writes the rows it can afford (its own users, movies whose `N`
//! changed); the rest is tracked as dirty sets — movies whose `N` changed
//! (expanded to their current neighbours at refresh time), movies a changed
//! user likes (neighbours that may just have lost their pair), users to
//! recompute, genres with new events — and every `--refresh-interval` the
//! refresh task recomputes and writes up to `--refresh-max-users` users and
//! as many movies, leaving the rest for the next tick. Under load it may take
//! several ticks; once the input is idle the sets drain, and after one tick
//! that ends with nothing dirty every row equals the current model.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cinerec_cache::{BatchWait, Cache, CacheConfig, Settled};
use cinerec_events::EnrichedReview;
use cinerec_service_kit::kafka::dlq::DeadLetters;
use cinerec_service_kit::{Shutdown, trace_context};
use rdkafka::Message as _;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::config::Config;
use crate::kafka::{self, RecommenderConsumer};
use crate::model::{self, Applied, LikeChange, Model, MovieId, ReviewState, TOP_N, UserId};
use crate::store::{self, Abandoned, Clock, Store, Write};
use crate::telemetry::{self, Outcomes, Stats};
use crate::trending::{Observed, Trending};

/// The DLQ headers (service-kit's, re-exported for this crate's tests and
/// readers): why, and the source topic, partition and offset.
pub use cinerec_service_kit::kafka::dlq::{
    HEADER_ERROR, HEADER_OFFSET, HEADER_PARTITION, HEADER_TOPIC,
};

/// Attempts at writing a DLQ record before the recommender stops (it cannot
/// skip the record and must not drop it: a restart redelivers it).
const DLQ_ATTEMPTS: u32 = 20;
/// Longest wait for an event held in flight elsewhere, as a multiple of the
/// in-flight TTL (its claim has expired by then at the latest).
const IN_FLIGHT_WAIT_FACTOR: u32 = 2;
/// Once shutdown fires, how long a batch's writes may still take to land
/// before the batch is abandoned (offsets not stored).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Trending movies considered for a cold-start top-up (some may be seen).
const FALLBACK_CANDIDATES: usize = TOP_N * 3;

/// Everything the consumer and the refresh task share, behind one lock.
#[derive(Debug)]
struct State {
    model: Model,
    trending: Trending,
    /// Genres of each movie, as the latest event carried them.
    movie_genres: HashMap<MovieId, Vec<String>>,
    /// Preferred genres of each user, as the latest event carried them.
    user_genres: HashMap<UserId, Vec<String>>,
    /// Movies whose `N` changed since the refresh last expanded them.
    changed_n: HashSet<MovieId>,
    /// Movies whose `similar_movies` row (and whose likers'
    /// recommendations) may be stale.
    dirty_movies: HashSet<MovieId>,
    /// Users whose recommendations may be stale.
    dirty_users: HashSet<UserId>,
    /// Genres with new counted events.
    dirty_genres: HashSet<String>,
}

impl State {
    fn new(config: &Config) -> State {
        State {
            model: Model::new(),
            trending: Trending::new(config.trending()),
            movie_genres: HashMap::new(),
            user_genres: HashMap::new(),
            changed_n: HashSet::new(),
            dirty_movies: HashSet::new(),
            dirty_users: HashSet::new(),
            dirty_genres: HashSet::new(),
        }
    }

    /// The whole recommendations row of `user`.
    fn recommendations(&self, user: UserId) -> Write {
        let personal = self.model.recommend(user, TOP_N);
        let genres = self.user_genres.get(&user).map_or(&[][..], Vec::as_slice);
        let trending = self.trending.top_in(genres, FALLBACK_CANDIDATES);
        let mut scores: Vec<f64> = personal.iter().map(|(_, s)| *s).collect();
        let from_model = personal.len();
        let movies = model::with_fallback(&self.model, user, personal, &trending, TOP_N);
        scores.resize(movies.len(), 0.0);
        Write::Recommendations {
            user,
            movies,
            scores,
            from_model: i32::try_from(from_model).unwrap_or(i32::MAX),
        }
    }

    /// The whole similar-movies row of `movie`.
    fn similar(&self, movie: MovieId) -> Write {
        let (movies, scores) = self.model.similar(movie, TOP_N).into_iter().unzip();
        Write::Similar {
            movie,
            movies,
            scores,
        }
    }

    /// The trending row of `genre`, if any event was seen.
    fn trending_row(&self, genre: &str) -> Option<Write> {
        let (window_start, window_end) = self.trending.window()?;
        let (movies, counts) = self
            .trending
            .top(genre, TOP_N)
            .into_iter()
            .map(|(m, n)| (m, i32::try_from(n).unwrap_or(i32::MAX)))
            .unzip();
        Some(Write::Trending {
            genre: genre.to_owned(),
            movies,
            counts,
            window_start,
            window_end,
        })
    }

    /// Records a like change in the dirty sets: its movie's `N` changed, and
    /// the user's other liked movies just gained or lost `C` with it.
    fn mark_like_change(&mut self, change: LikeChange) {
        self.changed_n.insert(change.movie);
        self.dirty_movies.insert(change.movie);
        self.dirty_movies.extend(self.model.liked_by(change.user));
    }
}

/// One record of a batch and where it got to.
#[derive(Debug)]
enum Fate {
    /// Decoded and valid, first of its event_id in the batch: to claim.
    Fresh(Box<EnrichedReview>),
    /// Skip: done before, or a repeat within the batch.
    Duplicate,
    /// Claimed (or processed anyway): to apply.
    Claimed(Box<EnrichedReview>),
    /// Applied: the model took it or already had it.
    Applied { event_id: Uuid },
    /// To the DLQ.
    Dead(String),
    /// Written to the DLQ.
    Buried,
}

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finished {
    /// Every record handled, offsets stored.
    Done,
    /// Shutdown came first: claims released, offsets not stored.
    Abandoned,
}

/// A running recommender's handle on its counters and readiness.
#[derive(Debug, Clone)]
pub struct Handle {
    stats: Arc<Stats>,
    ready: Arc<AtomicBool>,
}

impl Handle {
    /// The instance's counters.
    pub fn stats(&self) -> telemetry::StatsSnapshot {
        self.stats.snapshot()
    }

    /// Whether the model has been rebuilt and consumption started.
    pub fn is_rebuilt(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// The recommender: one consumer, one DLQ producer, one cache, one store.
pub struct Recommender {
    config: Config,
    producer: FutureProducer,
    cache: Cache,
    store: Store,
    state: Arc<Mutex<State>>,
    clock: Arc<Clock>,
    stats: Arc<Stats>,
    ready: Arc<AtomicBool>,
    dlq_topic: String,
}

impl std::fmt::Debug for Recommender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recommender")
            .field("group", &self.config.group)
            .field("source", &self.config.source_topic)
            .field("keyspace", &self.config.cql.keyspace)
            .finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves a model that may be half-updated;
    // its writes were not stored, and the process is going down anyway.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Recommender {
    /// Creates the DLQ topic, the keyspace and tables (if missing), the
    /// prepared statements, the cache and the DLQ producer. The consumer is
    /// created by [`run`](Self::run), after the model is rebuilt.
    pub async fn new(config: Config) -> anyhow::Result<Recommender> {
        telemetry::register();
        kafka::ensure_dlq(&config)
            .await
            .with_context(|| format!("creating the DLQ topic on {}", config.brokers))?;
        let session = store::connect(&config.cql).await?;
        store::migrate(&session, &config.cql).await?;
        let store = Store::new(session, &config.cql).await?;
        // The claim key is `<namespace>:<event_id>`; in-flight TTL covers one
        // batch's writes with retries, done TTL any redelivery window.
        let cache = Cache::new(&CacheConfig::new(
            config.cache_namespace.clone(),
            &config.cache_urls,
        )?)?;
        Ok(Recommender {
            producer: kafka::producer(&config)?,
            dlq_topic: config.dlq_topic(),
            state: Arc::new(Mutex::new(State::new(&config))),
            clock: Arc::default(),
            stats: Arc::default(),
            ready: Arc::default(),
            cache,
            store,
            config,
        })
    }

    /// A handle on the counters (take it before [`run`](Self::run)).
    pub fn handle(&self) -> Handle {
        Handle {
            stats: self.stats.clone(),
            ready: self.ready.clone(),
        }
    }

    /// The store (readiness probes share its session).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Rebuilds the model, then consumes until `shutdown` fires; the refresh
    /// task runs beside the consumer.
    ///
    /// Errors when the checkpoint cannot be read or a DLQ record cannot be
    /// written (nothing may be dropped): the caller exits, a restart retries.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        self.rebuild(&shutdown).await?;
        if shutdown.is_triggered() {
            return Ok(());
        }
        let consumer = kafka::consumer(&self.config)?;
        self.ready.store(true, Ordering::Release);
        let refresh = tokio::spawn(refresh_loop(
            self.config.clone(),
            self.state.clone(),
            self.store.clone(),
            self.clock.clone(),
            self.stats.clone(),
            shutdown.clone(),
        ));
        tracing::info!(group = %self.config.group, topic = %self.config.source_topic, "recommender consuming");
        let outcome = self.consume(&consumer, &shutdown).await;
        // The refresh task stops with the same token; wait for it so no write
        // of this instance outlives `run`.
        shutdown.trigger();
        let _ = refresh.await;
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "final commit failed (stored offsets commit on close)")
            }
        }
        tracing::info!(stats = ?self.stats.snapshot(), "recommender stopped");
        outcome
    }

    /// Loads `review_states` (paged) and the genres side tables into a fresh
    /// model and trending state, then marks everything dirty.
    async fn rebuild(&self, shutdown: &Shutdown) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut attempt = 0u32;
        let (states, (movie_genres, user_genres)) = loop {
            let mut states = Vec::new();
            let loaded = async {
                self.store.load_states(|s| states.push(s)).await?;
                self.store.load_genres().await
            };
            match loaded.await {
                Ok(genres) => break (states, genres),
                Err(e) => {
                    attempt += 1;
                    if attempt >= 10 {
                        return Err(e).context("reading the checkpoint (review_states)");
                    }
                    tracing::warn!(error = %e, attempt, "reading the checkpoint: retrying");
                    tokio::select! {
                        _ = shutdown.wait() => return Ok(()),
                        _ = tokio::time::sleep(self.config.backoff().delay(attempt)) => {}
                    }
                }
            }
        };
        let reviews = states.len() as u64;
        let mut st = lock(&self.state);
        st.movie_genres = movie_genres.into_iter().collect();
        st.user_genres = user_genres.into_iter().collect();
        let mut live: Vec<ReviewState> = Vec::with_capacity(states.len());
        for s in states {
            let advanced = matches!(st.model.apply(s), Applied::Advanced { .. });
            if advanced && !s.deleted {
                live.push(s);
            }
        }
        // Trending from the checkpoint counts each review's latest state once,
        // in event-time order so the watermark does not drop the older ones.
        live.sort_by_key(|s| s.changed_at_us);
        let State {
            trending,
            movie_genres,
            ..
        } = &mut *st;
        for s in &live {
            if let Some(genres) = movie_genres.get(&s.movie_id) {
                trending.observe(s.changed_at_us, s.movie_id, genres);
            }
        }
        // The refresh work the previous process may not have finished.
        let users: Vec<UserId> = st.model.users_with_likes().collect();
        let movies: Vec<MovieId> = st.model.liked_movies().collect();
        let genres: Vec<String> = st.movie_genres.values().flatten().cloned().collect();
        st.dirty_users.extend(users);
        st.dirty_movies.extend(movies);
        st.dirty_genres.extend(genres);
        telemetry::model_size(
            st.model.reviews(),
            st.model.like_count(),
            st.model.pair_count(),
        );
        drop(st);
        telemetry::rebuilt(reviews, started.elapsed());
        Ok(())
    }

    async fn consume(
        &self,
        consumer: &RecommenderConsumer,
        shutdown: &Shutdown,
    ) -> anyhow::Result<()> {
        loop {
            let Some(batch) = self.next_batch(consumer, shutdown).await else {
                return Ok(());
            };
            if self.process(consumer, &batch, shutdown).await? == Finished::Abandoned {
                return Ok(());
            }
            if shutdown.is_triggered() {
                return Ok(());
            }
        }
    }

    /// Waits for a first record (or shutdown: `None`), then collects more
    /// until the batch is full or the linger time has passed.
    async fn next_batch(
        &self,
        consumer: &RecommenderConsumer,
        shutdown: &Shutdown,
    ) -> Option<Vec<OwnedMessage>> {
        let mut batch = Vec::new();
        loop {
            let first = tokio::select! {
                biased;
                _ = shutdown.wait() => return None,
                m = consumer.recv() => m,
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
            match tokio::time::timeout_at(until, consumer.recv()).await {
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

    /// [`process_batch`](Self::process_batch) traced: one consumer span per
    /// record, parented to the enricher's producer span (from its headers);
    /// the batch's work, ending with its Cassandra writes, in one span under
    /// the first record's span and linked to the others'.
    async fn process(
        &self,
        consumer: &RecommenderConsumer,
        batch: &[OwnedMessage],
        shutdown: &Shutdown,
    ) -> anyhow::Result<Finished> {
        let spans: Vec<tracing::Span> = batch
            .iter()
            .map(|m| trace_context::consumer_span(m, &self.config.group))
            .collect();
        self.process_batch(consumer, batch, shutdown)
            .instrument(trace_context::batch_span("recommend batch", &spans))
            .await
    }

    /// One batch, to completion: every record applied, skipped or in the
    /// DLQ, its effects written, its offset stored — or, at shutdown,
    /// abandoned explicitly (claims released, no offset stored).
    async fn process_batch(
        &self,
        consumer: &RecommenderConsumer,
        batch: &[OwnedMessage],
        shutdown: &Shutdown,
    ) -> anyhow::Result<Finished> {
        let started = Instant::now();
        let mut fates = decode_batch(batch);
        self.bury(batch, &mut fates).await?;
        if self.claim(&mut fates, shutdown).await == Finished::Abandoned {
            // claim_batch has given back the claims it took (none left here).
            self.abandon(
                &fates,
                "shutdown while waiting for claims held elsewhere (own claims released)",
            )
            .await;
            return Ok(Finished::Abandoned);
        }
        let (effects, checkpoint, ts, outcomes) = self.apply(&mut fates);
        // (a) the effects, then (b) the checkpoint: see the module docs.
        let outcome = match self.write(&effects, ts, shutdown).await {
            Ok(()) => self.write(&checkpoint, ts, shutdown).await,
            Err(a) => Err(a),
        };
        if outcome.is_err() {
            self.abandon(&fates, "shutdown while writing the batch's effects")
                .await;
            return Ok(Finished::Abandoned);
        }
        self.mark_done(&fates).await;
        telemetry::events_done(&self.stats, outcomes);
        let now_ms = store::now_micros() / 1_000;
        for m in batch {
            if let Some(ts_ms) = m.timestamp().to_millis() {
                let ms = u64::try_from(now_ms - ts_ms).unwrap_or(0);
                telemetry::event_latency(Duration::from_millis(ms));
            }
        }
        store_offsets(consumer, batch);
        telemetry::batch_done(&self.stats, batch.len(), started.elapsed());
        Ok(Finished::Done)
    }

    /// Writes until landed; only shutdown (after its grace) gives up.
    async fn write(&self, writes: &[Write], ts: i64, shutdown: &Shutdown) -> Result<(), Abandoned> {
        let stop = async {
            shutdown.wait().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        let span = tracing::info_span!(
            "cassandra.write",
            otel.name = "cassandra write",
            otel.kind = "client",
            db.system.name = "cassandra",
            db.namespace = %self.config.cql.keyspace,
            cinerec.writes = writes.len(),
        );
        self.store
            .write_all(
                writes,
                ts,
                self.config.write_concurrency,
                self.config.backoff(),
                stop,
            )
            .instrument(span)
            .await
    }

    /// Claims every fresh event ([`Cache::claim_batch`]): done before →
    /// duplicate; held elsewhere → wait (up to twice the in-flight TTL, then
    /// take it over: the model is idempotent by version); cache unreachable →
    /// proceed, counted.
    async fn claim(&self, fates: &mut [Fate], shutdown: &Shutdown) -> Finished {
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
            Ok(None) => return Finished::Abandoned,
            Err(e) => {
                // Only a repeated key errors, and decode_batch keeps one record
                // per event id; proceed rather than stall.
                telemetry::cache_degraded(&self.stats, keys.len(), &e.to_string());
                vec![Settled::Claimed { degraded: true }; keys.len()]
            }
        };
        for ((i, _), settled) in fresh.iter().zip(settled) {
            if let Fate::Fresh(ev) = std::mem::replace(&mut fates[*i], Fate::Duplicate) {
                fates[*i] = match settled {
                    Settled::Claimed { .. } => Fate::Claimed(ev),
                    Settled::AlreadyDone => Fate::Duplicate,
                };
            }
        }
        Finished::Done
    }

    /// Applies the claimed events in batch order under the lock and computes
    /// the batch's writes at one timestamp: (effects, checkpoint, ts, counts).
    fn apply(&self, fates: &mut [Fate]) -> (Vec<Write>, Vec<Write>, i64, Outcomes) {
        let mut st = lock(&self.state);
        let mut outcomes = Outcomes::default();
        let mut changes: Vec<LikeChange> = Vec::new();
        let mut users: HashSet<UserId> = HashSet::new();
        // One checkpoint row per review/movie/user: all of a batch's writes
        // share one timestamp, and Cassandra settles equal timestamps by
        // comparing values, not by order — so never write a key twice.
        let mut checkpoint = Checkpoint::default();
        // Coalesced: each key the batch touched gets one absolute value,
        // read from the model after the whole batch is applied.
        let mut likes: HashSet<(UserId, MovieId)> = HashSet::new();
        let mut ns: HashSet<MovieId> = HashSet::new();
        let mut cs: HashSet<(MovieId, MovieId)> = HashSet::new();
        for fate in fates.iter_mut() {
            let ev = match std::mem::replace(fate, Fate::Duplicate) {
                Fate::Claimed(ev) => ev,
                Fate::Duplicate => {
                    outcomes.duplicates += 1;
                    continue;
                }
                other => {
                    *fate = other;
                    continue;
                }
            };
            let from = changes.len();
            let advanced = apply_one(&mut st, &ev, &mut changes, &mut checkpoint, &mut outcomes);
            if advanced {
                users.insert(ev.user_id);
            }
            // Right after each change, the user's other liked movies are
            // exactly those whose C with the changed movie moved.
            for &c in &changes[from..] {
                likes.insert((c.user, c.movie));
                ns.insert(c.movie);
                for j in st.model.liked_by(c.user) {
                    if j != c.movie {
                        cs.insert((c.movie.min(j), c.movie.max(j)));
                    }
                }
                st.mark_like_change(c);
            }
            *fate = Fate::Applied {
                event_id: ev.event_id,
            };
        }
        let mut effects = Vec::with_capacity(likes.len() + ns.len() + cs.len() + users.len());
        for (user, movie) in likes {
            effects.push(Write::Like {
                user,
                movie,
                liked: st.model.likes(user, movie),
            });
        }
        for &movie in &ns {
            effects.push(Write::N {
                movie,
                likers: st.model.n(movie),
            });
            effects.push(st.similar(movie));
        }
        for (a, b) in cs {
            effects.push(Write::C {
                a,
                b,
                users: st.model.c(a, b),
            });
        }
        for user in users {
            effects.push(st.recommendations(user));
            st.dirty_users.remove(&user);
        }
        let ts = self.clock.next();
        (effects, checkpoint.into_writes(), ts, outcomes)
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
            let Fate::Dead(error) = &*fate else { continue };
            dlq.send_with_retries(
                m,
                error,
                None,
                |failures| self.config.backoff().delay(failures),
                |failures, e| tracing::warn!(error = %e, failures, "DLQ write failed: retrying"),
            )
            .await
            .map_err(anyhow::Error::msg)?;
            telemetry::sent_to_dlq(&self.stats, m.partition(), m.offset(), error);
            *fate = Fate::Buried;
        }
        Ok(())
    }

    /// Gives back the claims this batch took; stores no offset.
    async fn abandon(&self, fates: &[Fate], why: &str) {
        let keys: Vec<String> = fates
            .iter()
            .filter_map(|f| match f {
                Fate::Claimed(ev) => Some(ev.event_id.to_string()),
                Fate::Applied { event_id } => Some(event_id.to_string()),
                _ => None,
            })
            .collect();
        tracing::info!(
            records = fates.len(),
            released = keys.len(),
            why,
            "batch abandoned, offsets not stored"
        );
        if keys.is_empty() {
            return;
        }
        if let Err(e) = self.cache.release_many(&keys).await {
            tracing::warn!(error = %e, "releasing the abandoned claims");
        }
    }

    /// Marks applied events done in the cache, so redeliveries are skipped.
    /// A failed write only makes a redelivery find the state stale.
    async fn mark_done(&self, fates: &[Fate]) {
        let keys: Vec<String> = fates
            .iter()
            .filter_map(|f| match f {
                Fate::Applied { event_id } => Some(event_id.to_string()),
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
}

/// A batch's checkpoint rows, one per key (the latest wins).
#[derive(Debug, Default)]
struct Checkpoint {
    states: HashMap<model::ReviewId, ReviewState>,
    movie_genres: HashMap<MovieId, Vec<String>>,
    user_genres: HashMap<UserId, Vec<String>>,
}

impl Checkpoint {
    fn into_writes(self) -> Vec<Write> {
        let states = self.states.into_values().map(Write::State);
        let movies = self
            .movie_genres
            .into_iter()
            .map(|(movie, genres)| Write::MovieGenres { movie, genres });
        let users = self
            .user_genres
            .into_iter()
            .map(|(user, genres)| Write::UserGenres { user, genres });
        states.chain(movies).chain(users).collect()
    }
}

/// Decodes and validates every record; repeats of an event_id within the
/// batch are duplicates.
fn decode_batch(batch: &[OwnedMessage]) -> Vec<Fate> {
    let mut seen = HashSet::with_capacity(batch.len());
    batch
        .iter()
        .map(|m| match decode_one(m) {
            Err(error) => Fate::Dead(error),
            Ok(ev) if seen.insert(ev.event_id) => Fate::Fresh(Box::new(ev)),
            Ok(_) => Fate::Duplicate,
        })
        .collect()
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

/// Applies one event to the model (and trending when it advanced); queues
/// its checkpoint writes. Whether the model advanced.
fn apply_one(
    st: &mut State,
    ev: &EnrichedReview,
    changes: &mut Vec<LikeChange>,
    checkpoint: &mut Checkpoint,
    outcomes: &mut Outcomes,
) -> bool {
    let state = review_state(ev);
    if st.movie_genres.get(&ev.movie_id) != Some(&ev.movie_genres) {
        st.movie_genres.insert(ev.movie_id, ev.movie_genres.clone());
        checkpoint
            .movie_genres
            .insert(ev.movie_id, ev.movie_genres.clone());
    }
    if st.user_genres.get(&ev.user_id) != Some(&ev.user_preferred_genres) {
        st.user_genres
            .insert(ev.user_id, ev.user_preferred_genres.clone());
        checkpoint
            .user_genres
            .insert(ev.user_id, ev.user_preferred_genres.clone());
    }
    match st.model.apply_tracked(state, changes) {
        Applied::Stale => {
            outcomes.stale += 1;
            false
        }
        Applied::Advanced { .. } => {
            outcomes.applied += 1;
            // Later states of the same review in the batch replace it.
            checkpoint.states.insert(state.review_id, state);
            // Only advanced, live states count: a redelivery never counts twice.
            if !state.deleted {
                match st
                    .trending
                    .observe(state.changed_at_us, state.movie_id, &ev.movie_genres)
                {
                    Observed::Counted => st.dirty_genres.extend(ev.movie_genres.iter().cloned()),
                    Observed::Late => outcomes.late += 1,
                }
            }
            true
        }
    }
}

fn store_offsets(consumer: &RecommenderConsumer, batch: &[OwnedMessage]) {
    for m in batch {
        // rd_kafka_offset_store stores offset + 1: the next to consume.
        if let Err(e) = consumer.store_offset(m.topic(), m.partition(), m.offset()) {
            telemetry::offset_store_failed(m.partition(), m.offset(), &e);
        }
    }
}

/// Every refresh interval: recompute and write the dirty rows, at most
/// `refresh_max_users` users and as many movies per tick.
async fn refresh_loop(
    config: Config,
    state: Arc<Mutex<State>>,
    store: Store,
    clock: Arc<Clock>,
    stats: Arc<Stats>,
    shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(config.refresh_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tick.tick() => {}
        }
        let started = Instant::now();
        // Recomputing thousands of users is CPU work under the model lock:
        // keep it off the async workers.
        let (st, ck, max) = (state.clone(), clock.clone(), config.refresh_max_users);
        let Ok((writes, ts, done, left)) =
            tokio::task::spawn_blocking(move || refresh_writes(&st, &ck, max)).await
        else {
            tracing::error!("refresh computation panicked");
            return;
        };
        let written = store
            .write_all(
                &writes,
                ts,
                config.write_concurrency,
                config.backoff(),
                shutdown.wait(),
            )
            .await;
        if written.is_err() {
            return;
        }
        telemetry::refreshed(&stats, done.0, done.1, left, started.elapsed());
    }
}

/// Under the lock: expands the dirty sets, takes a bounded share of them and
/// computes their rows. (writes, ts, (users, movies) done, (users, movies) left).
fn refresh_writes(
    state: &Mutex<State>,
    clock: &Clock,
    max: usize,
) -> (Vec<Write>, i64, (usize, usize), (usize, usize)) {
    let mut st = lock(state);
    // A changed N(m) changes similarity(m, j) for every current neighbour j.
    let changed: Vec<MovieId> = st.changed_n.drain().collect();
    for m in changed {
        let neighbours: Vec<MovieId> = st.model.co_liked(m).collect();
        st.dirty_movies.insert(m);
        st.dirty_movies.extend(neighbours);
    }
    let movies: Vec<MovieId> = st.dirty_movies.iter().copied().take(max).collect();
    let mut writes = Vec::new();
    for &m in &movies {
        st.dirty_movies.remove(&m);
        writes.push(st.similar(m));
        // Whoever likes a movie whose similarities changed may see new scores.
        let likers: Vec<UserId> = st.model.likers(m).collect();
        st.dirty_users.extend(likers);
    }
    let users: Vec<UserId> = st.dirty_users.iter().copied().take(max).collect();
    for &u in &users {
        st.dirty_users.remove(&u);
        writes.push(st.recommendations(u));
    }
    let genres: Vec<String> = st.dirty_genres.drain().collect();
    for g in &genres {
        if let Some(w) = st.trending_row(g) {
            writes.push(w);
        }
    }
    telemetry::model_size(
        st.model.reviews(),
        st.model.like_count(),
        st.model.pair_count(),
    );
    let left = (st.dirty_users.len(), st.dirty_movies.len());
    let ts = clock.next();
    (writes, ts, (users.len(), movies.len()), left)
}

/// The loop must be spawnable on a multi-threaded runtime.
#[allow(dead_code)]
fn assert_send(r: Recommender, s: Shutdown) {
    fn send<T: Send>(_: T) {}
    send(r.run(s));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(version: i64, rating: f32) -> ReviewState {
        ReviewState {
            review_id: 7,
            user_id: 1,
            movie_id: 2,
            rating,
            version,
            changed_at_us: version,
            deleted: false,
        }
    }

    #[test]
    fn a_batch_checkpoints_each_review_once_with_its_latest_state() {
        let mut c = Checkpoint::default();
        for s in [state(1, 5.0), state(2, 1.0)] {
            c.states.insert(s.review_id, s);
        }
        c.movie_genres.insert(2, vec!["Drama".into()]);
        c.movie_genres.insert(2, vec!["War".into()]);
        let writes = c.into_writes();
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert!(writes.contains(&Write::State(state(2, 1.0))));
        assert!(writes.contains(&Write::MovieGenres {
            movie: 2,
            genres: vec!["War".into()]
        }));
    }

    #[test]
    fn a_null_rating_is_a_tombstone() {
        let ev = EnrichedReview {
            event_id: Uuid::nil(),
            review_id: Uuid::from_u128(9),
            version: 3,
            deleted: false,
            rating: None,
            user_id: 1,
            movie_id: 2,
            changed_at_us: 10,
            movie_title: String::new(),
            movie_year: 2000,
            movie_genres: vec![],
            movie_popularity: 0.0,
            user_country: String::new(),
            user_zone: String::new(),
            user_preferred_genres: vec![],
            user_tier: cinerec_events::Tier::Free,
            enriched_at_us: 0,
        };
        let s = review_state(&ev);
        assert!(s.deleted);
        assert_eq!((s.review_id, s.version), (9, 3));
    }
}
