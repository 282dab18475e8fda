-- The dashboard's rollups (schema `dashboard` by default; the sink sets
-- search_path). Plain SQL that runs on PostgreSQL and CockroachDB alike:
-- BIGINT, DOUBLE PRECISION, TEXT[], TIMESTAMPTZ, INSERT ... ON CONFLICT,
-- CREATE OR REPLACE VIEW; no serial types, no Postgres-only functions.

-- Every event_id the sink has applied: the idempotency ledger. A batch's ids
-- go in with ON CONFLICT DO NOTHING in the same transaction as its counts, so
-- an id that is already here (a Kafka redelivery, or the enricher producing
-- the same event twice) is counted as a dedup skip, never twice in the
-- rollups. Pruned after the dedup retention (longer than any redelivery).
CREATE TABLE IF NOT EXISTS seen_events (
    event_id UUID PRIMARY KEY,
    seen_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_events_by_time ON seen_events (seen_at);

-- Enriched review events per minute of event time (the review's changed_at).
-- kind: reviews = a first version, edits = a later version, deletes =
-- tombstones. rated/rating_sum give the mean rating of the minute.
CREATE TABLE IF NOT EXISTS review_throughput_minute (
    minute     TIMESTAMPTZ PRIMARY KEY,
    events     BIGINT NOT NULL,
    reviews    BIGINT NOT NULL,
    edits      BIGINT NOT NULL,
    deletes    BIGINT NOT NULL,
    rated      BIGINT NOT NULL,
    rating_sum DOUBLE PRECISION NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Ratings per minute and star value (0.5 .. 5.0).
CREATE TABLE IF NOT EXISTS rating_histogram_minute (
    minute  TIMESTAMPTZ NOT NULL,
    rating  DOUBLE PRECISION NOT NULL,
    reviews BIGINT NOT NULL,
    PRIMARY KEY (minute, rating)
);

-- Deliveries the sink rejected as already applied, per minute of arrival.
-- source names who counted them ('rollup': this sink's own ledger).
CREATE TABLE IF NOT EXISTS dedup_skips_minute (
    minute TIMESTAMPTZ NOT NULL,
    source TEXT NOT NULL,
    skips  BIGINT NOT NULL,
    PRIMARY KEY (minute, source)
);

-- Titles and genres as the enricher last saw them (EnrichedReview carries them).
CREATE TABLE IF NOT EXISTS movies (
    movie_id   BIGINT PRIMARY KEY,
    title      TEXT NOT NULL,
    year       INT NOT NULL,
    genres     TEXT[] NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- The latest snapshot of recommendations_by_user, per movie: in how many
-- users' lists it is (users), and in how many from the model rather than the
-- trending fallback (model_users). Rows of movies no longer recommended are
-- deleted by the snapshot that stops seeing them.
CREATE TABLE IF NOT EXISTS recommended_movies (
    movie_id    BIGINT PRIMARY KEY,
    users       BIGINT NOT NULL,
    model_users BIGINT NOT NULL,
    snapshot_at TIMESTAMPTZ NOT NULL
);

-- One row per snapshot of recommendations_by_user: totals over time.
CREATE TABLE IF NOT EXISTS recommendation_snapshots (
    snapshot_at     TIMESTAMPTZ PRIMARY KEY,
    users           BIGINT NOT NULL,
    recommendations BIGINT NOT NULL,
    from_model      BIGINT NOT NULL
);

-- trending_by_genre over time: each snapshot's ranking per genre.
CREATE TABLE IF NOT EXISTS trending_snapshots (
    snapshot_at  TIMESTAMPTZ NOT NULL,
    genre        TEXT NOT NULL,
    rank         INT NOT NULL,
    movie_id     BIGINT NOT NULL,
    reviews      BIGINT NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    window_end   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (snapshot_at, genre, rank)
);

-- What Superset reads: the tables above with titles and derived columns.
CREATE OR REPLACE VIEW review_throughput AS
SELECT minute, events, reviews, edits, deletes, rated, rating_sum,
       CASE WHEN rated > 0 THEN rating_sum / rated END AS mean_rating
FROM review_throughput_minute;

CREATE OR REPLACE VIEW most_recommended_movies AS
SELECT r.movie_id,
       COALESCE(m.title, 'movie ' || r.movie_id::TEXT) AS title,
       r.users, r.model_users, r.users - r.model_users AS fallback_users,
       r.snapshot_at
FROM recommended_movies r LEFT JOIN movies m ON m.movie_id = r.movie_id;

CREATE OR REPLACE VIEW recommendations_by_genre AS
SELECT genre, SUM(users) AS recommendations, SUM(model_users) AS from_model,
       COUNT(*) AS movies
FROM (SELECT unnest(m.genres) AS genre, r.users, r.model_users
      FROM recommended_movies r JOIN movies m ON m.movie_id = r.movie_id) AS g
GROUP BY genre;

CREATE OR REPLACE VIEW trending_over_time AS
SELECT t.snapshot_at, t.genre, t.rank, t.movie_id,
       COALESCE(m.title, 'movie ' || t.movie_id::TEXT) AS title,
       t.reviews, t.window_start, t.window_end
FROM trending_snapshots t LEFT JOIN movies m ON m.movie_id = t.movie_id;
