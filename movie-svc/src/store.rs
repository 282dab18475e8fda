//! Movies in CockroachDB/PostgreSQL: the `movies` table's columns and how a
//! [`Movie`] maps onto them. The statements themselves (get, multi-get,
//! batched upsert, count) are service-kit's [`RecordStore`], shared with
//! user-svc; every one is plain SQL that both databases run.

use cinerec_service_kit::db::{Record, RecordStore};
use sqlx::Row;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgRow, Postgres};
use sqlx::query_builder::Separated;

pub use cinerec_service_kit::db::{INSERT_BATCH, StoreError};

/// A movie as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Movie {
    /// Primary key.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Release year.
    pub year: i32,
    /// 1–3 genres.
    pub genres: Vec<String>,
    /// Runtime in minutes.
    pub runtime_minutes: i32,
    /// Expected share of all reviews.
    pub popularity: f64,
    /// Last write, milliseconds since the Unix epoch (set by the database;
    /// ignored on upsert).
    pub updated_at_ms: i64,
}

/// The `movies` table.
pub type MovieStore = RecordStore<Movie>;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

impl Record for Movie {
    const TABLE: &'static str = "movies";
    // `updated_at` as epoch milliseconds (`extract(epoch ...)` runs on both
    // databases).
    const SELECT: &'static str = "id, title, year, genres, runtime_minutes, popularity, \
         (extract(epoch FROM updated_at) * 1000)::BIGINT AS updated_at_ms";
    const INSERT: &'static [&'static str] = &[
        "id",
        "title",
        "year",
        "genres",
        "runtime_minutes",
        "popularity",
        "updated_at",
    ];

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn id(&self) -> i64 {
        self.id
    }

    fn from_row(row: &PgRow) -> Result<Movie, sqlx::Error> {
        Ok(Movie {
            id: row.try_get("id")?,
            title: row.try_get("title")?,
            year: row.try_get("year")?,
            genres: row.try_get("genres")?,
            runtime_minutes: row.try_get("runtime_minutes")?,
            popularity: row.try_get("popularity")?,
            updated_at_ms: row.try_get("updated_at_ms")?,
        })
    }

    fn push_values<'args>(&'args self, mut row: Separated<'_, 'args, Postgres, &'static str>) {
        row.push_bind(self.id)
            .push_bind(&self.title)
            .push_bind(self.year)
            .push_bind(&self.genres)
            .push_bind(self.runtime_minutes)
            .push_bind(self.popularity)
            .push("now()");
    }
}
