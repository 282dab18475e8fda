//! The replicated cache: claim/commit/release and plain get/set/delete over
//! every zone, with EVCache's write-all, read-local-then-fallback behaviour.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::config::CacheConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::key::{full_key, validate_namespace};
use crate::proto::{Op, Reply};
use crate::stats::{ClaimTally, Counters, Stats};
use crate::store::{NetStore, Store};

/// Value of a claim key while its event is being processed.
pub const IN_FLIGHT_MARKER: &[u8] = b"in-flight";
/// Value of a claim key once its event's effect is done.
pub const DONE_MARKER: &[u8] = b"done";

/// Result of [`Cache::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This caller holds the key: do the effect, then [`Cache::commit`].
    ///
    /// `degraded` is `true` when at least one zone could not record the claim
    /// (down or timed out) — up to every zone. The caller still processes the
    /// event (a cache outage must not stall the pipeline), at the price that a
    /// concurrent duplicate might be processed too; effects are idempotent.
    Claimed {
        /// Whether the claim was recorded on fewer zones than configured.
        degraded: bool,
    },
    /// The key was committed within its done TTL: skip the event.
    AlreadyDone,
    /// Another caller holds the key and has not committed. Do not skip the
    /// event (its holder may crash): retry the claim after a delay; the marker
    /// expires after the holder's in-flight TTL at the latest.
    InFlight,
}

/// Result of a write to all zones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Whether at least one zone missed the write.
    pub degraded: bool,
}

/// What one zone said about one claim key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ZoneClaim {
    /// Our `add` stored the in-flight marker.
    Won,
    /// Someone else's in-flight marker is there (or it vanished between our
    /// `add` and `get`, i.e. it just expired: treated the same, retry soon).
    Held,
    /// A done marker is there.
    Done,
    /// The zone did not answer usably for this key.
    Failed,
}

/// Combines the zones' answers for one key into one decision.
///
/// Invariant (the replica claim rule): `Done` anywhere wins, then `Held`
/// anywhere, and `Claimed` only when every *reachable* zone said `Won`.
#[derive(Debug, Default, Clone, Copy)]
struct Decision {
    done: bool,
    held: bool,
    failed: bool,
}

impl Decision {
    fn add(&mut self, z: ZoneClaim) {
        match z {
            ZoneClaim::Won => {}
            ZoneClaim::Held => self.held = true,
            ZoneClaim::Done => self.done = true,
            ZoneClaim::Failed => self.failed = true,
        }
    }

    fn outcome(self) -> Claim {
        if self.done {
            Claim::AlreadyDone
        } else if self.held {
            Claim::InFlight
        } else {
            Claim::Claimed {
                degraded: self.failed,
            }
        }
    }
}

/// An idempotency cache for one namespace, replicated over one or more zones.
///
/// Cheap to clone (all clones share connections and counters). See the crate
/// documentation for the claim protocol, its replica rule and crash semantics.
#[derive(Debug, Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    namespace: String,
    /// Preference order: index 0 is the local zone, read first.
    zones: Vec<Arc<dyn Store>>,
    max_value: usize,
    counters: Counters,
}

impl Cache {
    /// A cache over the zones of `config`. Connections open lazily on first
    /// use, so a zone that is down at start-up does not stop the service.
    pub fn new(config: &CacheConfig) -> Result<Cache> {
        config.validate()?;
        let zones = config
            .zones
            .iter()
            .map(|z| Arc::new(NetStore::new(z.clone(), config)) as Arc<dyn Store>)
            .collect();
        Cache::from_stores(&config.namespace, zones, config.max_value_size)
    }

    /// A cache over arbitrary [`Store`]s (e.g. [`MemoryStore`](crate::MemoryStore)
    /// in unit tests), first store = local zone.
    pub fn from_stores(
        namespace: &str,
        zones: Vec<Arc<dyn Store>>,
        max_value: usize,
    ) -> Result<Cache> {
        validate_namespace(namespace)?;
        if zones.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "a cache needs at least one zone",
            ));
        }
        Ok(Cache {
            inner: Arc::new(Inner {
                namespace: namespace.to_owned(),
                zones,
                max_value,
                counters: Counters::default(),
            }),
        })
    }

    /// The key prefix of this cache.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// Names of the zones, local first.
    pub fn zone_names(&self) -> Vec<String> {
        self.inner
            .zones
            .iter()
            .map(|z| z.name().to_owned())
            .collect()
    }

    /// Counters since this cache was built (shared by its clones).
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    fn full_keys<K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<String>> {
        keys.iter()
            .map(|k| full_key(&self.inner.namespace, k.as_ref()))
            .collect()
    }

    /// Run one batch on every zone concurrently; results in zone order. Each
    /// zone bounds its own time, so this returns within the op timeout.
    async fn on_all_zones(&self, ops: &[Op<'_>]) -> Vec<Result<Vec<Reply>>> {
        let results = match self.inner.zones.as_slice() {
            [only] => vec![only.execute(ops).await],
            zones => futures::future::join_all(zones.iter().map(|z| z.execute(ops))).await,
        };
        for (zone, r) in self.inner.zones.iter().zip(&results) {
            if let Err(e) = r {
                self.inner
                    .counters
                    .zone_failed(&self.inner.namespace, zone.name(), e);
            }
        }
        results
    }

    /// Claim `key` for processing; the in-flight marker lives `in_flight_ttl`
    /// (rounded up to whole seconds on memcached).
    ///
    /// Errors only for an invalid key: zone outages degrade instead.
    pub async fn claim(&self, key: &str, in_flight_ttl: Duration) -> Result<Claim> {
        let mut v = self.claim_many(&[key], in_flight_ttl).await?;
        v.pop()
            .ok_or_else(|| Error::new(ErrorKind::Protocol, "claim batch returned no result"))
    }

    /// Claim many keys in one pipelined round trip per zone; one [`Claim`]
    /// per key, in order. The same key twice in one batch: the first wins,
    /// the second sees `InFlight`.
    ///
    /// Errors only for an invalid key (then nothing is sent).
    pub async fn claim_many<K: AsRef<str>>(
        &self,
        keys: &[K],
        in_flight_ttl: Duration,
    ) -> Result<Vec<Claim>> {
        let full = self.full_keys(keys)?;
        if full.is_empty() {
            return Ok(Vec::new());
        }
        // add + get per key: the add decides, the get tells a loser whether
        // the holder is still in flight or done — one round trip either way.
        let ops: Vec<Op<'_>> = full
            .iter()
            .flat_map(|k| {
                [
                    Op::Add {
                        key: k,
                        value: IN_FLIGHT_MARKER,
                        ttl: in_flight_ttl,
                    },
                    Op::Get { key: k },
                ]
            })
            .collect();
        let results = self.on_all_zones(&ops).await;

        let zones = &self.inner.zones;
        let mut out = Vec::with_capacity(full.len());
        let mut undo: Vec<Vec<usize>> = vec![Vec::new(); zones.len()];
        let mut tally = ClaimTally::default();
        // Reused per key: what each zone said about it.
        let mut per_zone = Vec::with_capacity(zones.len());
        for (i, key) in full.iter().enumerate() {
            per_zone.clear();
            per_zone.extend(
                results
                    .iter()
                    .zip(zones)
                    .map(|(r, zone)| self.classify(r, i, zone.name(), key)),
            );
            let outcome = per_zone
                .iter()
                .fold(Decision::default(), |mut d, &z| {
                    d.add(z);
                    d
                })
                .outcome();
            match outcome {
                Claim::Claimed { degraded: false } => tally.claimed += 1,
                Claim::Claimed { degraded: true } => tally.degraded += 1,
                Claim::AlreadyDone => tally.already_done += 1,
                Claim::InFlight => tally.in_flight += 1,
            }
            if !matches!(outcome, Claim::Claimed { .. }) {
                // We lost overall but planted markers on some zones; left
                // there they would read as `InFlight` for a whole TTL.
                for (z, _) in per_zone
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c == ZoneClaim::Won)
                {
                    undo[z].push(i);
                    tally.rollbacks += 1;
                }
            }
            out.push(outcome);
        }
        if tally.rollbacks > 0 {
            self.undo(&full, &undo).await;
        }
        self.inner.counters.claims(&self.inner.namespace, tally);
        Ok(out)
    }

    fn classify(&self, r: &Result<Vec<Reply>>, i: usize, zone: &str, key: &str) -> ZoneClaim {
        let Ok(replies) = r else {
            return ZoneClaim::Failed;
        };
        match (replies.get(2 * i), replies.get(2 * i + 1)) {
            (Some(Reply::Stored), _) => ZoneClaim::Won,
            (Some(Reply::NotStored), Some(Reply::Value(None))) => ZoneClaim::Held,
            (Some(Reply::NotStored), Some(Reply::Value(Some(v)))) => {
                if v.as_ref() == DONE_MARKER {
                    ZoneClaim::Done
                } else if v.as_ref() == IN_FLIGHT_MARKER {
                    ZoneClaim::Held
                } else {
                    self.inner
                        .counters
                        .unexpected_value(&self.inner.namespace, zone, key);
                    ZoneClaim::Failed
                }
            }
            _ => ZoneClaim::Failed,
        }
    }

    /// Best-effort delete of our own fresh markers (`undo[zone]` = key indexes).
    async fn undo(&self, full: &[String], undo: &[Vec<usize>]) {
        let batches = self
            .inner
            .zones
            .iter()
            .zip(undo)
            .filter(|(_, l)| !l.is_empty())
            .map(|(zone, list)| async move {
                let ops: Vec<Op<'_>> = list.iter().map(|&i| Op::Delete { key: &full[i] }).collect();
                if let Err(e) = zone.execute(&ops).await {
                    // The markers expire with their in-flight TTL anyway.
                    self.inner
                        .counters
                        .zone_failed(&self.inner.namespace, zone.name(), &e);
                }
            });
        futures::future::join_all(batches).await;
    }

    /// Mark `key` done on every zone for `done_ttl` (rounded up to whole
    /// seconds on memcached). Call it after the effect.
    ///
    /// Errors only for an invalid key. A zone that misses the commit makes it
    /// `degraded`: that zone may let a later duplicate through, which the
    /// idempotent effect absorbs.
    pub async fn commit(&self, key: &str, done_ttl: Duration) -> Result<Written> {
        self.commit_many(&[key], done_ttl).await
    }

    /// [`commit`](Self::commit) for many keys, one pipelined round trip per zone.
    pub async fn commit_many<K: AsRef<str>>(
        &self,
        keys: &[K],
        done_ttl: Duration,
    ) -> Result<Written> {
        let full = self.full_keys(keys)?;
        let ops: Vec<Op<'_>> = full
            .iter()
            .map(|k| Op::Set {
                key: k,
                value: DONE_MARKER,
                ttl: done_ttl,
            })
            .collect();
        let (_, degraded) = self.write_all(&ops).await;
        if degraded {
            self.inner
                .counters
                .degraded_write(&self.inner.namespace, "commit");
        }
        Ok(Written { degraded })
    }

    /// Give a claim back (the effect failed and should be retried soon, by
    /// anyone) by deleting the key on every zone.
    ///
    /// Unconditional: if our in-flight marker had already expired and someone
    /// else claimed the key, their marker is deleted too, so release only
    /// within the in-flight TTL. Errors only for an invalid key.
    pub async fn release(&self, key: &str) -> Result<Written> {
        self.release_many(&[key]).await
    }

    /// [`release`](Self::release) for many keys.
    pub async fn release_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<Written> {
        let full = self.full_keys(keys)?;
        let ops: Vec<Op<'_>> = full.iter().map(|k| Op::Delete { key: k }).collect();
        let (_, degraded) = self.write_all(&ops).await;
        if degraded {
            self.inner
                .counters
                .degraded_write(&self.inner.namespace, "release");
        }
        Ok(Written { degraded })
    }

    /// Run a write batch on all zones: (zones that took every op, whether any missed).
    async fn write_all(&self, ops: &[Op<'_>]) -> (usize, bool) {
        if ops.is_empty() {
            return (self.inner.zones.len(), false);
        }
        let results = self.on_all_zones(ops).await;
        let ok = results
            .iter()
            .filter(|r| match r {
                Ok(replies) => {
                    replies.len() == ops.len()
                        && replies
                            .iter()
                            .all(|x| matches!(x, Reply::Stored | Reply::Deleted(_)))
                }
                Err(_) => false,
            })
            .count();
        (ok, ok < results.len())
    }

    /// Read `key`: the local zone first, then the others in order on a miss
    /// or an error. `Ok(None)` if every zone that answered missed; an error
    /// (`Unavailable`, with the last failure as source) only if none answered.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let full = full_key(&self.inner.namespace, key)?;
        let ops = [Op::Get { key: &full }];
        let mut last_err = None;
        let mut answered = false;
        for zone in &self.inner.zones {
            match zone.execute(&ops).await {
                Ok(r) => match r.into_iter().next() {
                    Some(Reply::Value(Some(v))) => return Ok(Some(v)),
                    Some(Reply::Value(None)) => answered = true,
                    other => {
                        last_err = Some(Error::new(
                            ErrorKind::Server,
                            format!("{}: unexpected reply to get: {other:?}", zone.name()),
                        ));
                    }
                },
                Err(e) => {
                    self.inner
                        .counters
                        .zone_failed(&self.inner.namespace, zone.name(), &e);
                    last_err = Some(e);
                }
            }
        }
        match (answered, last_err) {
            (true, _) | (false, None) => Ok(None),
            (false, Some(e)) => Err(Error::with_source(
                ErrorKind::Unavailable,
                format!("no cache zone answered get {key:?}"),
                e,
            )),
        }
    }

    /// Store `value` under `key` on every zone for `ttl`. `Ok` if at least one
    /// zone stored it (`degraded` if not all did); `Unavailable` if none did.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<Written> {
        if value.len() > self.inner.max_value {
            return Err(Error::new(
                ErrorKind::ValueTooLarge,
                format!(
                    "value of {} bytes, limit {}",
                    value.len(),
                    self.inner.max_value
                ),
            ));
        }
        let full = full_key(&self.inner.namespace, key)?;
        self.plain_write(
            "set",
            &[Op::Set {
                key: &full,
                value,
                ttl,
            }],
        )
        .await
    }

    /// Delete `key` on every zone; same success rule as [`set`](Self::set).
    pub async fn delete(&self, key: &str) -> Result<Written> {
        let full = full_key(&self.inner.namespace, key)?;
        self.plain_write("delete", &[Op::Delete { key: &full }])
            .await
    }

    async fn plain_write(&self, op: &'static str, ops: &[Op<'_>]) -> Result<Written> {
        let (ok, degraded) = self.write_all(ops).await;
        if ok == 0 {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "no cache zone accepted {op} (zones: {})",
                    self.zone_names().join(", ")
                ),
            ));
        }
        if degraded {
            self.inner
                .counters
                .degraded_write(&self.inner.namespace, op);
        }
        Ok(Written { degraded })
    }
}

#[cfg(test)]
mod tests;
