//! A like, then the review's deletion: the like's row, `N` and `C` rows go,
//! and the user's recommendations no longer come from the model.

mod common;

use common::{World, event};
use uuid::Uuid;

#[tokio::test]
async fn a_delete_drops_the_like() -> anyhow::Result<()> {
    let world = World::start("rec_delete", 1).await?;
    let (shutdown, handle, task) = world.spawn(world.config()).await?;
    // Users 1 and 2 both like movies 10 and 11; user 2 also likes 12.
    let r = Uuid::new_v4();
    let mut events = vec![
        event(r, 1, 10, Some(5.0), 1),
        event(Uuid::new_v4(), 1, 11, Some(4.0), 1),
        event(Uuid::new_v4(), 2, 10, Some(4.5), 1),
        event(Uuid::new_v4(), 2, 11, Some(4.0), 1),
        event(Uuid::new_v4(), 2, 12, Some(5.0), 1),
    ];
    for ev in &events {
        world.publish(ev).await?;
    }
    world.wait_idle(&handle, events.len() as u64).await?;
    let before = world.tables().await?;
    assert_eq!(before.n.get(&10), Some(&2));
    assert_eq!(before.c.get(&(10, 11)), Some(&2));
    world.assert_matches(&events).await?;

    // User 1 deletes the review of movie 10.
    let delete = event(r, 1, 10, None, 2);
    world.publish(&delete).await?;
    events.push(delete);
    world.wait_idle(&handle, events.len() as u64).await?;
    let after = world.tables().await?;
    assert!(!after.likes[&1].contains(&10), "{after:?}");
    assert_eq!(after.n.get(&10), Some(&1));
    assert_eq!(after.c.get(&(10, 11)), Some(&1));
    world.assert_matches(&events).await?;
    shutdown.trigger();
    task.await??;
    Ok(())
}
