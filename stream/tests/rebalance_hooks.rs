//! The operator's rebalance hooks see the assignment: a lone member is
//! assigned every partition; a second member of the group takes some of them
//! over (revoked from the first, assigned to the second: disjoint, together
//! all); when it leaves, they come back. Events published meanwhile are all
//! processed by one member or the other.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::bail;
use cinerec_tests::POLL_DEADLINE;
use common::{Assigned, PARTITIONS, World, wait_stats};

async fn until(what: &str, cond: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + POLL_DEADLINE;
    while !cond() {
        if Instant::now() > deadline {
            bail!("{what}: not within {POLL_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn all() -> BTreeSet<i32> {
    (0..PARTITIONS).collect()
}

fn split(a: &Assigned, b: &Assigned) -> bool {
    let (a, b) = (a.now(), b.now());
    !a.is_empty() && !b.is_empty() && a.is_disjoint(&b) && &a | &b == all()
}

#[tokio::test]
async fn hooks_follow_partitions_across_a_join_and_a_leave() -> anyhow::Result<()> {
    let world = World::start("stream_rebalance").await?;
    let first = world.spawn(world.config()).await?;
    until("the lone member holds every partition", || {
        first.assigned.now() == all()
    })
    .await?;

    let second = world.spawn(world.config()).await?;
    until("the two members split the partitions", || {
        split(&first.assigned, &second.assigned)
    })
    .await?;
    for i in 0..30 {
        world.event(&format!("e{i}"), "x").await?;
    }
    until("every event processed by one member or the other", || {
        first.handle.stats().processed + second.handle.stats().processed >= 30
    })
    .await?;

    second.stop().await?;
    until("the partitions come back to the first member", || {
        first.assigned.now() == all()
    })
    .await?;
    world.event("after", "x").await?;
    wait_stats(&first.handle, "the event after the leave", |s| {
        s.processed >= 1 && first.effects.count("after") == 1
    })
    .await?;
    first.stop().await?;
    Ok(())
}
