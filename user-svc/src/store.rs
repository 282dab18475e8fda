//! Users in CockroachDB/PostgreSQL: the only code that touches the `users`
//! table. Every statement is plain SQL that both databases run.

use sqlx::postgres::{PgPool, PgRow};
use sqlx::{QueryBuilder, Row};

/// Rows per INSERT when seeding: 8 columns × 1000 rows stays far below
/// PostgreSQL's 65 535 bind parameters.
pub const INSERT_BATCH: usize = 1000;

/// A user as stored: the protocol's `User` (`updated_at` in milliseconds since
/// the epoch, set by the database), so reads are answered without a mapping.
pub use crate::proto::User;
use cinerec_events::Tier;

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

/// The `users` table.
#[derive(Debug, Clone)]
pub struct UserStore {
    pool: PgPool,
}

// Dates travel as day numbers and timestamps as epoch milliseconds; the
// conversions (`date - date`, `date + int`, `extract(epoch ...)`) run on both
// databases, so no date/time crate is needed.
const COLUMNS: &str = "id, display_name, country, zone, \
     (signup_date - DATE '1970-01-01')::INT AS signup_day, preferred_genres, tier, \
     (extract(epoch FROM updated_at) * 1000)::BIGINT AS updated_at_ms";

fn from_row(row: &PgRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        display_name: row.try_get("display_name")?,
        country: row.try_get("country")?,
        zone: row.try_get("zone")?,
        signup_date: row.try_get("signup_day")?,
        preferred_genres: row.try_get("preferred_genres")?,
        tier: tier(row.try_get("tier")?)?,
        updated_at: row.try_get("updated_at_ms")?,
    })
}

/// The table's CHECK admits exactly the `Tier` symbols; anything else is a
/// decoding error, never a guess.
fn tier(symbol: String) -> Result<Tier, sqlx::Error> {
    Tier::parse(&symbol)
        .ok_or_else(|| sqlx::Error::Decode(format!("tier {symbol:?} is not a Tier symbol").into()))
}

impl UserStore {
    /// A store over `pool` (whose connections already use the service's schema).
    pub fn new(pool: PgPool) -> UserStore {
        UserStore { pool }
    }

    /// Applies the migrations under `user-svc/migrations` not applied yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations").run(&self.pool).await?;
        Ok(())
    }

    /// One user.
    pub async fn get(&self, id: i64) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// The users among `ids` that exist, in no particular order.
    pub async fn get_many(&self, ids: &[i64]) -> Result<Vec<User>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE id = ANY($1)"))
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Inserts or replaces `users` (the database sets `updated_at`), in
    /// statements of [`INSERT_BATCH`] rows. Returns the rows written.
    pub async fn upsert(&self, users: &[User]) -> Result<u64, StoreError> {
        let mut written = 0;
        for chunk in users.chunks(INSERT_BATCH) {
            let mut query = QueryBuilder::new(
                "INSERT INTO users (id, display_name, country, zone, signup_date, \
                 preferred_genres, tier, updated_at) ",
            );
            query.push_values(chunk, |mut row, u| {
                row.push_bind(u.id)
                    .push_bind(&u.display_name)
                    .push_bind(&u.country)
                    .push_bind(&u.zone)
                    .push("DATE '1970-01-01' + ")
                    .push_bind_unseparated(u.signup_date)
                    .push_unseparated("::INT")
                    .push_bind(&u.preferred_genres)
                    .push_bind(u.tier.as_str())
                    .push("now()");
            });
            // ON CONFLICT ... DO UPDATE rather than CockroachDB's UPSERT, which
            // PostgreSQL lacks.
            query.push(
                " ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, \
                 country = excluded.country, zone = excluded.zone, \
                 signup_date = excluded.signup_date, preferred_genres = excluded.preferred_genres, \
                 tier = excluded.tier, updated_at = excluded.updated_at",
            );
            written += query.build().execute(&self.pool).await?.rows_affected();
        }
        Ok(written)
    }

    /// Number of users stored.
    pub async fn count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&self.pool)
            .await?)
    }
}
