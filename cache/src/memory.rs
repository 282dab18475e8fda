//! An in-process [`Store`] with real TTLs, for unit tests of code built on the
//! cache (here and in the consumers). It can be switched off to play a zone
//! outage. Not a production store: it is one process's memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::error::{Error, ErrorKind, Result};
use crate::proto::{Op, Reply};
use crate::store::Store;

/// In-memory zone: a map of key → (value, expiry).
#[derive(Debug)]
pub struct MemoryStore {
    name: String,
    map: Mutex<HashMap<String, (Bytes, Instant)>>,
    available: AtomicBool,
}

impl MemoryStore {
    /// An empty, available store called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        MemoryStore {
            name: name.into(),
            map: Mutex::new(HashMap::new()),
            available: AtomicBool::new(true),
        }
    }

    /// Make every batch fail with `Unavailable` (`false`) or work again (`true`).
    pub fn set_available(&self, up: bool) {
        self.available.store(up, Ordering::Relaxed);
    }

    /// Number of live (unexpired) keys.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.values().filter(|(_, exp)| *exp > now).count()
    }

    /// Whether no live key is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn apply(&self, ops: &[Op<'_>]) -> Result<Vec<Reply>> {
        if !self.available.load(Ordering::Relaxed) {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("{} is switched off", self.name),
            ));
        }
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (_, exp)| *exp > now);
        let replies = ops
            .iter()
            .map(|op| match *op {
                Op::Add { key, value, ttl } => {
                    if map.contains_key(key) {
                        Reply::NotStored
                    } else {
                        map.insert(key.to_owned(), (Bytes::copy_from_slice(value), now + ttl));
                        Reply::Stored
                    }
                }
                Op::Set { key, value, ttl } => {
                    map.insert(key.to_owned(), (Bytes::copy_from_slice(value), now + ttl));
                    Reply::Stored
                }
                Op::Get { key } => Reply::Value(map.get(key).map(|(v, _)| v.clone())),
                Op::Delete { key } => Reply::Deleted(map.remove(key).is_some()),
            })
            .collect();
        Ok(replies)
    }
}

impl Store for MemoryStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn execute<'a>(&'a self, ops: &'a [Op<'a>]) -> BoxFuture<'a, Result<Vec<Reply>>> {
        let r = self.apply(ops);
        Box::pin(async move { r })
    }
}
