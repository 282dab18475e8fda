//! What the consumer, the follower and the flush share behind one lock
//! ([`State`]: the model, trending, the last genres seen, the dirty sets and
//! the digests of rows durably written), and the rebalance moves the
//! consumer's callbacks hand to the flush ([`Moves`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cinerec_events::EnrichedReview;
use tokio::sync::Notify;

use super::{FALLBACK_CANDIDATES, review_state};
use crate::config::Config;
use crate::model::{self, Applied, LikeChange, Model, MovieId, TOP_N, UserId};
use crate::ownership::{self, Lease, Ownership};
use crate::store::Write;
use crate::telemetry::Outcomes;
use crate::trending::{Observed, Trending};

/// A serving row's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum RowKey {
    User(UserId),
    Movie(MovieId),
    Genre(String),
}

/// Everything the consumer, the follower and the flush share, behind one lock.
/// When an applied event was made, both ways the flush measures from (ms
/// since the epoch).
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamps {
    /// The enriched record's Kafka timestamp: the recommender's own latency.
    pub(super) kafka_ms: i64,
    /// When review-svc accepted the review's version (`changed_at`): the
    /// whole pipeline's latency, POST to serving row, but for the request's
    /// own handling before its commit.
    pub(super) accepted_ms: i64,
}

#[derive(Debug)]
pub(super) struct State {
    pub(super) model: Model,
    pub(super) trending: Trending,
    /// Genres of each movie, as the latest event carried them.
    pub(super) movie_genres: HashMap<MovieId, Vec<String>>,
    /// Preferred genres of each user, as the latest event carried them.
    pub(super) user_genres: HashMap<UserId, Vec<String>>,
    /// Partitions owned (with leases) and each user's partition.
    pub(super) own: Ownership,
    /// Users whose own events advanced the model, with those events'
    /// [`Stamps`]: flushed at the next tick, latencies measured.
    pub(super) direct: HashMap<UserId, Vec<Stamps>>,
    /// Movies whose `N` changed since the flush last expanded them.
    pub(super) changed_n: HashSet<MovieId>,
    /// Movies whose similarities (and whose likers' recommendations) may be stale.
    pub(super) dirty_movies: HashSet<MovieId>,
    /// Movies whose `similar_movies` row alone must be rewritten (a newly
    /// owned partition's), without expanding to their likers.
    pub(super) dirty_similar: HashSet<MovieId>,
    /// Owned users whose recommendations may be stale.
    pub(super) dirty_users: HashSet<UserId>,
    /// Genres with new counted events.
    pub(super) dirty_genres: HashSet<String>,
    /// (timestamp, digest) of the newest-stamped value of each row that
    /// Cassandra acknowledged: what the row holds.
    pub(super) durable: HashMap<RowKey, (i64, u64)>,
    /// Writes of each row scheduled and not yet acknowledged: while any is
    /// in flight, a value equal to the durable one is written anyway (the
    /// one in flight may differ and land later).
    pub(super) inflight: HashMap<RowKey, u32>,
    /// Trending fallback lists by preferred-genre set, computed once per
    /// flush pass (each was a full window aggregation per user row: 3 % of
    /// the CPU in the profile; the fallback is as fresh as the pass).
    pub(super) fallback: HashMap<Vec<String>, Vec<MovieId>>,
}

impl State {
    pub(super) fn new(config: &Config, partitions: i32) -> State {
        State {
            model: Model::new(),
            trending: Trending::new(config.trending()),
            movie_genres: HashMap::new(),
            user_genres: HashMap::new(),
            own: Ownership {
                partitions,
                ..Ownership::default()
            },
            direct: HashMap::new(),
            changed_n: HashSet::new(),
            dirty_movies: HashSet::new(),
            dirty_similar: HashSet::new(),
            dirty_users: HashSet::new(),
            dirty_genres: HashSet::new(),
            durable: HashMap::new(),
            inflight: HashMap::new(),
            fallback: HashMap::new(),
        }
    }

    /// The whole recommendations row of `user`.
    pub(super) fn recommendations(&mut self, user: UserId) -> Write {
        let personal = self.model.recommend(user, TOP_N);
        let genres = self.user_genres.get(&user).cloned().unwrap_or_default();
        let trending = match self.fallback.get(&genres) {
            Some(t) => t,
            None => {
                let t = self.trending.top_in(&genres, FALLBACK_CANDIDATES);
                self.fallback.entry(genres).or_insert(t)
            }
        };
        let mut scores: Vec<f64> = personal.iter().map(|(_, s)| *s).collect();
        let from_model = personal.len();
        let movies = model::with_fallback(&self.model, user, personal, trending, TOP_N);
        scores.resize(movies.len(), 0.0);
        Write::Recommendations {
            user,
            movies,
            scores,
            from_model: i32::try_from(from_model).unwrap_or(i32::MAX),
        }
    }

    /// The whole similar-movies row of `movie`.
    pub(super) fn similar(&self, movie: MovieId) -> Write {
        let (movies, scores) = self.model.similar(movie, TOP_N).into_iter().unzip();
        Write::Similar {
            movie,
            movies,
            scores,
        }
    }

    /// The trending row of `genre`, if any event was seen.
    pub(super) fn trending_row(&self, genre: &str) -> Option<Write> {
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

    /// Applies one review state — an event of this instance's or a changelog
    /// record of any instance's — arriving on source partition `partition`.
    /// Whether the model advanced. `observe` counts it in trending (not
    /// during a restore, which counts each review's final state once).
    pub(super) fn apply(
        &mut self,
        ev: &EnrichedReview,
        partition: i32,
        observe: bool,
        outcomes: &mut Outcomes,
    ) -> bool {
        self.own.user_partition.insert(ev.user_id, partition);
        if self.movie_genres.get(&ev.movie_id) != Some(&ev.movie_genres) {
            self.movie_genres
                .insert(ev.movie_id, ev.movie_genres.clone());
        }
        if self.user_genres.get(&ev.user_id) != Some(&ev.user_preferred_genres) {
            self.user_genres
                .insert(ev.user_id, ev.user_preferred_genres.clone());
        }
        let state = review_state(ev);
        let mut changes = Vec::new();
        match self.model.apply_tracked(state, &mut changes) {
            Applied::Stale => {
                outcomes.stale += 1;
                false
            }
            Applied::Advanced { .. } => {
                outcomes.applied += 1;
                for c in changes {
                    self.mark_like_change(c);
                }
                // Only advanced, live states count: a redelivery never counts twice.
                if observe && !state.deleted {
                    match self.trending.observe(
                        state.changed_at_us,
                        state.movie_id,
                        &ev.movie_genres,
                    ) {
                        Observed::Counted => {
                            self.dirty_genres.extend(ev.movie_genres.iter().cloned())
                        }
                        Observed::Late => outcomes.late += 1,
                    }
                }
                true
            }
        }
    }

    /// A partition's lease was just taken: every row owned through it is
    /// recomputed once (whatever the previous owner left pending), and its
    /// digests are forgotten (another owner wrote meanwhile).
    pub(super) fn take_partition(&mut self, partition: i32, lease: Lease) {
        self.own.leases.insert(partition, lease);
        self.own.pending.remove(&partition);
        let parts = self.own.partitions;
        let users: Vec<UserId> = self
            .own
            .user_partition
            .iter()
            .filter(|(_, p)| **p == partition)
            .map(|(u, _)| *u)
            .collect();
        self.dirty_users.extend(users);
        let movies: Vec<MovieId> = self
            .model
            .liked_movies()
            .filter(|m| ownership::movie_partition(*m, parts) == partition)
            .collect();
        self.dirty_similar.extend(movies);
        let genres: Vec<String> = self
            .movie_genres
            .values()
            .flatten()
            .filter(|g| ownership::genre_partition(g, parts) == partition)
            .cloned()
            .collect();
        self.dirty_genres.extend(genres);
        let own = &self.own;
        self.durable.retain(|k, _| match k {
            RowKey::User(u) => own.user_partition.get(u) != Some(&partition),
            RowKey::Movie(m) => ownership::movie_partition(*m, parts) != partition,
            RowKey::Genre(g) => ownership::genre_partition(g, parts) != partition,
        });
    }

    /// Whether anything this instance owns is waiting to be written.
    pub(super) fn pending(&self) -> (usize, usize) {
        (
            self.direct.len() + self.dirty_users.len(),
            self.dirty_movies.len() + self.dirty_similar.len() + self.changed_n.len(),
        )
    }
}

/// A rebalance the flush task has yet to act on.
#[derive(Debug)]
pub(super) enum Move {
    /// Take the lease, then own the partition's rows.
    Assign(i32),
    /// Drain the partition's pending rows, then let its lease go; tell the
    /// waiting callback when done.
    Revoke(i32, Option<std::sync::mpsc::SyncSender<()>>),
}

/// What the consumer's rebalance callback and the flush task share.
#[derive(Debug, Default)]
pub(super) struct Moves {
    pub(super) queue: Mutex<Vec<Move>>,
    pub(super) wake: Notify,
    /// A batch left users to flush.
    pub(super) direct: Notify,
    /// The flush task is running (a revoke waits for it only then).
    pub(super) flushing: AtomicBool,
    pub(super) drain_timeout: Duration,
}

impl Moves {
    /// These partitions are this instance's now (from the rebalance callback).
    pub(super) fn assigned(&self, partitions: &[i32]) {
        lock_queue(&self.queue).extend(partitions.iter().map(|p| Move::Assign(*p)));
        self.wake.notify_one();
    }

    /// These partitions are about to go: drain their pending rows (from the
    /// rebalance callback, bounded by the drain timeout).
    pub(super) fn revoked(&self, partitions: &[i32]) {
        if partitions.is_empty() {
            return;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(partitions.len());
        {
            let mut q = lock_queue(&self.queue);
            for p in partitions {
                q.push(Move::Revoke(*p, Some(tx.clone())));
            }
        }
        drop(tx);
        self.wake.notify_one();
        if !self.flushing.load(Ordering::Acquire) {
            return;
        }
        // Called from inside the consumer's poll. On a multi-threaded runtime
        // the flush task runs on another worker while this one waits; on a
        // current-thread runtime waiting would starve it, so the drain then
        // happens right after the callback (still safe: writes are fenced).
        let wait = || {
            let deadline = Instant::now() + self.drain_timeout;
            for _ in partitions {
                let left = deadline.saturating_duration_since(Instant::now());
                if rx.recv_timeout(left).is_err() {
                    tracing::warn!(
                        partitions = ?partitions,
                        "revoke: drain not finished in time (continues after the rebalance)"
                    );
                    return;
                }
            }
        };
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::CurrentThread) => {}
            Ok(_) => tokio::task::block_in_place(wait),
            Err(_) => wait(),
        }
    }
}

pub(super) fn lock_queue(q: &Mutex<Vec<Move>>) -> MutexGuard<'_, Vec<Move>> {
    q.lock().unwrap_or_else(|p| p.into_inner())
}
