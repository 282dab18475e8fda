//! A bounded, short-TTL read-through cache for the metadata services, so the
//! enricher's per-event lookups stay off CockroachDB.
//!
//! Entries are keyed by id and hold `Some(value)` or `None` ("does not
//! exist"): caching misses too keeps a stream of reviews for an unknown id from
//! reaching the database each time. Writes through the service call
//! [`ReadThrough::invalidate`], so a writer reads its own write from the same
//! instance; other instances see it within the TTL, the staleness bound the
//! TTL documents. Multi-gets look up every id, then load all misses in one
//! database round trip.

use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

/// A multi-get's answer: values found, in request order without duplicates,
/// and the keys that do not exist.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch<K, V> {
    /// Values found.
    pub found: Vec<Arc<V>>,
    /// Keys asked for that do not exist.
    pub missing: Vec<K>,
}

/// A read-through cache of `Option<Arc<V>>` by key.
#[derive(Clone)]
pub struct ReadThrough<K, V> {
    name: &'static str,
    cache: Cache<K, Option<Arc<V>>>,
}

impl<K, V> std::fmt::Debug for ReadThrough<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadThrough")
            .field("name", &self.name)
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl<K, V> ReadThrough<K, V>
where
    K: Hash + Eq + Copy + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// A cache named `name` in metrics (`cinerec_read_through_total{cache,
    /// outcome}`), holding at most `capacity` entries for at most `ttl` each.
    pub fn new(name: &'static str, capacity: u64, ttl: Duration) -> Self {
        ReadThrough {
            name,
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The values of `keys` (duplicates allowed), in the order asked, `None`
    /// for keys that do not exist. Misses are loaded with one call to
    /// `load(misses)`, which returns the values it found (keys it doesn't
    /// return are cached as absent).
    pub async fn get_many<E, F, Fut>(&self, keys: &[K], load: F) -> Result<Vec<Option<Arc<V>>>, E>
    where
        F: FnOnce(Vec<K>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<(K, V)>, E>>,
    {
        let mut out: Vec<Option<Option<Arc<V>>>> = Vec::with_capacity(keys.len());
        let mut misses: Vec<K> = Vec::new();
        for key in keys {
            let hit = self.cache.get(key).await;
            if hit.is_none() && !misses.contains(key) {
                misses.push(*key);
            }
            out.push(hit);
        }
        let (hits, missed) = (keys.len() - misses.len(), misses.len());
        metrics::counter!("cinerec_read_through_total", "cache" => self.name, "outcome" => "hit")
            .increment(hits as u64);
        metrics::counter!("cinerec_read_through_total", "cache" => self.name, "outcome" => "miss")
            .increment(missed as u64);
        if misses.is_empty() {
            return Ok(out.into_iter().map(Option::flatten).collect());
        }
        let mut loaded: Vec<(K, Option<Arc<V>>)> = misses.iter().map(|k| (*k, None)).collect();
        for (key, value) in load(misses).await? {
            if let Some(slot) = loaded.iter_mut().find(|(k, _)| *k == key) {
                slot.1 = Some(Arc::new(value));
            }
        }
        for (key, value) in &loaded {
            self.cache.insert(*key, value.clone()).await;
        }
        Ok(keys
            .iter()
            .zip(out)
            .map(|(key, hit)| match hit {
                Some(cached) => cached,
                None => loaded
                    .iter()
                    .find(|(k, _)| k == key)
                    .and_then(|(_, v)| v.clone()),
            })
            .collect())
    }

    /// The distinct `keys` split into values found (in first-asked order) and
    /// keys that do not exist: the shape of every multi-get answer.
    pub async fn get_batch<E, F, Fut>(&self, keys: &[K], load: F) -> Result<Batch<K, V>, E>
    where
        F: FnOnce(Vec<K>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<(K, V)>, E>>,
    {
        let mut unique: Vec<K> = Vec::with_capacity(keys.len());
        for key in keys {
            if !unique.contains(key) {
                unique.push(*key);
            }
        }
        let values = self.get_many(&unique, load).await?;
        let mut batch = Batch {
            found: Vec::with_capacity(unique.len()),
            missing: Vec::new(),
        };
        for (key, value) in unique.into_iter().zip(values) {
            match value {
                Some(v) => batch.found.push(v),
                None => batch.missing.push(key),
            }
        }
        Ok(batch)
    }

    /// Forgets `key`, so the next read loads it afresh.
    pub async fn invalidate(&self, key: &K) {
        self.cache.invalidate(key).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn loads_misses_once_caches_absence_and_invalidates() {
        let cache: ReadThrough<i64, String> =
            ReadThrough::new("test", 100, Duration::from_secs(60));
        let loads = AtomicUsize::new(0);
        let load = |ids: Vec<i64>| {
            loads.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok::<_, ()>(
                    ids.into_iter()
                        .filter(|id| id % 2 == 0)
                        .map(|id| (id, format!("v{id}")))
                        .collect(),
                )
            }
        };
        let got = cache.get_many(&[2, 3, 2, 4], load).await.unwrap();
        let got: Vec<Option<String>> = got.into_iter().map(|v| v.map(|s| (*s).clone())).collect();
        assert_eq!(
            got,
            vec![
                Some("v2".into()),
                None,
                Some("v2".into()),
                Some("v4".into())
            ]
        );
        assert_eq!(loads.load(Ordering::SeqCst), 1, "one load for all misses");

        // All cached now, the absent 3 included.
        let again = cache.get_many(&[3, 4], load).await.unwrap();
        assert!(again[0].is_none() && again[1].is_some());
        assert_eq!(loads.load(Ordering::SeqCst), 1);

        let batch = cache.get_batch(&[4, 3, 4, 2], load).await.unwrap();
        let found: Vec<&str> = batch.found.iter().map(|v| v.as_str()).collect();
        assert_eq!((found, batch.missing), (vec!["v4", "v2"], vec![3]));

        cache.invalidate(&4).await;
        cache.get_many(&[4], load).await.unwrap();
        assert_eq!(
            loads.load(Ordering::SeqCst),
            2,
            "an invalidated key is loaded again"
        );
    }

    #[tokio::test]
    async fn a_failed_load_caches_nothing() {
        let cache: ReadThrough<i64, String> =
            ReadThrough::new("test", 100, Duration::from_secs(60));
        let err = cache
            .get_many(&[1], |_| async { Err::<Vec<(i64, String)>, _>("db down") })
            .await;
        assert_eq!(err.unwrap_err(), "db down");
        let ok = cache
            .get_many(&[1], |ids| async move {
                Ok::<_, ()>(vec![(ids[0], "back".to_owned())])
            })
            .await
            .unwrap();
        assert_eq!(ok[0].as_deref().map(String::as_str), Some("back"));
    }
}
