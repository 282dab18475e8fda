//! Movies in CockroachDB/PostgreSQL: the only code that touches the `movies`
//! table. Every statement is plain SQL that both databases run.

use sqlx::postgres::{PgPool, PgRow};
use sqlx::{QueryBuilder, Row};

/// Rows per INSERT when seeding: 7 columns × 1000 rows stays far below
/// PostgreSQL's 65 535 bind parameters and keeps each statement quick.
pub const INSERT_BATCH: usize = 1000;

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
    /// Last write, milliseconds since the Unix epoch (set by the database).
    pub updated_at_ms: i64,
}

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or is unreachable.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Running migrations failed.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The `movies` table.
#[derive(Debug, Clone)]
pub struct MovieStore {
    pool: PgPool,
}

// The columns every read selects, with `updated_at` as epoch milliseconds
// (`extract(epoch ...)` runs on both databases).
const COLUMNS: &str = "id, title, year, genres, runtime_minutes, popularity, \
     (extract(epoch FROM updated_at) * 1000)::BIGINT AS updated_at_ms";

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

impl MovieStore {
    /// A store over `pool` (whose connections already use the service's schema).
    pub fn new(pool: PgPool) -> MovieStore {
        MovieStore { pool }
    }

    /// Applies the migrations under `movie-svc/migrations` that are not applied
    /// yet; a no-op when all are.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations").run(&self.pool).await?;
        Ok(())
    }

    /// One movie.
    pub async fn get(&self, id: i64) -> Result<Option<Movie>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM movies WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// The movies among `ids` that exist, in no particular order.
    pub async fn get_many(&self, ids: &[i64]) -> Result<Vec<Movie>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM movies WHERE id = ANY($1)"))
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Inserts or replaces `movies` (their `updated_at_ms` is ignored: the
    /// database sets it), in statements of [`INSERT_BATCH`] rows. Returns the
    /// number of rows written.
    pub async fn upsert(&self, movies: &[Movie]) -> Result<u64, StoreError> {
        let mut written = 0;
        for chunk in movies.chunks(INSERT_BATCH) {
            let mut query = QueryBuilder::new(
                "INSERT INTO movies (id, title, year, genres, runtime_minutes, popularity, updated_at) ",
            );
            query.push_values(chunk, |mut row, m| {
                row.push_bind(m.id)
                    .push_bind(&m.title)
                    .push_bind(m.year)
                    .push_bind(&m.genres)
                    .push_bind(m.runtime_minutes)
                    .push_bind(m.popularity)
                    .push("now()");
            });
            // ON CONFLICT ... DO UPDATE instead of CockroachDB's UPSERT, which
            // PostgreSQL lacks.
            query.push(
                " ON CONFLICT (id) DO UPDATE SET title = excluded.title, year = excluded.year, \
                 genres = excluded.genres, runtime_minutes = excluded.runtime_minutes, \
                 popularity = excluded.popularity, updated_at = excluded.updated_at",
            );
            written += query.build().execute(&self.pool).await?.rows_affected();
        }
        Ok(written)
    }

    /// Number of movies stored.
    pub async fn count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM movies")
            .fetch_one(&self.pool)
            .await?)
    }
}
