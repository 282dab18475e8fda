-- user-svc's table. Plain SQL that runs on PostgreSQL and CockroachDB alike.
-- `signup_date` is a DATE; `tier` is TEXT with a CHECK rather than an enum
-- type, so adding a tier is a one-line migration on both databases.
CREATE TABLE IF NOT EXISTS users (
    id               BIGINT PRIMARY KEY,
    display_name     TEXT NOT NULL,
    country          TEXT NOT NULL,
    zone             TEXT NOT NULL,
    signup_date      DATE NOT NULL,
    preferred_genres TEXT[] NOT NULL,
    tier             TEXT NOT NULL CHECK (tier IN ('FREE', 'STANDARD', 'PREMIUM')),
    updated_at       TIMESTAMPTZ NOT NULL
);
