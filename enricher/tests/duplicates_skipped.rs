//! The same event delivered twice (in one batch, later again, and to a second
//! consumer group sharing the cache namespace) has one effect: one
//! EnrichedReview, the repeats counted as duplicates.
//!
//! "Exactly one" is checked without timing: a later event of the same review
//! and user is published after the duplicates; its record lands in the same
//! output partition after any record the duplicates could have produced.

mod common;

use common::World;
use uuid::Uuid;

fn count(records: &[common::Received], event_id: Uuid) -> usize {
    records
        .iter()
        .filter(|r| {
            r.enriched()
                .map(|e| e.event_id == event_id)
                .unwrap_or(false)
        })
        .count()
}

fn has(records: &[common::Received], event_id: Uuid) -> bool {
    count(records, event_id) > 0
}

#[tokio::test]
async fn a_redelivered_event_has_one_effect() -> anyhow::Result<()> {
    let world = World::start("enr_dup").await?;
    let ev1 = world.create(5, 6, 4.0).await?;
    world.publish(&ev1, None).await?;
    world.publish(&ev1, None).await?;

    let (shutdown, handle, task) = world.spawn_enricher(world.config()).await?;
    world
        .wait_stats(&handle, "one processed, one duplicate", |s| {
            s.processed == 1 && s.duplicates == 1
        })
        .await?;
    // A redelivery after the effect: the cache says done.
    world.publish(&ev1, None).await?;
    world
        .wait_stats(&handle, "second duplicate", |s| s.duplicates == 2)
        .await?;
    let ev2 = world.edit(ev1.review_id, 2.5).await?;
    world.publish(&ev2, None).await?;
    let records = world
        .read_until(&world.sink_topic, |r| has(r, ev2.event_id))
        .await?;
    assert_eq!(count(&records, ev1.event_id), 1, "one effect for ev1");
    let stats = handle.stats();
    assert_eq!(
        (stats.processed, stats.duplicates, stats.dlq),
        (2, 2, 0),
        "{stats:?}"
    );
    shutdown.trigger();
    task.await??;

    // Another consumer group over the same cache namespace re-reads the whole
    // topic: every event is a duplicate, nothing is produced again.
    let mut config = world.config();
    config.group = format!("{}_replay", config.group);
    let (shutdown, handle, task) = world.spawn_enricher(config).await?;
    world
        .wait_stats(&handle, "the replay is all duplicates", |s| {
            s.duplicates == 4
        })
        .await?;
    let ev3 = world.edit(ev1.review_id, 3.5).await?;
    world.publish(&ev3, None).await?;
    let records = world
        .read_until(&world.sink_topic, |r| has(r, ev3.event_id))
        .await?;
    assert_eq!(count(&records, ev1.event_id), 1);
    assert_eq!(count(&records, ev2.event_id), 1);
    assert_eq!(count(&records, ev3.event_id), 1);
    let stats = handle.stats();
    assert_eq!((stats.processed, stats.duplicates), (1, 4), "{stats:?}");
    shutdown.trigger();
    task.await??;
    world.cleanup().await
}
