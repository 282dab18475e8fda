//! With the idempotency cache unreachable the enricher processes anyway
//! (degraded, counted) instead of stalling: at-least-once holds, the
//! duplicate is no longer caught by the cache and is produced twice — the
//! effect downstream stays idempotent (same event_id, same latest version).

mod common;

use common::World;

#[tokio::test]
async fn a_cache_outage_degrades_to_processing_anyway() -> anyhow::Result<()> {
    let world = World::start("enr_nocache").await?;
    let ev = world.create(3, 4, 4.5).await?;
    world.publish(&ev, None).await?;

    // A port nobody listens on as the only cache zone.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut config = world.config();
    config.cache_urls = format!("redis://{}", closed.local_addr()?);
    drop(closed);
    let (shutdown, handle, task) = world.spawn_enricher(config).await?;

    world
        .wait_stats(&handle, "processed though degraded", |s| {
            s.processed == 1 && s.cache_degraded >= 1
        })
        .await?;
    // Redelivered while the cache is down: processed again, never dropped.
    world.publish(&ev, None).await?;
    let records = world
        .read_until(&world.sink_topic, |r| r.len() >= 2)
        .await?;
    for r in &records {
        let e = r.enriched()?;
        assert_eq!(
            (e.event_id, e.version, e.rating),
            (ev.event_id, ev.version, Some(4.5))
        );
    }
    let stats = world
        .wait_stats(&handle, "both counted", |s| s.processed == 2)
        .await?;
    assert_eq!((stats.duplicates, stats.dlq), (0, 0), "{stats:?}");
    assert!(stats.cache_degraded >= 2, "{stats:?}");
    shutdown.trigger();
    task.await??;
    world.cleanup().await
}
