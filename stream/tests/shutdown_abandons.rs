//! Shutdown interrupts a batch explicitly: while it waits for an event
//! another consumer holds in flight, or while the operator's effect runs
//! (the operator returns `Abandoned`), the runtime releases the batch's
//! claims, stores no offset and stops at once; the next run redoes the batch.

mod common;

use std::time::{Duration, Instant};

use anyhow::bail;
use cinerec_cache::{Cache, CacheConfig, Claim};
use cinerec_tests::POLL_DEADLINE;
use common::{Running, World, wait_stats};

async fn stops_promptly(running: Running) -> anyhow::Result<cinerec_stream::StatsSnapshot> {
    running.shutdown.trigger();
    let deadline = Instant::now() + POLL_DEADLINE;
    while !running.task.is_finished() {
        if Instant::now() > deadline {
            bail!("the runtime still runs after shutdown");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop().await
}

#[tokio::test]
async fn shutdown_during_a_foreign_claim_wait_abandons_the_batch() -> anyhow::Result<()> {
    let world = World::start("stream_abandon_wait").await?;
    world.event("held", "x").await?;
    world.event("free", "y").await?;
    let mut config = world.config();
    if let Some(cache) = config.cache.as_mut() {
        cache.in_flight_ttl_ms = 600_000;
    }
    config.kafka.batch_linger_ms = 1_000;

    // Another consumer holds `held` for ten minutes.
    let cache = world.cache();
    let other = Cache::new(&CacheConfig::new(cache.cache_namespace, &cache.cache_urls)?)?;
    assert!(matches!(
        other.claim("held", Duration::from_secs(600)).await?,
        Claim::Claimed { degraded: false }
    ));

    let running = world.spawn(config.clone()).await?;
    wait_stats(&running.handle, "waiting for the foreign claim", |s| {
        s.held_elsewhere >= 1
    })
    .await?;
    let effects = running.effects.clone();
    let stats = stops_promptly(running).await?;
    assert_eq!((stats.processed, stats.abandoned), (0, 1), "{stats:?}");
    assert!(effects.lock().is_empty());

    // The other consumer gives its claim back; a new run redoes the batch
    // (no offset was stored, our claims were released).
    other.release("held").await?;
    let running = world.spawn(config).await?;
    wait_stats(&running.handle, "both processed", |s| s.processed == 2).await?;
    running.stop().await?;
    Ok(())
}

#[tokio::test]
async fn shutdown_during_the_effect_releases_the_claims_and_stores_no_offset() -> anyhow::Result<()>
{
    let world = World::start("stream_abandon_effect").await?;
    world.event("w", "wait").await?;
    let running = world.spawn(world.config()).await?;
    let deadline = Instant::now() + POLL_DEADLINE;
    while running.effects.count("w") == 0 {
        if Instant::now() > deadline {
            bail!("the effect of w never started");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The claim is ours while the effect runs.
    let cache = world.cache();
    let probe = Cache::new(&CacheConfig::new(cache.cache_namespace, &cache.cache_urls)?)?;
    assert_eq!(
        probe.claim("w", Duration::from_secs(600)).await?,
        Claim::InFlight
    );
    let stats = stops_promptly(running).await?;
    assert_eq!((stats.processed, stats.abandoned), (0, 1), "{stats:?}");

    // Released: anyone may claim it at once.
    assert!(matches!(
        probe.claim("w", Duration::from_secs(1)).await?,
        Claim::Claimed { .. }
    ));
    probe.release("w").await?;
    // Not stored: the group gets the record again.
    let again = world.spawn(world.config()).await?;
    wait_stats(&again.handle, "the record redelivered", |s| s.records == 1).await?;
    stops_promptly(again).await?;
    Ok(())
}
