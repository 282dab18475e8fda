//! With a cache, an event id is processed once: a repeat within one batch
//! and a redelivery after it is done are counted as duplicates, never
//! redone. Without one (an operator that dedups in its own store), the
//! runtime hands every record over.

mod common;

use common::{World, wait_stats};

#[tokio::test]
async fn repeats_and_redeliveries_after_done_are_skipped() -> anyhow::Result<()> {
    let world = World::start("stream_dup").await?;
    // Published before the start, within one linger: one batch.
    world.event("a", "first").await?;
    world.event("a", "first").await?;
    world.event("b", "other").await?;
    let mut config = world.config();
    config.kafka.batch_linger_ms = 1_000;
    let running = world.spawn(config.clone()).await?;
    wait_stats(&running.handle, "2 processed, 1 duplicate", |s| {
        s.processed == 2 && s.duplicates == 1
    })
    .await?;

    // Redelivered after done: skipped by the done marker.
    world.event("a", "first").await?;
    wait_stats(&running.handle, "the redelivery skipped", |s| {
        s.duplicates == 2
    })
    .await?;
    assert_eq!(running.effects.count("a"), 1);
    assert_eq!(running.effects.count("b"), 1);
    running.stop().await?;

    // A rewound group (a new one, same namespace) redelivers everything:
    // all of it was done.
    config.kafka.group = format!("{}_rewound", world.group);
    let rewound = world.spawn(config).await?;
    let stats = wait_stats(&rewound.handle, "4 records, all duplicates", |s| {
        s.records == 4 && s.duplicates == 4
    })
    .await?;
    assert_eq!(stats.processed, 0, "{stats:?}");
    assert!(rewound.effects.lock().is_empty());
    rewound.stop().await?;
    Ok(())
}

#[tokio::test]
async fn without_a_cache_every_record_is_handed_to_the_operators_own_dedup() -> anyhow::Result<()> {
    let world = World::start("stream_dup_nocache").await?;
    world.event("a", "x").await?;
    world.event("a", "x").await?;
    let mut config = world.config();
    config.cache = None;
    config.kafka.batch_linger_ms = 1_000;
    let running = world.spawn(config).await?;
    let stats = wait_stats(&running.handle, "2 processed", |s| s.processed == 2).await?;
    assert_eq!(
        (stats.duplicates, stats.cache_degraded),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!(running.effects.count("a"), 2);
    running.stop().await?;
    Ok(())
}
