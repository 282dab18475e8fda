//! The rollups in PostgreSQL/CockroachDB: migrations, the per-batch
//! transaction, the snapshot transactions, retention.
//!
//! **At-least-once safe**: a batch is one transaction that first inserts its
//! event ids into `seen_events` (`ON CONFLICT DO NOTHING RETURNING`) and then
//! adds to the counters only what the ids that were *new* carry. Kafka offsets
//! are stored only after the commit. A crash before the commit applies
//! nothing; a crash after it redelivers events whose ids are already in the
//! ledger, which are counted as dedup skips and add nothing. Snapshots are
//! keyed by their time bucket and replace their rows, so a repeated snapshot
//! overwrites itself. Every statement is plain SQL that CockroachDB runs too
//! (serializable conflicts there surface as errors; the caller retries the
//! whole transaction).

use std::collections::{BTreeMap, HashSet};

use cinerec_events::EnrichedReview;
use cinerec_service_kit::db;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Transaction};

use crate::aggregate::{Aggregate, classify};
use crate::config::Config;
use crate::snapshot::Snapshot;

/// Separates genres when a movie's genre list travels as one text value
/// (`UNNEST` flattens arrays of arrays, so lists go as joined strings).
const GENRE_SEPARATOR: char = '\u{1f}';

/// Source label of the skips this sink counts in its own ledger.
pub const SOURCE_ROLLUP: &str = "rollup";

/// The rollup store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

/// What became of one event of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFate {
    /// Added to the rollups (its id is now in the ledger).
    Applied,
    /// Its id was already applied, or came earlier in the same batch.
    Duplicate,
    /// Failed validation: not rolled up, not remembered.
    Invalid,
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// One fate per event, in the batch's order.
    pub fates: Vec<EventFate>,
    /// Events added to the rollups.
    pub applied: u64,
    /// Events whose id was already applied (or twice in the batch).
    pub duplicates: u64,
    /// Events that failed validation (not rolled up, not remembered).
    pub invalid: u64,
}

impl Store {
    /// Connects (creating the schema) and runs the migrations.
    pub async fn connect(config: &Config) -> anyhow::Result<Store> {
        let pool = db::connect(&config.db, &config.schema).await?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("migrating schema {}: {e}", config.schema))?;
        Ok(Store { pool })
    }

    /// The pool (readiness probes, tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies one batch in one transaction (see the module doc).
    pub async fn apply(&self, events: &[EnrichedReview]) -> anyhow::Result<Applied> {
        let mut outcome = Applied {
            fates: vec![EventFate::Invalid; events.len()],
            ..Applied::default()
        };
        let mut in_batch = HashSet::new();
        let mut valid = Vec::with_capacity(events.len());
        let mut movies = Aggregate::default();
        for (i, event) in events.iter().enumerate() {
            match classify(event) {
                Ok(kind) => {
                    if in_batch.insert(event.event_id) {
                        valid.push((i, event, kind));
                    } else {
                        outcome.fates[i] = EventFate::Duplicate;
                        outcome.duplicates += 1;
                    }
                    movies.add_movie(event);
                }
                Err(why) => {
                    crate::telemetry::invalid_event(event, &why);
                    outcome.invalid += 1;
                }
            }
        }
        let mut tx = self.pool.begin().await?;
        let ids: Vec<String> = valid
            .iter()
            .map(|(_, e, _)| e.event_id.to_string())
            .collect();
        let new: HashSet<String> = sqlx::query_scalar(
            "INSERT INTO seen_events (event_id, seen_at) \
             SELECT id::UUID, now() FROM UNNEST($1::TEXT[]) AS t(id) \
             ON CONFLICT (event_id) DO NOTHING RETURNING event_id::TEXT",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let mut agg = Aggregate {
            movies: movies.movies,
            ..Aggregate::default()
        };
        for (i, event, kind) in &valid {
            if new.contains(&event.event_id.to_string()) {
                agg.add(event, *kind);
                outcome.fates[*i] = EventFate::Applied;
                outcome.applied += 1;
            } else {
                outcome.fates[*i] = EventFate::Duplicate;
                outcome.duplicates += 1;
            }
        }
        write_counts(&mut tx, &agg).await?;
        write_movies(&mut tx, &agg).await?;
        if outcome.duplicates > 0 {
            sqlx::query(
                "INSERT INTO dedup_skips_minute (minute, source, skips) \
                 VALUES (date_trunc('minute', now()), $1, $2) \
                 ON CONFLICT (minute, source) DO UPDATE \
                 SET skips = dedup_skips_minute.skips + excluded.skips",
            )
            .bind(SOURCE_ROLLUP)
            .bind(outcome.duplicates as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// Writes one snapshot of the recommender's tables taken at `at_us`
    /// (already floored to its bucket), in one transaction.
    pub async fn write_snapshot(&self, snapshot: &Snapshot, at_us: i64) -> anyhow::Result<()> {
        let at = at_us as f64 / 1e6;
        let mut tx = self.pool.begin().await?;
        let (ids, users, model): (Vec<i64>, Vec<i64>, Vec<i64>) = snapshot
            .recommended
            .iter()
            .map(|(id, c)| (*id, c.users, c.model_users))
            .collect();
        sqlx::query(
            "INSERT INTO recommended_movies (movie_id, users, model_users, snapshot_at) \
             SELECT id, u, m, to_timestamp($4) \
             FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[]) AS t(id, u, m) \
             ON CONFLICT (movie_id) DO UPDATE SET users = excluded.users, \
             model_users = excluded.model_users, snapshot_at = excluded.snapshot_at",
        )
        .bind(&ids)
        .bind(&users)
        .bind(&model)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM recommended_movies WHERE snapshot_at <> to_timestamp($1)")
            .bind(at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO recommendation_snapshots (snapshot_at, users, recommendations, from_model) \
             VALUES (to_timestamp($1), $2, $3, $4) \
             ON CONFLICT (snapshot_at) DO UPDATE SET users = excluded.users, \
             recommendations = excluded.recommendations, from_model = excluded.from_model",
        )
        .bind(at)
        .bind(snapshot.users as i64)
        .bind(snapshot.recommendations as i64)
        .bind(snapshot.from_model as i64)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM trending_snapshots WHERE snapshot_at = to_timestamp($1)")
            .bind(at)
            .execute(&mut *tx)
            .await?;
        let mut cols = TrendingColumns::default();
        for t in &snapshot.trending {
            for (rank, (movie, count)) in t.movies.iter().enumerate() {
                cols.genre.push(t.genre.clone());
                cols.rank.push(rank as i32 + 1);
                cols.movie.push(*movie);
                cols.count.push(*count);
                cols.start.push(t.window_start_us as f64 / 1e6);
                cols.end.push(t.window_end_us as f64 / 1e6);
            }
        }
        sqlx::query(
            "INSERT INTO trending_snapshots \
             (snapshot_at, genre, rank, movie_id, reviews, window_start, window_end) \
             SELECT to_timestamp($7), g, r, m, c, to_timestamp(ws), to_timestamp(we) \
             FROM UNNEST($1::TEXT[], $2::INT[], $3::BIGINT[], $4::BIGINT[], \
                         $5::FLOAT8[], $6::FLOAT8[]) AS t(g, r, m, c, ws, we)",
        )
        .bind(&cols.genre)
        .bind(&cols.rank)
        .bind(&cols.movie)
        .bind(&cols.count)
        .bind(&cols.start)
        .bind(&cols.end)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets event ids older than `dedup_hours` and snapshot history older
    /// than `history_hours`. Returns the rows deleted.
    pub async fn prune(&self, dedup_hours: u64, history_hours: u64) -> anyhow::Result<u64> {
        let mut deleted = 0;
        for (sql, hours) in [
            (
                "DELETE FROM seen_events WHERE seen_at < now() - $1::INT * INTERVAL '1 hour'",
                dedup_hours,
            ),
            (
                "DELETE FROM trending_snapshots WHERE snapshot_at < now() - $1::INT * INTERVAL '1 hour'",
                history_hours,
            ),
            (
                "DELETE FROM recommendation_snapshots WHERE snapshot_at < now() - $1::INT * INTERVAL '1 hour'",
                history_hours,
            ),
        ] {
            let hours = i32::try_from(hours).unwrap_or(i32::MAX);
            deleted += sqlx::query(sql)
                .bind(hours)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(deleted)
    }
}

/// One array per column of `trending_snapshots` (bound to `UNNEST`).
#[derive(Default)]
struct TrendingColumns {
    genre: Vec<String>,
    rank: Vec<i32>,
    movie: Vec<i64>,
    count: Vec<i64>,
    start: Vec<f64>,
    end: Vec<f64>,
}

/// One array per column of `review_throughput_minute` (bound to `UNNEST`).
#[derive(Default)]
struct CountColumns {
    minute: Vec<f64>,
    events: Vec<i64>,
    reviews: Vec<i64>,
    edits: Vec<i64>,
    deletes: Vec<i64>,
    rated: Vec<i64>,
    rating_sum: Vec<f64>,
}

async fn write_counts(tx: &mut Transaction<'_, Postgres>, agg: &Aggregate) -> anyhow::Result<()> {
    if agg.minutes.is_empty() {
        return Ok(());
    }
    let mut c = CountColumns::default();
    for (minute, m) in &agg.minutes {
        c.minute.push(*minute as f64 / 1e6);
        c.events.push(m.events);
        c.reviews.push(m.reviews);
        c.edits.push(m.edits);
        c.deletes.push(m.deletes);
        c.rated.push(m.rated);
        c.rating_sum.push(m.rating_sum);
    }
    sqlx::query(
        "INSERT INTO review_throughput_minute \
         (minute, events, reviews, edits, deletes, rated, rating_sum, updated_at) \
         SELECT to_timestamp(m), e, r, ed, d, n, s, now() \
         FROM UNNEST($1::FLOAT8[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[], \
                     $6::BIGINT[], $7::FLOAT8[]) AS t(m, e, r, ed, d, n, s) \
         ON CONFLICT (minute) DO UPDATE SET \
           events = review_throughput_minute.events + excluded.events, \
           reviews = review_throughput_minute.reviews + excluded.reviews, \
           edits = review_throughput_minute.edits + excluded.edits, \
           deletes = review_throughput_minute.deletes + excluded.deletes, \
           rated = review_throughput_minute.rated + excluded.rated, \
           rating_sum = review_throughput_minute.rating_sum + excluded.rating_sum, \
           updated_at = excluded.updated_at",
    )
    .bind(&c.minute)
    .bind(&c.events)
    .bind(&c.reviews)
    .bind(&c.edits)
    .bind(&c.deletes)
    .bind(&c.rated)
    .bind(&c.rating_sum)
    .execute(&mut **tx)
    .await?;
    let mut h: (Vec<f64>, Vec<f64>, Vec<i64>) = Default::default();
    for ((minute, half_stars), n) in &agg.histogram {
        h.0.push(*minute as f64 / 1e6);
        h.1.push(f64::from(*half_stars) / 2.0);
        h.2.push(*n);
    }
    sqlx::query(
        "INSERT INTO rating_histogram_minute (minute, rating, reviews) \
         SELECT to_timestamp(m), r, n \
         FROM UNNEST($1::FLOAT8[], $2::FLOAT8[], $3::BIGINT[]) AS t(m, r, n) \
         ON CONFLICT (minute, rating) DO UPDATE \
         SET reviews = rating_histogram_minute.reviews + excluded.reviews",
    )
    .bind(&h.0)
    .bind(&h.1)
    .bind(&h.2)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn write_movies(tx: &mut Transaction<'_, Postgres>, agg: &Aggregate) -> anyhow::Result<()> {
    if agg.movies.is_empty() {
        return Ok(());
    }
    let mut m: (Vec<i64>, Vec<String>, Vec<i32>, Vec<String>) = Default::default();
    for (id, movie) in &agg.movies {
        m.0.push(*id);
        m.1.push(movie.title.clone());
        m.2.push(movie.year);
        m.3.push(movie.genres.join(&GENRE_SEPARATOR.to_string()));
    }
    // Written only when the description changed: most batches repeat the
    // same popular movies.
    sqlx::query(
        "INSERT INTO movies (movie_id, title, year, genres, updated_at) \
         SELECT id, t, y, CASE WHEN g = '' THEN ARRAY[]::TEXT[] ELSE string_to_array(g, $5) END, now() \
         FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::INT[], $4::TEXT[]) AS u(id, t, y, g) \
         ON CONFLICT (movie_id) DO UPDATE SET title = excluded.title, year = excluded.year, \
           genres = excluded.genres, updated_at = excluded.updated_at \
         WHERE movies.title <> excluded.title OR movies.year <> excluded.year \
           OR movies.genres <> excluded.genres",
    )
    .bind(&m.0)
    .bind(&m.1)
    .bind(&m.2)
    .bind(&m.3)
    .bind(GENRE_SEPARATOR.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Read helpers for tests and the demo: the throughput rows as
/// `minute µs -> (events, reviews, edits, deletes, rated, rating_sum)`.
pub async fn throughput(
    pool: &PgPool,
) -> anyhow::Result<BTreeMap<i64, (i64, i64, i64, i64, i64, f64)>> {
    let rows: Vec<(i64, i64, i64, i64, i64, i64, f64)> = sqlx::query_as(
        "SELECT (extract(epoch FROM minute) * 1000000)::BIGINT, events, reviews, edits, \
         deletes, rated, rating_sum FROM review_throughput_minute",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.0, (r.1, r.2, r.3, r.4, r.5, r.6)))
        .collect())
}
