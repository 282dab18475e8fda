//! The behaviour movie-svc and user-svc share: records by positive `i64` id
//! behind a read-through cache, multi-gets of at most [`MAX_BATCH`] ids that
//! report the missing ones, validated upserts that invalidate the cache, and
//! the mapping of their failures onto a protocol's declared errors.
//!
//! A service supplies a [`Table`] (its store: load by ids, write one record,
//! validate one record) and its generated Avro types; everything else is here
//! once. With feature `postgres`, a [`RecordStore`](crate::db::RecordStore)
//! of a [`MetadataRecord`] is that table, and their binaries' `main` is
//! [`metadata_main`]: a service then writes only its record's columns and
//! limits, its seed and its wire mapping.

#[cfg(feature = "postgres")]
mod binary;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use avro_rpc::codegen::HandlerError;

#[cfg(feature = "postgres")]
pub use self::binary::{MetadataBinary, MetadataSpec, metadata_main};
use crate::read_through::{Batch, ReadThrough};

/// Largest multi-get answered in one call; larger requests are
/// `InvalidArgument` (the protocols document this limit).
pub const MAX_BATCH: usize = 1000;

/// A service's store of records by id.
pub trait Table: Clone + Send + Sync + 'static {
    /// A stored record.
    type Record: Send + Sync + 'static;
    /// Why the store failed.
    type Error: std::error::Error + Send + Sync + 'static;
    /// What a record is called in errors (`"movie"`).
    const KIND: &'static str;

    /// A record's id.
    fn id(record: &Self::Record) -> i64;
    /// The records among `ids` that exist, in any order.
    fn load(
        &self,
        ids: &[i64],
    ) -> impl Future<Output = Result<Vec<Self::Record>, Self::Error>> + Send;
    /// Creates or replaces one record.
    fn write(&self, record: &Self::Record) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Why `record` may not be stored, if it may not.
    fn invalid(record: &Self::Record) -> Option<String>;
}

/// A record served by a metadata service from a
/// [`RecordStore`](crate::db::RecordStore): what it is called and which
/// records may be stored.
#[cfg(feature = "postgres")]
pub trait MetadataRecord: crate::db::Record {
    /// What a record is called in errors (`"movie"`).
    const KIND: &'static str;
    /// Why this record may not be stored, if it may not.
    fn invalid(&self) -> Option<String>;
}

#[cfg(feature = "postgres")]
impl<R: MetadataRecord> Table for crate::db::RecordStore<R> {
    type Record = R;
    type Error = crate::db::StoreError;
    const KIND: &'static str = R::KIND;

    fn id(record: &R) -> i64 {
        record.id()
    }

    async fn load(&self, ids: &[i64]) -> Result<Vec<R>, Self::Error> {
        self.get_many(ids).await
    }

    async fn write(&self, record: &R) -> Result<(), Self::Error> {
        self.upsert(std::slice::from_ref(record)).await.map(drop)
    }

    fn invalid(record: &R) -> Option<String> {
        record.invalid()
    }
}

/// Why a call failed, as the metadata protocols declare it.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// `NotFound { id }`.
    #[error("{0} {1} not found")]
    NotFound(&'static str, i64),
    /// `InvalidArgument { reason }`.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The store failed: a system error on the wire; every metadata message is
    /// idempotent, so the client's retry layer may resend.
    #[error("store: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Records of one [`Table`] behind a read-through cache.
#[derive(Debug, Clone)]
pub struct MetadataService<T: Table> {
    table: T,
    cache: ReadThrough<i64, T::Record>,
}

impl<T: Table> MetadataService<T> {
    /// `table` behind a cache named `cache_name` of `capacity` entries kept `ttl`.
    pub fn new(table: T, cache_name: &'static str, capacity: u64, ttl: Duration) -> Self {
        MetadataService {
            table,
            cache: ReadThrough::new(cache_name, capacity, ttl),
        }
    }

    /// The table (readiness checks, seeding).
    pub fn table(&self) -> &T {
        &self.table
    }

    /// One record.
    pub async fn get(&self, id: i64) -> Result<Arc<T::Record>, MetadataError> {
        self.get_many(&[id])
            .await?
            .found
            .pop()
            .ok_or(MetadataError::NotFound(T::KIND, id))
    }

    /// Up to [`MAX_BATCH`] records: found ones in request order without
    /// duplicates, unknown ids in `missing`.
    pub async fn get_many(&self, ids: &[i64]) -> Result<Batch<i64, T::Record>, MetadataError> {
        if ids.len() > MAX_BATCH {
            return Err(MetadataError::InvalidArgument(format!(
                "{} ids asked for, at most {MAX_BATCH} per call",
                ids.len()
            )));
        }
        ids.iter().try_for_each(|&id| check_id(T::KIND, id))?;
        let table = &self.table;
        self.cache
            .get_batch(ids, |ids| async move {
                let found = table
                    .load(&ids)
                    .await
                    .map_err(|e| MetadataError::Store(Box::new(e)))?;
                Ok(found.into_iter().map(|r| (T::id(&r), r)).collect())
            })
            .await
    }

    /// Creates or replaces a record; returns it as stored.
    pub async fn upsert(&self, record: T::Record) -> Result<Arc<T::Record>, MetadataError> {
        let id = T::id(&record);
        check_id(T::KIND, id)?;
        if let Some(reason) = T::invalid(&record) {
            return Err(MetadataError::InvalidArgument(reason));
        }
        self.table
            .write(&record)
            .await
            .map_err(|e| MetadataError::Store(Box::new(e)))?;
        self.cache.invalidate(&id).await;
        self.get(id).await
    }
}

fn check_id(kind: &str, id: i64) -> Result<(), MetadataError> {
    if id <= 0 {
        return Err(MetadataError::InvalidArgument(format!(
            "{kind} id {id} is not positive"
        )));
    }
    Ok(())
}

/// Maps a failure onto a message's declared errors: `not_found` builds the
/// message's `NotFound` (None when it declares none: then it is a system
/// error), `invalid` its `InvalidArgument`; store failures are system errors.
pub fn declared<E>(
    error: MetadataError,
    not_found: impl FnOnce(i64) -> Option<E>,
    invalid: impl FnOnce(String) -> E,
) -> HandlerError<E> {
    match error {
        MetadataError::NotFound(kind, id) => match not_found(id) {
            Some(declared) => HandlerError::Declared(declared),
            None => HandlerError::system(format!("{kind} {id} not found")),
        },
        MetadataError::InvalidArgument(reason) => HandlerError::Declared(invalid(reason)),
        MetadataError::Store(e) => {
            tracing::warn!(error = %e, "metadata store failed");
            HandlerError::system(e)
        }
    }
}
