//! With the idempotency cache unreachable the runtime hands events to the
//! operator anyway (degraded, counted) instead of stalling: at-least-once
//! holds; a redelivery is no longer caught and is processed again, which
//! the operator's idempotent effect absorbs.

mod common;

use common::{World, wait_stats};

#[tokio::test]
async fn a_cache_outage_degrades_to_processing_anyway() -> anyhow::Result<()> {
    let world = World::start("stream_nocache").await?;
    world.event("a", "x").await?;

    // A port nobody listens on as the only cache zone.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut config = world.config();
    if let Some(cache) = config.cache.as_mut() {
        cache.cache_urls = format!("redis://{}", closed.local_addr()?);
    }
    drop(closed);
    let running = world.spawn(config).await?;
    wait_stats(&running.handle, "processed though degraded", |s| {
        s.processed == 1 && s.cache_degraded >= 1
    })
    .await?;

    // Redelivered while the cache is down: processed again, never dropped.
    world.event("a", "x").await?;
    let stats = wait_stats(&running.handle, "both processed", |s| s.processed == 2).await?;
    assert_eq!((stats.duplicates, stats.dlq), (0, 0), "{stats:?}");
    assert!(stats.cache_degraded >= 2, "{stats:?}");
    assert_eq!(running.effects.count("a"), 2);
    running.stop().await?;
    Ok(())
}
