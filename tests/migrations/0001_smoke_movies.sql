-- A throwaway table for the stack smoke test (tests/tests/stack_postgres.rs).
-- Plain SQL that runs on both PostgreSQL and CockroachDB.
CREATE TABLE smoke_movies (
    movie_id BIGINT PRIMARY KEY,
    title    TEXT NOT NULL,
    genres   TEXT NOT NULL
);
