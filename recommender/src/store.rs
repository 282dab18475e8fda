//! The recommender's Cassandra/ScyllaDB tables: schema ([`migrate`]), the
//! writes of the pipeline ([`Write`], [`Store::write_all`]) and the reads of a
//! restart ([`Store::load_states`], [`Store::load_genres`]).
//!
//! Contract tables (DESIGN.md §5; shared with reconcile and the dashboard):
//!
//! * `review_states` — latest state of every review applied: the checkpoint
//!   the model is rebuilt from.
//! * `likes_by_user`, `movie_likes`, `co_likes` — likes, `N`, `C` (`a < b`),
//!   rows deleted when the value is absent/0.
//! * `recommendations_by_user`, `similar_movies`, `trending_by_genre` — the
//!   outputs, each row overwritten whole.
//!
//! Side tables of the recommender alone (not part of the contract):
//! `movie_genres` and `user_genres`, the genres the enriched events carried,
//! so a restart can rebuild trending and the cold-start fallback, which
//! `review_states` alone cannot.
//!
//! **Every write carries a client-side timestamp** (`USING TIMESTAMP`) taken
//! from [`Clock`] while the model is locked, so a value computed from a later
//! model state always wins over an earlier one, whatever order concurrent
//! writes (and their retries, which keep their timestamp) land in. Writes
//! sharing a timestamp must not share a key: Cassandra breaks timestamp ties
//! by comparing *values*, so the callers coalesce to one write per key.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use cinerec_service_kit::cql::check_keyspace;
use futures::{StreamExt, TryStreamExt};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::Consistency;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use crate::config::CqlConfig;
use crate::model::{MovieId, ReviewState, UserId};
use crate::telemetry;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or timed out; the caller may retry.
    #[error("database: {0}")]
    Database(String),
    /// A stored row does not have the expected shape.
    #[error("malformed row: {0}")]
    Corrupt(String),
    /// The configuration is not usable.
    #[error("configuration: {0}")]
    Config(String),
}

fn db(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}

/// Connects to the cluster (token-aware routing by default) with the
/// configured request timeout.
pub async fn connect(config: &CqlConfig) -> Result<Arc<Session>, StoreError> {
    check_keyspace(&config.keyspace).map_err(StoreError::Config)?;
    let profile = ExecutionProfile::builder()
        .request_timeout(Some(Duration::from_millis(config.cql_timeout_ms.max(1))))
        .consistency(Consistency::LocalQuorum)
        .build()
        .into_handle();
    let session = SessionBuilder::new()
        .known_nodes(&config.cql_nodes)
        .default_execution_profile_handle(profile)
        .build()
        .await
        .map_err(|e| {
            StoreError::Database(format!(
                "Cassandra at {} unreachable: {e}",
                config.cql_nodes.join(",")
            ))
        })?;
    Ok(Arc::new(session))
}

/// The CQL of the schema, in order (idempotent).
pub fn schema(config: &CqlConfig) -> Vec<String> {
    let ks = &config.keyspace;
    vec![
        format!(
            "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {}",
            config.replication
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.review_states (review_id uuid PRIMARY KEY, \
             user_id bigint, movie_id bigint, rating float, version bigint, changed_at bigint, \
             deleted boolean)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.likes_by_user (user_id bigint, movie_id bigint, \
             PRIMARY KEY (user_id, movie_id))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.movie_likes (movie_id bigint PRIMARY KEY, likers int)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.co_likes (movie_a bigint, movie_b bigint, users int, \
             PRIMARY KEY (movie_a, movie_b))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.recommendations_by_user (user_id bigint PRIMARY KEY, \
             movie_ids list<bigint>, scores list<double>, from_model int, computed_at bigint)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.similar_movies (movie_id bigint PRIMARY KEY, \
             movie_ids list<bigint>, scores list<double>, computed_at bigint)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.trending_by_genre (genre text PRIMARY KEY, \
             movie_ids list<bigint>, counts list<int>, window_start bigint, window_end bigint, \
             computed_at bigint)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.movie_genres (movie_id bigint PRIMARY KEY, \
             genres list<text>)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.user_genres (user_id bigint PRIMARY KEY, \
             genres list<text>)"
        ),
    ]
}

/// Client-side timeout of one schema statement.
const DDL_TIMEOUT: Duration = Duration::from_secs(60);
/// Retries of a failed schema statement.
const DDL_ATTEMPTS: u32 = 3;

/// Creates the keyspace and every table if missing.
pub async fn migrate(session: &Session, config: &CqlConfig) -> Result<(), StoreError> {
    check_keyspace(&config.keyspace).map_err(StoreError::Config)?;
    for cql in schema(config) {
        // Schema changes wait for every node's agreement and queue behind
        // other clients' DDL: give them far longer than a data request, and
        // retry (each statement is `IF NOT EXISTS`).
        let mut statement = scylla::statement::unprepared::Statement::new(cql.as_str());
        statement.set_request_timeout(Some(DDL_TIMEOUT));
        let mut attempt = 0;
        loop {
            match session.query_unpaged(statement.clone(), &[]).await {
                Ok(_) => break,
                Err(e) if attempt < DDL_ATTEMPTS => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, cql, "schema change failed: retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(StoreError::Database(format!("{cql}: {e}"))),
            }
        }
    }
    session
        .await_schema_agreement()
        .await
        .map_err(|e| StoreError::Database(format!("schema agreement: {e}")))?;
    Ok(())
}

/// Write timestamps (µs) that strictly increase within the process and
/// follow the wall clock across processes, so a restarted recommender's
/// writes win over its predecessor's (one timestamp per batch or refresh,
/// so the `+1` steps never run ahead of the clock in practice).
#[derive(Debug, Default)]
pub struct Clock {
    last: AtomicI64,
}

impl Clock {
    /// The next timestamp: `max(now, last + 1)`.
    pub fn next(&self) -> i64 {
        let now = now_micros();
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self
                .last
                .compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

/// Wall clock, µs since the epoch.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One row write, holding the absolute value to write (or a delete).
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// `likes_by_user`: present iff `liked`.
    Like {
        /// Who.
        user: UserId,
        /// Which movie.
        movie: MovieId,
        /// Row present?
        liked: bool,
    },
    /// `movie_likes`: `N(movie)`; 0 deletes the row.
    N {
        /// The movie.
        movie: MovieId,
        /// `N`.
        likers: u32,
    },
    /// `co_likes`: `C(a, b)` with `a < b`; 0 deletes the row.
    C {
        /// Smaller id.
        a: MovieId,
        /// Larger id.
        b: MovieId,
        /// `C`.
        users: u32,
    },
    /// `recommendations_by_user`, whole row.
    Recommendations {
        /// The user.
        user: UserId,
        /// Best first.
        movies: Vec<MovieId>,
        /// Summed similarity; 0.0 for the fallback entries.
        scores: Vec<f64>,
        /// How many leading entries come from the model.
        from_model: i32,
    },
    /// `similar_movies`, whole row.
    Similar {
        /// The movie.
        movie: MovieId,
        /// Best first.
        movies: Vec<MovieId>,
        /// Similarities.
        scores: Vec<f64>,
    },
    /// `trending_by_genre`, whole row.
    Trending {
        /// The genre.
        genre: String,
        /// Best first.
        movies: Vec<MovieId>,
        /// Reviews in the window.
        counts: Vec<i32>,
        /// Window start (µs, event time).
        window_start: i64,
        /// Window end (µs, event time, exclusive).
        window_end: i64,
    },
    /// `review_states`: the checkpoint of one review.
    State(ReviewState),
    /// `movie_genres`.
    MovieGenres {
        /// The movie.
        movie: MovieId,
        /// Its genres.
        genres: Vec<String>,
    },
    /// `user_genres`.
    UserGenres {
        /// The user.
        user: UserId,
        /// Preferred genres.
        genres: Vec<String>,
    },
}

impl Write {
    /// The table written (metric label).
    pub fn table(&self) -> &'static str {
        match self {
            Write::Like { .. } => "likes_by_user",
            Write::N { .. } => "movie_likes",
            Write::C { .. } => "co_likes",
            Write::Recommendations { .. } => "recommendations_by_user",
            Write::Similar { .. } => "similar_movies",
            Write::Trending { .. } => "trending_by_genre",
            Write::State(_) => "review_states",
            Write::MovieGenres { .. } => "movie_genres",
            Write::UserGenres { .. } => "user_genres",
        }
    }
}

/// Exponential backoff of failed writes: `base · 2^(failures−1)`, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay after `failures` failures.
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(16);
        self.base
            .saturating_mul(1 << exp)
            .min(self.max.max(self.base))
    }
}

/// Writes stopped before all landed: shutdown came while retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("writes abandoned at shutdown")]
pub struct Abandoned;

#[derive(Debug)]
struct Statements {
    like_insert: PreparedStatement,
    like_delete: PreparedStatement,
    n_insert: PreparedStatement,
    n_delete: PreparedStatement,
    c_insert: PreparedStatement,
    c_delete: PreparedStatement,
    recs_insert: PreparedStatement,
    similar_insert: PreparedStatement,
    trending_insert: PreparedStatement,
    state_insert: PreparedStatement,
    movie_genres_insert: PreparedStatement,
    user_genres_insert: PreparedStatement,
    states_scan: PreparedStatement,
    movie_genres_scan: PreparedStatement,
    user_genres_scan: PreparedStatement,
}

/// The prepared statements over one session and keyspace.
#[derive(Debug, Clone)]
pub struct Store {
    session: Arc<Session>,
    st: Arc<Statements>,
}

/// Rows of a full scan per page.
const SCAN_PAGE: i32 = 5_000;

impl Store {
    /// Prepares every statement against `config.keyspace` (run [`migrate`] first).
    pub async fn new(session: Arc<Session>, config: &CqlConfig) -> Result<Store, StoreError> {
        check_keyspace(&config.keyspace).map_err(StoreError::Config)?;
        let ks = &config.keyspace;
        let prepare = |cql: String| {
            let session = session.clone();
            async move {
                let mut p = session
                    .prepare(cql.as_str())
                    .await
                    .map_err(|e| StoreError::Database(format!("preparing {cql}: {e}")))?;
                // Every write carries its timestamp: replaying it is harmless.
                p.set_is_idempotent(true);
                p.set_page_size(SCAN_PAGE);
                Ok::<_, StoreError>(p)
            }
        };
        let st = Statements {
            like_insert: prepare(format!(
                "INSERT INTO {ks}.likes_by_user (user_id, movie_id) VALUES (?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            like_delete: prepare(format!(
                "DELETE FROM {ks}.likes_by_user USING TIMESTAMP ? WHERE user_id = ? AND movie_id = ?"
            ))
            .await?,
            n_insert: prepare(format!(
                "INSERT INTO {ks}.movie_likes (movie_id, likers) VALUES (?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            n_delete: prepare(format!(
                "DELETE FROM {ks}.movie_likes USING TIMESTAMP ? WHERE movie_id = ?"
            ))
            .await?,
            c_insert: prepare(format!(
                "INSERT INTO {ks}.co_likes (movie_a, movie_b, users) VALUES (?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            c_delete: prepare(format!(
                "DELETE FROM {ks}.co_likes USING TIMESTAMP ? WHERE movie_a = ? AND movie_b = ?"
            ))
            .await?,
            recs_insert: prepare(format!(
                "INSERT INTO {ks}.recommendations_by_user (user_id, movie_ids, scores, from_model, \
                 computed_at) VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            similar_insert: prepare(format!(
                "INSERT INTO {ks}.similar_movies (movie_id, movie_ids, scores, computed_at) \
                 VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            trending_insert: prepare(format!(
                "INSERT INTO {ks}.trending_by_genre (genre, movie_ids, counts, window_start, \
                 window_end, computed_at) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            state_insert: prepare(format!(
                "INSERT INTO {ks}.review_states (review_id, user_id, movie_id, rating, version, \
                 changed_at, deleted) VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            movie_genres_insert: prepare(format!(
                "INSERT INTO {ks}.movie_genres (movie_id, genres) VALUES (?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            user_genres_insert: prepare(format!(
                "INSERT INTO {ks}.user_genres (user_id, genres) VALUES (?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            states_scan: prepare(format!(
                "SELECT review_id, user_id, movie_id, rating, version, changed_at, deleted \
                 FROM {ks}.review_states"
            ))
            .await?,
            movie_genres_scan: prepare(format!("SELECT movie_id, genres FROM {ks}.movie_genres"))
                .await?,
            user_genres_scan: prepare(format!("SELECT user_id, genres FROM {ks}.user_genres"))
                .await?,
        };
        Ok(Store {
            session,
            st: Arc::new(st),
        })
    }

    /// The session (for readiness probes).
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Ok when the cluster answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.session
            .query_unpaged("SELECT release_version FROM system.local", &[])
            .await
            .map(|_| ())
            .map_err(db)
    }

    /// One write attempt at timestamp `ts` (µs).
    pub async fn write(&self, w: &Write, ts: i64) -> Result<(), StoreError> {
        let s = &self.session;
        let st = &self.st;
        let computed_at = ts;
        let r = match w {
            Write::Like { user, movie, liked } => {
                if *liked {
                    s.execute_unpaged(&st.like_insert, (user, movie, ts)).await
                } else {
                    s.execute_unpaged(&st.like_delete, (ts, user, movie)).await
                }
            }
            Write::N { movie, likers } => {
                if *likers > 0 {
                    s.execute_unpaged(&st.n_insert, (movie, clamp_i32(*likers), ts))
                        .await
                } else {
                    s.execute_unpaged(&st.n_delete, (ts, movie)).await
                }
            }
            Write::C { a, b, users } => {
                if *users > 0 {
                    s.execute_unpaged(&st.c_insert, (a, b, clamp_i32(*users), ts))
                        .await
                } else {
                    s.execute_unpaged(&st.c_delete, (ts, a, b)).await
                }
            }
            Write::Recommendations {
                user,
                movies,
                scores,
                from_model,
            } => {
                s.execute_unpaged(
                    &st.recs_insert,
                    (user, movies, scores, from_model, computed_at, ts),
                )
                .await
            }
            Write::Similar {
                movie,
                movies,
                scores,
            } => {
                s.execute_unpaged(&st.similar_insert, (movie, movies, scores, computed_at, ts))
                    .await
            }
            Write::Trending {
                genre,
                movies,
                counts,
                window_start,
                window_end,
            } => {
                s.execute_unpaged(
                    &st.trending_insert,
                    (
                        genre,
                        movies,
                        counts,
                        window_start,
                        window_end,
                        computed_at,
                        ts,
                    ),
                )
                .await
            }
            Write::State(r) => {
                let rating = (!r.deleted).then_some(r.rating);
                s.execute_unpaged(
                    &st.state_insert,
                    (
                        Uuid::from_u128(r.review_id),
                        r.user_id,
                        r.movie_id,
                        rating,
                        r.version,
                        r.changed_at_us,
                        r.deleted,
                        ts,
                    ),
                )
                .await
            }
            Write::MovieGenres { movie, genres } => {
                s.execute_unpaged(&st.movie_genres_insert, (movie, genres, ts))
                    .await
            }
            Write::UserGenres { user, genres } => {
                s.execute_unpaged(&st.user_genres_insert, (user, genres, ts))
                    .await
            }
        };
        r.map(|_| ()).map_err(db)
    }

    /// Writes everything at timestamp `ts`, `concurrency` at a time, each
    /// retried with `backoff(failures)` until it lands. Gives up only when
    /// `stop` resolves (shutdown): then some writes may be missing, and the
    /// caller must not record the effect as done.
    pub async fn write_all<S>(
        &self,
        writes: &[Write],
        ts: i64,
        concurrency: usize,
        backoff: Backoff,
        stop: S,
    ) -> Result<(), Abandoned>
    where
        S: std::future::Future<Output = ()>,
    {
        if writes.is_empty() {
            return Ok(());
        }
        // Built eagerly: a lazily mapped stream of borrowing futures trips
        // the compiler's higher-ranked lifetime check inside `tokio::spawn`.
        let each: Vec<_> = group(writes)
            .into_iter()
            .map(|unit| self.write_until_landed(unit, ts, backoff))
            .collect();
        let all = futures::stream::iter(each)
            .buffer_unordered(concurrency.max(1))
            .for_each(|()| async {});
        tokio::select! {
            () = all => Ok(()),
            () = stop => Err(Abandoned),
        }
    }

    async fn write_until_landed(&self, unit: Vec<&Write>, ts: i64, backoff: Backoff) {
        let Some(first) = unit.first() else { return };
        let table = first.table();
        let mut failures = 0u32;
        loop {
            let started = Instant::now();
            let outcome = if unit.len() == 1 {
                self.write(first, ts).await
            } else {
                self.write_batch(&unit, ts).await
            };
            match outcome {
                Ok(()) => {
                    telemetry::cassandra_write(table, started.elapsed());
                    return;
                }
                Err(e) => {
                    failures += 1;
                    telemetry::cassandra_retry(table, failures, &e);
                    tokio::time::sleep(backoff.delay(failures)).await;
                }
            }
        }
    }

    /// Rows of one partition (`likes_by_user` of one user, `co_likes` of
    /// one `movie_a`) as one UNLOGGED batch: one round trip, applied by one
    /// replica set, no batch log needed (a retry rewrites the same values).
    async fn write_batch(&self, unit: &[&Write], ts: i64) -> Result<(), StoreError> {
        use scylla::value::CqlValue::{BigInt, Int};
        let st = &self.st;
        let mut batch = Batch::new(BatchType::Unlogged);
        let mut values: Vec<Vec<scylla::value::CqlValue>> = Vec::with_capacity(unit.len());
        for w in unit {
            let (statement, row) = match **w {
                Write::Like {
                    user,
                    movie,
                    liked: true,
                } => (
                    &st.like_insert,
                    vec![BigInt(user), BigInt(movie), BigInt(ts)],
                ),
                Write::Like {
                    user,
                    movie,
                    liked: false,
                } => (
                    &st.like_delete,
                    vec![BigInt(ts), BigInt(user), BigInt(movie)],
                ),
                Write::C { a, b, users } if users > 0 => (
                    &st.c_insert,
                    vec![BigInt(a), BigInt(b), Int(clamp_i32(users)), BigInt(ts)],
                ),
                Write::C { a, b, .. } => (&st.c_delete, vec![BigInt(ts), BigInt(a), BigInt(b)]),
                _ => {
                    return Err(StoreError::Config(format!(
                        "{} rows are not batched",
                        w.table()
                    )));
                }
            };
            batch.append_statement(statement.clone());
            values.push(row);
        }
        batch.set_is_idempotent(true);
        self.session
            .batch(&batch, values)
            .await
            .map(|_| ())
            .map_err(db)
    }

    /// Every review state checkpointed, page by page, into `each`.
    pub async fn load_states(&self, mut each: impl FnMut(ReviewState)) -> Result<u64, StoreError> {
        type Row = (
            Uuid,
            Option<i64>,
            Option<i64>,
            Option<f32>,
            Option<i64>,
            Option<i64>,
            Option<bool>,
        );
        let pager = self
            .session
            .execute_iter(self.st.states_scan.clone(), &[])
            .await
            .map_err(db)?;
        let mut rows = pager
            .rows_stream::<Row>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut n = 0;
        while let Some(row) = rows.try_next().await.map_err(db)? {
            let (id, user, movie, rating, version, changed_at, deleted) = row;
            let need = |v: Option<i64>, what: &str| {
                v.ok_or_else(|| StoreError::Corrupt(format!("review_states {id} without {what}")))
            };
            let deleted = deleted.unwrap_or(false);
            each(ReviewState {
                review_id: id.as_u128(),
                user_id: need(user, "user_id")?,
                movie_id: need(movie, "movie_id")?,
                rating: match rating {
                    Some(r) => r,
                    None if deleted => 0.0,
                    None => {
                        return Err(StoreError::Corrupt(format!(
                            "review_states {id}: live without rating"
                        )));
                    }
                },
                version: need(version, "version")?,
                changed_at_us: need(changed_at, "changed_at")?,
                deleted,
            });
            n += 1;
        }
        Ok(n)
    }

    /// The genres side tables: (movie genres, user preferred genres).
    pub async fn load_genres(&self) -> Result<(GenreRows, GenreRows), StoreError> {
        let mut out = Vec::new();
        for st in [&self.st.movie_genres_scan, &self.st.user_genres_scan] {
            let pager = self
                .session
                .execute_iter(st.clone(), &[])
                .await
                .map_err(db)?;
            let mut rows = pager
                .rows_stream::<(i64, Option<Vec<String>>)>()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let mut got = Vec::new();
            while let Some((id, genres)) = rows.try_next().await.map_err(db)? {
                got.push((id, genres.unwrap_or_default()));
            }
            out.push(got);
        }
        let users = out.pop().unwrap_or_default();
        let movies = out.pop().unwrap_or_default();
        Ok((movies, users))
    }
}

/// Most rows in one UNLOGGED batch (tens of bytes each: far below
/// Cassandra's batch size warning).
const MAX_BATCH_ROWS: usize = 64;

/// Write units: `likes_by_user` rows grouped by user and `co_likes` rows by
/// `movie_a` (same partition: one batch each, at most [`MAX_BATCH_ROWS`]),
/// every other write alone.
fn group(writes: &[Write]) -> Vec<Vec<&Write>> {
    let mut units: Vec<Vec<&Write>> = Vec::new();
    let mut by_partition: HashMap<(u8, i64), Vec<&Write>> = HashMap::new();
    for w in writes {
        let key = match w {
            Write::Like { user, .. } => (0, *user),
            Write::C { a, .. } => (1, *a),
            _ => {
                units.push(vec![w]);
                continue;
            }
        };
        let rows = by_partition.entry(key).or_default();
        rows.push(w);
        if rows.len() >= MAX_BATCH_ROWS {
            units.push(std::mem::take(rows));
        }
    }
    units.extend(by_partition.into_values().filter(|rows| !rows.is_empty()));
    units
}

/// `(id, genres)` rows of a genres side table.
pub type GenreRows = Vec<(i64, Vec<String>)>;

fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_strictly_increases() {
        let c = Clock::default();
        let mut last = 0;
        for _ in 0..10_000 {
            let t = c.next();
            assert!(t > last);
            last = t;
        }
    }

    #[test]
    fn likes_and_co_likes_are_grouped_by_partition() {
        let mut writes = vec![Write::N {
            movie: 1,
            likers: 2,
        }];
        for b in 2..=(MAX_BATCH_ROWS as i64 + 2) {
            writes.push(Write::C { a: 1, b, users: 1 });
        }
        writes.push(Write::Like {
            user: 5,
            movie: 1,
            liked: true,
        });
        writes.push(Write::Like {
            user: 5,
            movie: 2,
            liked: false,
        });
        writes.push(Write::Like {
            user: 6,
            movie: 1,
            liked: true,
        });
        let units = group(&writes);
        let mut sizes: Vec<usize> = units.iter().map(Vec::len).collect();
        sizes.sort_unstable();
        // N alone, user 6 alone, user 5's two, C of movie 1 split at the cap.
        assert_eq!(sizes, vec![1, 1, 1, 2, MAX_BATCH_ROWS]);
        assert_eq!(units.iter().map(Vec::len).sum::<usize>(), writes.len());
    }

    #[test]
    fn keyspace_names_are_checked() {
        assert!(check_keyspace("recommender").is_ok());
        for bad in ["", "1ab", "a-b", "A", "a;drop"] {
            assert!(check_keyspace(bad).is_err(), "{bad}");
        }
    }
}
