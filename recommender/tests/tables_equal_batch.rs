//! A shuffled history (edits, deletes, versions arriving out of order) over
//! three partitions: once idle, likes_by_user / movie_likes / co_likes equal
//! `model::batch` over the same states exactly, and every user's
//! recommendations prefix equals the top-20 of `oracle::recommend_all` (an
//! independent recomputation, not `Model::recommend`).

mod common;

use common::World;
use rand::SeedableRng;
use rand::seq::SliceRandom;

#[tokio::test]
async fn tables_equal_the_batch_recomputation() -> anyhow::Result<()> {
    let world = World::start("rec_batch", 3).await?;
    let mut events = common::history(9, 200, 25, 30);
    events.shuffle(&mut rand::rngs::StdRng::seed_from_u64(3));
    let mut config = world.config();
    config.kafka.batch_size = 5;
    config.kafka.batch_linger_ms = 1;
    let (shutdown, handle, task) = world.spawn(config).await?;
    for ev in &events {
        world.publish(ev).await?;
    }
    let stats = world.wait_idle(&handle, events.len() as u64).await?;
    assert!(stats.applied > 0 && stats.dlq == 0, "{stats:?}");
    world.assert_matches(&events).await?;
    shutdown.trigger();
    task.await??;
    Ok(())
}
