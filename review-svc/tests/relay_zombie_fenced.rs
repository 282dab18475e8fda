//! A relay whose shard lease was taken (a zombie: it still runs, but
//! another member holds the lease now) cannot move that shard's checkpoint,
//! and stops publishing the shard.

mod common;

use std::time::Duration;

use common::{Harness, counter, fast_relay, poll_until};
use review_svc::store::CHANGE_SHARDS;
use uuid::Uuid;

#[tokio::test]
async fn a_zombie_cannot_advance_the_checkpoint() -> anyhow::Result<()> {
    let h = Harness::new("rv_zombie").await?;
    let zombie = h.start_relay_replica(fast_relay())?;
    let health = zombie.health.clone();
    poll_until("the lone replica owns every shard", || {
        let owned = health.owned().len();
        async move { Ok((owned == CHANGE_SHARDS as usize).then_some(())) }
    })
    .await?;
    let shard = 3;

    // Another member takes shard 3's lease from under the running relay, as
    // a survivor would after deciding the owner was dead, and keeps it.
    let thief = Uuid::new_v4();
    let taken = poll_until("the thief wins the lease", || {
        let store = h.store.clone();
        async move {
            let rows = store.leases().await?;
            let Some(row) = rows.into_iter().find(|r| r.shard == shard) else {
                anyhow::bail!("no lease row for shard {shard}");
            };
            Ok(store.take_lease(&row, thief).await?.then_some(row))
        }
    })
    .await?;
    assert_eq!(taken.owner, Some(zombie.member));
    let (old, new) = (taken.generation, taken.generation + 1);
    let position = h
        .store
        .claim_checkpoint(shard, new)
        .await?
        .ok_or_else(|| anyhow::anyhow!("claim refused"))?;
    let keep = {
        let store = h.store.clone();
        tokio::spawn(async move {
            loop {
                store.renew_lease(shard, thief, new, 0).await?;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            #[allow(unreachable_code)]
            anyhow::Ok(())
        })
    };

    // The zombie's own save under its old generation is refused.
    let far = position + 3_600_000_000;
    assert!(!h.store.save_checkpoint(shard, old, far).await?);
    assert_eq!(h.store.checkpoint(shard).await?, Some(position));

    // The running relay notices at its next renewal and stops the shard.
    poll_until("the zombie stops publishing the shard", || {
        let owned = health.owned();
        async move { Ok((!owned.contains(&shard)).then_some(())) }
    })
    .await?;
    assert!(counter("review_svc_relay_lease_losses_total") >= 1.0);
    // Its other shards go on; this one's checkpoint stays the thief's
    // while the zombie keeps sweeping its others.
    let before = h.store.checkpoint(0).await?;
    poll_until("the zombie's other shards move on", || {
        let store = h.store.clone();
        async move { Ok((store.checkpoint(0).await? > before).then_some(())) }
    })
    .await?;
    assert_eq!(h.store.checkpoint(shard).await?, Some(position));
    assert!(!health.owned().contains(&shard));

    keep.abort();
    zombie.shutdown.trigger();
    zombie.task.await??;
    h.cleanup().await
}
