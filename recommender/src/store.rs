//! The recommender's Cassandra/ScyllaDB tables: schema ([`migrate`]) and the
//! serving writes ([`Write`], [`Store::write_all`]).
//!
//! Cassandra holds only what is **served** (DESIGN.md §5; read by review-svc,
//! the dashboard's rollup and reconcile): `recommendations_by_user`,
//! `similar_movies`, `trending_by_genre`, each row overwritten whole (their
//! DDL, CQL and row types are the `cinerec-serving` crate's), plus
//! `partition_leases` ([`crate::ownership`]). The working state (review
//! states, likes, `N`, `C`) lives in the process and is made durable by the
//! changelog topic ([`crate::changelog`]): no Cassandra row per event.
//!
//! **Every write carries its own client-side timestamp** (`USING TIMESTAMP`),
//! fenced by the writer's partition lease ([`crate::ownership::Lease`]), so a
//! later owner's value wins over a zombie's, and within one owner a later
//! value over an earlier one, whatever order writes and their retries (which
//! keep their timestamp) land in.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cinerec_backoff::ExponentialBackoff;
use cinerec_service_kit::cql::{self, check_keyspace};
use futures::StreamExt;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use cinerec_serving as serving;

use crate::config::CqlConfig;
use crate::model::{MovieId, UserId};
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
    let timeout = Duration::from_millis(config.cql_timeout_ms.max(1));
    let session = cql::connect(&config.cql_nodes, Some(timeout))
        .await
        .map_err(db)?;
    Ok(Arc::new(session))
}

/// The CQL of the schema, in order (idempotent): the keyspace, the serving
/// tables ([`cinerec_serving::schema`], their one definition) and the
/// partition leases.
pub fn schema(config: &CqlConfig) -> Result<Vec<String>, StoreError> {
    let ks = &config.keyspace;
    let mut cql = vec![format!(
        "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {}",
        config.replication
    )];
    cql.extend(serving::schema::tables(ks).map_err(StoreError::Config)?);
    cql.push(crate::ownership::schema(ks));
    Ok(cql)
}

/// Client-side timeout of one schema statement.
const DDL_TIMEOUT: Duration = Duration::from_secs(60);
/// Retries of a failed schema statement.
const DDL_ATTEMPTS: u32 = 3;

/// Creates the keyspace and every table if missing.
pub async fn migrate(session: &Session, config: &CqlConfig) -> Result<(), StoreError> {
    check_keyspace(&config.keyspace).map_err(StoreError::Config)?;
    for cql in schema(config)? {
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

/// One serving row, whole (the absolute value: writing it twice is harmless).
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
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
}

impl Write {
    /// The table written (metric label).
    pub fn table(&self) -> &'static str {
        match self {
            Write::Recommendations { .. } => serving::schema::RECOMMENDATIONS,
            Write::Similar { .. } => serving::schema::SIMILAR_MOVIES,
            Write::Trending { .. } => serving::schema::TRENDING,
        }
    }

    /// A digest of the row's value, to skip a write equal to the last one
    /// durably written. Scores are rounded to 12 significant digits first:
    /// the model sums similarities in hash-set order, so one value may be
    /// computed a few ulps apart, and that is not a change worth a write.
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let round = |x: &f64| {
            if *x == 0.0 || !x.is_finite() {
                return 0u64;
            }
            let mag = x.abs().log10().floor();
            let scale = 10f64.powf(11.0 - mag);
            ((x * scale).round() as i64) as u64 ^ (mag as i64 as u64).rotate_left(48)
        };
        match self {
            Write::Recommendations {
                user,
                movies,
                scores,
                from_model,
            } => {
                (0u8, user, movies, from_model).hash(&mut h);
                scores.iter().map(round).for_each(|s| s.hash(&mut h));
            }
            Write::Similar {
                movie,
                movies,
                scores,
            } => {
                (1u8, movie, movies).hash(&mut h);
                scores.iter().map(round).for_each(|s| s.hash(&mut h));
            }
            Write::Trending {
                genre,
                movies,
                counts,
                window_start,
                window_end,
            } => (2u8, genre, movies, counts, window_start, window_end).hash(&mut h),
        }
        h.finish()
    }
}

/// Writes stopped before all landed: shutdown came while retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("writes abandoned at shutdown")]
pub struct Abandoned;

#[derive(Debug)]
struct Statements {
    recs_insert: PreparedStatement,
    similar_insert: PreparedStatement,
    trending_insert: PreparedStatement,
}

/// The prepared statements over one session and keyspace.
#[derive(Debug, Clone)]
pub struct Store {
    session: Arc<Session>,
    st: Arc<Statements>,
}

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
                Ok::<_, StoreError>(p)
            }
        };
        let inserts = serving::schema::inserts(ks).map_err(StoreError::Config)?;
        let st = Statements {
            recs_insert: prepare(inserts.recommendations).await?,
            similar_insert: prepare(inserts.similar_movies).await?,
            trending_insert: prepare(inserts.trending).await?,
        };
        Ok(Store {
            session,
            st: Arc::new(st),
        })
    }

    /// The session (for readiness probes and leases).
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

    /// One write attempt at timestamp `ts` (µs); `computed_at` is the wall clock.
    pub async fn write(&self, w: &Write, ts: i64) -> Result<(), StoreError> {
        let s = &self.session;
        let st = &self.st;
        let computed_at = cinerec_service_kit::clock::now_micros();
        let r = match w {
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
        };
        r.map(|_| ()).map_err(db)
    }

    /// Writes every `(row, timestamp)`, `concurrency` at a time, each retried
    /// with `backoff(failures)` until it lands. Gives up only when `stop`
    /// resolves (shutdown): then some writes may be missing, and the caller
    /// must not record them as durable.
    pub async fn write_all<S>(
        &self,
        writes: &[(Write, i64)],
        concurrency: usize,
        backoff: ExponentialBackoff,
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
        let each: Vec<_> = writes
            .iter()
            .map(|(w, ts)| self.write_until_landed(w, *ts, backoff))
            .collect();
        let all = futures::stream::iter(each)
            .buffer_unordered(concurrency.max(1))
            .for_each(|()| async {});
        tokio::select! {
            () = all => Ok(()),
            () = stop => Err(Abandoned),
        }
    }

    async fn write_until_landed(&self, w: &Write, ts: i64, backoff: ExponentialBackoff) {
        let table = w.table();
        let mut failures = 0u32;
        loop {
            let started = Instant::now();
            match self.write(w, ts).await {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_ignore_rounding_noise_but_not_changes() {
        let row = |scores: Vec<f64>, movies: Vec<i64>| Write::Recommendations {
            user: 1,
            movies,
            scores,
            from_model: 2,
        };
        let a = row(vec![0.75, 0.1], vec![3, 4]);
        let noisy = row(vec![0.75 + 1e-16, 0.1 - 1e-17], vec![3, 4]);
        assert_eq!(a.digest(), noisy.digest());
        assert_ne!(a.digest(), row(vec![0.75, 0.1001], vec![3, 4]).digest());
        assert_ne!(a.digest(), row(vec![0.75, 0.1], vec![4, 3]).digest());
    }

    #[test]
    fn keyspace_names_are_checked() {
        assert!(check_keyspace("recommender").is_ok());
        for bad in ["", "1ab", "a-b", "A", "a;drop"] {
            assert!(check_keyspace(bad).is_err(), "{bad}");
        }
    }
}
