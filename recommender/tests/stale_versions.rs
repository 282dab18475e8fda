//! What is the recommender's own in dedup (the runtime's claims are tested
//! in `stream/tests/`): redelivered events are skipped through the
//! recommender's own cache namespace, and an event carrying an older version
//! than the model holds (a new event_id, so the cache lets it through) is
//! stale: no effect on the model or the tables.

mod common;

use common::{World, event};
use uuid::Uuid;

#[tokio::test]
async fn redeliveries_are_duplicates_and_older_versions_are_stale() -> anyhow::Result<()> {
    let world = World::start("rec_dups", 2).await?;
    let (shutdown, handle, task) = world.spawn(world.config()).await?;
    let r1 = Uuid::new_v4();
    let events = vec![
        event(r1, 1, 10, Some(3.0), 1),
        event(r1, 1, 10, Some(5.0), 2),
        event(Uuid::new_v4(), 1, 11, Some(5.0), 1),
        event(Uuid::new_v4(), 2, 10, Some(4.0), 1),
        event(Uuid::new_v4(), 2, 11, Some(4.5), 1),
    ];
    for ev in &events {
        world.publish(ev).await?;
    }
    let first = world.wait_idle(&handle, events.len() as u64).await?;
    assert_eq!(first.applied, events.len() as u64, "{first:?}");
    let tables = world.tables().await?;

    // The same events again: every one is already done in the cache.
    for ev in &events {
        world.publish(ev).await?;
    }
    let again = world.wait_idle(&handle, 2 * events.len() as u64).await?;
    assert_eq!(again.duplicates, events.len() as u64, "{again:?}");
    assert_eq!(again.applied, first.applied);
    // The cache counted them too, under the recommender's own namespace.
    let metrics = cinerec_service_kit::telemetry::metrics_handle().render();
    let namespace = world.config().cache.cache_namespace;
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("cinerec_cache_claims_total")
                && l.contains(&format!("namespace=\"{namespace}\""))
                && l.contains("outcome=\"already_done\"")
        })
        .unwrap_or_default()
        .to_owned();
    assert!(
        line.ends_with(&format!(" {}", events.len())),
        "cache claims: {line:?}"
    );
    assert!(
        metrics.contains(
            "cinerec_stream_events_total{operator=\"recommender\",outcome=\"duplicate\"}"
        ),
        "{metrics}"
    );

    // An older version of r1 under a fresh event id: stale, no effect.
    let stale = event(r1, 1, 10, Some(1.0), 1);
    world.publish(&stale).await?;
    let last = world
        .wait_idle(&handle, 2 * events.len() as u64 + 1)
        .await?;
    assert_eq!(last.stale, 1, "{last:?}");
    assert_eq!(world.tables().await?, tables);
    world.assert_matches(&events).await?;
    shutdown.trigger();
    task.await??;
    Ok(())
}
