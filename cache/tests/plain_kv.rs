//! Plain get/set/delete with TTLs: binary-safe values (including protocol
//! delimiters), large values, and reads that fall back to the second zone.

mod common;

use std::time::Duration;

use cinerec_cache::Backend;
use common::*;

const TTL: Duration = Duration::from_secs(60);

async fn kv(backend: Backend) {
    let (a, b) = urls(backend);
    let ns = namespace("kv");
    let cache = stack_cache(&ns, &[&a, &b]);

    let tricky = b"line\r\nEND\r\nVALUE x 0 1\r\n$-1\r\n\0\xff".to_vec();
    assert!(
        !cache
            .set("tricky", &tricky, TTL)
            .await
            .expect("set")
            .degraded
    );
    assert_eq!(
        cache.get("tricky").await.expect("get").as_deref(),
        Some(&tricky[..])
    );

    let large: Vec<u8> = (0..512 * 1024).map(|i| (i % 251) as u8).collect();
    cache.set("large", &large, TTL).await.expect("set large");
    assert_eq!(
        cache.get("large").await.expect("get large").as_deref(),
        Some(&large[..])
    );

    assert!(!cache.delete("tricky").await.expect("delete").degraded);
    assert_eq!(cache.get("tricky").await.expect("get"), None);
    assert_eq!(cache.get("never-set").await.expect("get"), None);

    // A value only zone b has (zone a missed the write, or was restarted):
    // the read misses locally and falls back.
    let zone_b = stack_cache(&ns, &[&b]);
    zone_b
        .set("only-b", b"from b", TTL)
        .await
        .expect("set on b");
    assert_eq!(
        cache.get("only-b").await.expect("get").as_deref(),
        Some(&b"from b"[..])
    );
}

#[tokio::test]
async fn memcached_plain_kv() {
    kv(Backend::Memcached).await;
}

#[tokio::test]
async fn redis_plain_kv() {
    kv(Backend::Redis).await;
}
