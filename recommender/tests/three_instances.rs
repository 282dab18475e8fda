//! Three recommender instances in one consumer group share six partitions;
//! mid-stream a fourth joins and one of the first three is killed: its
//! consumer task is aborted (no drain, no final commit, leases left behind)
//! while its follower and flush tasks run on as a zombie that still believes
//! it owns its partitions. Partitions move twice. Once idle, the durable model (the changelog) equals the batch
//! recomputation and every user's recommendations row equals
//! `Model::recommend` — each row written by its owner, a zombie's late
//! writes fenced out.

mod common;

use common::World;
use rand::SeedableRng;
use rand::seq::SliceRandom;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_with_a_join_and_a_kill_end_equal_to_batch() -> anyhow::Result<()> {
    let world = World::start("rec_three", 6).await?;
    let mut events = common::history(21, 300, 40, 30);
    events.shuffle(&mut rand::rngs::StdRng::seed_from_u64(5));
    let (first, rest) = events.split_at(events.len() / 3);
    let (second, third) = rest.split_at(rest.len() / 2);
    let config = |name: &str| {
        let mut c = world.config();
        c.kafka.batch_size = 10;
        c.kafka.batch_linger_ms = 1;
        c.instance = Some(name.to_owned());
        c
    };
    let mut instances = Vec::new();
    for name in ["a", "b", "c"] {
        instances.push(world.spawn(config(name)).await?);
    }
    for ev in first {
        world.publish(ev).await?;
    }
    let handled = |instances: &[(_, recommender::Handle, _)]| -> u64 {
        instances.iter().map(|(_, h, _)| h.stats().handled()).sum()
    };
    common::wait_until("the first third handled", || {
        handled(&instances) >= first.len() as u64
    })
    .await?;

    // A fourth joins (partitions move to it), then one of the first dies.
    instances.push(world.spawn(config("d")).await?);
    for ev in second {
        world.publish(ev).await?;
    }
    let (_, _, killed) = instances.remove(1);
    killed.abort();
    let _ = killed.await;
    for ev in third {
        world.publish(ev).await?;
    }

    world.wait_matches(&events).await?;
    let working = instances
        .iter()
        .filter(|(_, h, _)| h.stats().batches > 0)
        .count();
    assert!(
        working >= 2,
        "the work was shared: {working} instances had batches"
    );
    for (shutdown, _, task) in instances {
        shutdown.trigger();
        task.await??;
    }
    Ok(())
}
