//! The stack's Redis and memcached servers, both zones of each, through the
//! project's own client (`cinerec-cache`, the one the consumers use): set and
//! get round trips, and a TTL that really expires on the server while a key
//! with a longer TTL stays. (`cache/tests` covers the client in depth.)

use std::time::{Duration, Instant};

use cinerec_cache::{Cache, CacheConfig};
use cinerec_tests::{Stack, unique_name};

const SHORT: Duration = Duration::from_secs(1);
const LONG: Duration = Duration::from_secs(120);

async fn set_get_expire(url: &str) {
    let ns = unique_name("smoke");
    let config = CacheConfig::new(&ns, url).expect("cache config");
    let cache = Cache::new(&config).expect("cache client");
    let written = cache
        .set("short", b"expires", SHORT)
        .await
        .unwrap_or_else(|e| panic!("set on {url} (is `dev/stack up` running?): {e}"));
    assert!(!written.degraded, "{url} did not take the write");
    cache.set("long", b"stays", LONG).await.expect("set long");
    let set_at = Instant::now();
    assert_eq!(
        cache.get("short").await.expect("get").as_deref(),
        Some(&b"expires"[..]),
        "{url}: read back"
    );
    // Gone by the server's clock: poll, bounded.
    loop {
        match cache.get("short").await.expect("get") {
            None => break,
            Some(_) => {
                assert!(
                    set_at.elapsed() < SHORT + Duration::from_secs(10),
                    "{url}: a {SHORT:?} TTL had not expired after {:?}",
                    set_at.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(
        cache.get("long").await.expect("get").as_deref(),
        Some(&b"stays"[..]),
        "{url}: only the short TTL expired"
    );
    cache.delete("long").await.expect("delete");
    assert_eq!(cache.get("long").await.expect("get"), None);
}

#[tokio::test]
async fn redis_zones_set_get_and_expire() {
    let stack = Stack::from_env();
    for url in &stack.redis_urls {
        set_get_expire(url).await;
    }
}

#[tokio::test]
async fn memcached_zones_set_get_and_expire() {
    let stack = Stack::from_env();
    for url in &stack.memcached_urls {
        set_get_expire(url).await;
    }
}
