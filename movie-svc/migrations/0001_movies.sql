-- movie-svc's table. Plain SQL that runs on PostgreSQL and CockroachDB alike:
-- BIGINT keys, TEXT[] arrays, DOUBLE PRECISION, TIMESTAMPTZ; no serial types,
-- no Postgres-only functions.
CREATE TABLE IF NOT EXISTS movies (
    id              BIGINT PRIMARY KEY,
    title           TEXT NOT NULL,
    year            INT NOT NULL,
    genres          TEXT[] NOT NULL,
    runtime_minutes INT NOT NULL,
    popularity      DOUBLE PRECISION NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
