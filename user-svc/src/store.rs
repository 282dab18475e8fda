//! Users in CockroachDB/PostgreSQL: the `users` table's columns and how a
//! [`User`] maps onto them. The statements themselves (get, multi-get,
//! batched upsert, count) are service-kit's [`RecordStore`], shared with
//! movie-svc; every one is plain SQL that both databases run.

use cinerec_events::Tier;
use cinerec_service_kit::db::{Record, RecordStore};
use sqlx::Row;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgRow, Postgres};
use sqlx::query_builder::Separated;

/// A user as stored: the protocol's `User` (`updated_at` in milliseconds since
/// the epoch, set by the database and ignored on upsert), so reads are
/// answered without a mapping.
pub use crate::proto::User;
pub use cinerec_service_kit::db::{INSERT_BATCH, StoreError};

/// The `users` table.
pub type UserStore = RecordStore<User>;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

impl Record for User {
    const TABLE: &'static str = "users";
    // Dates travel as day numbers and timestamps as epoch milliseconds; the
    // conversions (`date - date`, `date + int`, `extract(epoch ...)`) run on
    // both databases, so no date/time crate is needed.
    const SELECT: &'static str = "id, display_name, country, zone, \
         (signup_date - DATE '1970-01-01')::INT AS signup_day, preferred_genres, tier, \
         (extract(epoch FROM updated_at) * 1000)::BIGINT AS updated_at_ms";
    const INSERT: &'static [&'static str] = &[
        "id",
        "display_name",
        "country",
        "zone",
        "signup_date",
        "preferred_genres",
        "tier",
        "updated_at",
    ];

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn id(&self) -> i64 {
        self.id
    }

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

    fn push_values<'args>(&'args self, mut row: Separated<'_, 'args, Postgres, &'static str>) {
        row.push_bind(self.id)
            .push_bind(&self.display_name)
            .push_bind(&self.country)
            .push_bind(&self.zone)
            .push("DATE '1970-01-01' + ")
            .push_bind_unseparated(self.signup_date)
            .push_unseparated("::INT")
            .push_bind(&self.preferred_genres)
            .push_bind(self.tier.as_str())
            .push("now()");
    }
}

/// The table's CHECK admits exactly the `Tier` symbols; anything else is a
/// decoding error, never a guess.
fn tier(symbol: String) -> Result<Tier, sqlx::Error> {
    Tier::parse(&symbol)
        .ok_or_else(|| sqlx::Error::Decode(format!("tier {symbol:?} is not a Tier symbol").into()))
}
