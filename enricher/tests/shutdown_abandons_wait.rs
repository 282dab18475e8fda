//! Shutdown while the batch waits for an event another consumer holds in
//! flight: the enricher abandons the batch explicitly (its own claims
//! released, no offset stored) and stops at once instead of waiting out the
//! foreign in-flight TTL; the next run redoes the batch.

mod common;

use std::time::{Duration, Instant};

use anyhow::bail;
use cinerec_cache::{Cache, CacheConfig, Claim};
use cinerec_tests::POLL_DEADLINE;
use common::World;

#[tokio::test]
async fn shutdown_abandons_a_batch_waiting_for_foreign_claims() -> anyhow::Result<()> {
    let world = World::start("enr_abandon").await?;
    let held = world.create(15, 25, 4.0).await?;
    let free = world.create(16, 26, 3.0).await?;
    world.publish(&held, None).await?;
    world.publish(&free, None).await?;

    // Another consumer holds `held` for ten minutes.
    let mut config = world.config();
    config.in_flight_ttl_ms = 600_000;
    config.batch_linger_ms = 500;
    let other = Cache::new(&CacheConfig::new(
        config.cache_namespace.clone(),
        &config.cache_urls,
    )?)?;
    let key = held.event_id.to_string();
    assert!(matches!(
        other.claim(&key, Duration::from_secs(600)).await?,
        Claim::Claimed { degraded: false }
    ));

    let (shutdown, handle, task) = world.spawn_enricher(config.clone()).await?;
    world
        .wait_stats(&handle, "waiting for the foreign claim", |s| {
            s.held_elsewhere >= 1
        })
        .await?;
    shutdown.trigger();
    let deadline = Instant::now() + POLL_DEADLINE;
    while !task.is_finished() {
        if Instant::now() > deadline {
            bail!("the enricher still waits for the foreign claim after shutdown");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.await??;
    let stats = handle.stats();
    assert_eq!(stats.processed, 0, "{stats:?}");

    // The other consumer gives its claim back; a new run redoes the
    // abandoned batch (offsets were not stored, our claims were released).
    other.release(&key).await?;
    let (shutdown, handle, task) = world.spawn_enricher(config).await?;
    world
        .wait_stats(&handle, "both events processed", |s| s.processed == 2)
        .await?;
    shutdown.trigger();
    task.await??;
    world.cleanup().await
}
