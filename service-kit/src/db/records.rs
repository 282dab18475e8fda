//! A table of records keyed by a `bigint id`, written once for every
//! metadata service: a service says how its record maps to columns
//! ([`Record`]) and gets its store ([`RecordStore`]): migrations, one get,
//! a multi-get, upserts in batches and a count, all plain SQL that
//! CockroachDB and PostgreSQL both run.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgPool, PgRow, Postgres};
use sqlx::query_builder::Separated;
use sqlx::{Executor, QueryBuilder};

/// Rows per INSERT when upserting: at 1000 rows a record may have up to 65
/// bound columns and stay below PostgreSQL's 65 535 bind parameters, and
/// each statement stays quick.
pub const INSERT_BATCH: usize = 1000;

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or is unreachable.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Running migrations failed.
    #[error("migrations: {0}")]
    Migrate(#[from] MigrateError),
}

/// How one kind of record lives in its table (primary key `id bigint`).
pub trait Record: Sized + Send + Sync + Unpin + 'static {
    /// The table (in the pool's schema).
    const TABLE: &'static str;
    /// The select list of every read: plain columns, or expressions named
    /// as [`Record::from_row`] reads them (`... AS updated_at_ms`).
    const SELECT: &'static str;
    /// The columns an upsert writes, `id` first, in the order
    /// [`Record::push_values`] pushes them; every one but `id` is replaced on
    /// conflict.
    const INSERT: &'static [&'static str];

    /// The service's migrations (`sqlx::migrate!` in the service's crate,
    /// whose path is relative to that crate).
    fn migrator() -> &'static Migrator;
    /// The record's primary key.
    fn id(&self) -> i64;
    /// A record from a row of [`Record::SELECT`].
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error>;
    /// Pushes the values of [`Record::INSERT`], in order, as one row.
    fn push_values<'args>(&'args self, row: Separated<'_, 'args, Postgres, &'static str>);
}

/// The statements of one record type, built once per store.
struct Statements {
    get: String,
    get_many: String,
    insert: String,
    on_conflict: String,
    count: String,
}

impl Statements {
    fn of<R: Record>() -> Statements {
        let (table, select) = (R::TABLE, R::SELECT);
        let replaced: Vec<String> = R::INSERT
            .iter()
            .filter(|c| **c != "id")
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        Statements {
            get: format!("SELECT {select} FROM {table} WHERE id = $1"),
            get_many: format!("SELECT {select} FROM {table} WHERE id = ANY($1)"),
            insert: format!("INSERT INTO {table} ({}) ", R::INSERT.join(", ")),
            // ON CONFLICT ... DO UPDATE rather than CockroachDB's UPSERT,
            // which PostgreSQL lacks.
            on_conflict: format!(" ON CONFLICT (id) DO UPDATE SET {}", replaced.join(", ")),
            count: format!("SELECT count(*) FROM {table}"),
        }
    }
}

/// The table of `R`: the only code that touches it.
pub struct RecordStore<R> {
    pool: PgPool,
    sql: Arc<Statements>,
    record: PhantomData<fn() -> R>,
}

impl<R> Clone for RecordStore<R> {
    fn clone(&self) -> Self {
        RecordStore {
            pool: self.pool.clone(),
            sql: Arc::clone(&self.sql),
            record: PhantomData,
        }
    }
}

impl<R: Record> fmt::Debug for RecordStore<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordStore")
            .field("table", &R::TABLE)
            .finish_non_exhaustive()
    }
}

impl<R: Record> RecordStore<R> {
    /// A store over `pool` (whose connections already use the service's schema).
    pub fn new(pool: PgPool) -> Self {
        RecordStore {
            pool,
            sql: Arc::new(Statements::of::<R>()),
            record: PhantomData,
        }
    }

    /// The pool (readiness checks).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the service's migrations not applied yet; a no-op when all are.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        R::migrator().run(&self.pool).await?;
        Ok(())
    }

    /// One record.
    pub async fn get(&self, id: i64) -> Result<Option<R>, StoreError> {
        let row = sqlx::query(&self.sql.get)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(R::from_row).transpose()?)
    }

    /// The records among `ids` that exist, in no particular order.
    pub async fn get_many(&self, ids: &[i64]) -> Result<Vec<R>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&self.sql.get_many)
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(R::from_row).collect::<Result<_, _>>()?)
    }

    /// Inserts or replaces `records`, in statements of [`INSERT_BATCH`]
    /// rows. Returns the number of rows written.
    pub async fn upsert(&self, records: &[R]) -> Result<u64, StoreError> {
        let mut written = 0;
        for chunk in records.chunks(INSERT_BATCH) {
            let mut query = QueryBuilder::new(&self.sql.insert);
            query.push_values(chunk, |row, record| record.push_values(row));
            query.push(&self.sql.on_conflict);
            written += self.pool.execute(query.build()).await?.rows_affected();
        }
        Ok(written)
    }

    /// Number of records stored.
    pub async fn count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(&self.sql.count)
            .fetch_one(&self.pool)
            .await?)
    }
}
