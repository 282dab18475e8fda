//! Two enrichers in one consumer group share the partitions
//! (cooperative-sticky); one stops gracefully in the middle of the stream and
//! the other takes its partitions over from the offsets it committed: every
//! event is enriched, none goes to the DLQ, and the stop is clean.

mod common;

use std::collections::HashSet;

use common::World;

#[tokio::test]
async fn a_member_leaving_hands_its_partitions_over() -> anyhow::Result<()> {
    let world = World::start("enr_rebal").await?;
    let mut config = world.config();
    config.kafka.batch_size = 8;
    let (stop_a, handle_a, task_a) = world.spawn_enricher(config.clone()).await?;
    let (stop_b, handle_b, task_b) = world.spawn_enricher(config).await?;

    let mut expected = HashSet::new();
    for i in 0..30 {
        let ev = world.create(1 + i % 10, 1 + i % 15, 4.0).await?;
        world.publish(&ev, None).await?;
        expected.insert(ev.event_id);
    }
    world
        .wait_stats(&handle_a, "the group worked", |s| {
            s.processed + handle_b.stats().processed >= 10
        })
        .await?;
    // One member leaves: it finishes its batch, stores and commits, then
    // the group hands its partitions to the other.
    stop_a.trigger();
    task_a.await??;
    for i in 0..30 {
        let ev = world.create(11 + i % 10, 1 + i % 15, 2.0).await?;
        world.publish(&ev, None).await?;
        expected.insert(ev.event_id);
    }
    let records = world
        .read_until(&world.sink_topic, |r| {
            let seen: HashSet<_> = r
                .iter()
                .filter_map(|r| r.enriched().ok())
                .map(|e| e.event_id)
                .collect();
            expected.is_subset(&seen)
        })
        .await?;
    assert!(records.len() >= expected.len());
    let (a, b) = (handle_a.stats(), handle_b.stats());
    assert_eq!(a.dlq + b.dlq, 0, "{a:?} {b:?}");
    stop_b.trigger();
    task_b.await??;
    world.cleanup().await
}
