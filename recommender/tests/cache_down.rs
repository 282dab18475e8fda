//! With the recommender's cache unreachable, events are applied anyway
//! (degraded, counted) instead of stalling; a redelivered event is then not
//! caught by the cache but by the model (stale): the tables stay equal to
//! the batch recomputation.

mod common;

use common::{World, event};
use uuid::Uuid;

#[tokio::test]
async fn a_cache_outage_degrades_to_applying_anyway() -> anyhow::Result<()> {
    let world = World::start("rec_nocache", 1).await?;
    // A port nobody listens on as the only cache zone.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut config = world.config();
    config.cache_urls = format!("memcached://{}", closed.local_addr()?);
    drop(closed);
    let (shutdown, handle, task) = world.spawn(config).await?;

    let events = vec![
        event(Uuid::new_v4(), 1, 10, Some(5.0), 1),
        event(Uuid::new_v4(), 1, 11, Some(4.0), 1),
        event(Uuid::new_v4(), 2, 10, Some(4.5), 1),
    ];
    for ev in &events {
        world.publish(ev).await?;
    }
    let first = world.wait_idle(&handle, 3).await?;
    assert_eq!(first.applied, 3, "{first:?}");
    assert!(first.cache_degraded >= 3, "{first:?}");

    // A redelivery: the cache cannot tell, the model can.
    world.publish(&events[0]).await?;
    let second = world.wait_idle(&handle, 4).await?;
    assert_eq!(
        (second.applied, second.stale, second.duplicates),
        (3, 1, 0),
        "{second:?}"
    );
    world.assert_matches(&events).await?;
    shutdown.trigger();
    task.await??;
    Ok(())
}
