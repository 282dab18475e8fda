//! Three relay replicas on one keyspace split the change-log shards: no
//! shard is owned twice, none is left out, none holds more than its fair
//! share, and a stream of writes reaches Kafka with every change exactly
//! once (the normal case: nobody dies, nobody hands over mid-stream).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Harness, counter, fast_relay, poll_until, receive_for, receive_until};
use review_svc::model::{Content, Rating};
use review_svc::relay::lease::fair_share;
use review_svc::store::CHANGE_SHARDS;
use uuid::Uuid;

const REPLICAS: usize = 3;
const WRITERS: usize = 4;
const WRITES_PER_WRITER: usize = 60;
const REVIEWS_PER_WRITER: usize = 10;

#[tokio::test]
async fn three_replicas_publish_each_change_exactly_once() -> anyhow::Result<()> {
    let h = Harness::new("rv_share").await?;
    let consumer = h.consumer()?;
    let replicas: Vec<_> = (0..REPLICAS)
        .map(|_| h.start_relay_replica(fast_relay()))
        .collect::<anyhow::Result<_>>()?;
    let healths: Vec<_> = replicas.iter().map(|r| r.health.clone()).collect();
    let fair = fair_share(CHANGE_SHARDS, REPLICAS);

    // Sampled all along: two replicas never both hold one shard.
    let overlaps = Arc::new(AtomicBool::new(false));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (healths, overlaps, sampling) = (healths.clone(), overlaps.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                let mut seen = HashSet::new();
                for health in &healths {
                    for shard in health.owned() {
                        if !seen.insert(shard) {
                            overlaps.store(true, Ordering::Relaxed);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let split = poll_until("the three replicas split all shards", || {
        let healths = healths.clone();
        async move {
            let owned: Vec<Vec<i32>> = healths.iter().map(|h| h.owned()).collect();
            let all: HashSet<i32> = owned.iter().flatten().copied().collect();
            let balanced = owned.iter().all(|o| !o.is_empty() && o.len() <= fair);
            Ok((all.len() == CHANGE_SHARDS as usize && balanced).then_some(owned))
        }
    })
    .await?;
    let rows = h.store.leases().await?;
    let members: HashSet<Uuid> = replicas.iter().map(|r| r.member).collect();
    assert_eq!(rows.len(), CHANGE_SHARDS as usize);
    for row in &rows {
        let owner = row
            .owner
            .ok_or_else(|| anyhow::anyhow!("shard {} free", row.shard))?;
        assert!(
            members.contains(&owner),
            "shard {} owned by a stranger",
            row.shard
        );
    }

    // A stream of creates and edits from concurrent writers.
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let store = h.store.clone();
        writers.spawn(async move {
            let user = 200 + w as i64;
            let (mut ids, mut acked) = (Vec::new(), Vec::new());
            for i in 0..WRITES_PER_WRITER {
                let content = Content {
                    rating: Rating::parse(0.5 * (1 + i % 10) as f64)?,
                    text: format!("take {i}"),
                };
                let outcome = if i < REVIEWS_PER_WRITER {
                    let o = store.create(user, 1 + i as i64, content, None).await?;
                    ids.push(o.review.review_id);
                    o
                } else {
                    let id = ids[rand::random_range(0..ids.len())];
                    store.update(id, Some(content), None, |_| true).await?
                };
                acked.push((outcome.review.review_id, outcome.review.version));
                tokio::time::sleep(Duration::from_millis(rand::random_range(2..15))).await;
            }
            anyhow::Ok(acked)
        });
    }
    let mut want = HashSet::new();
    while let Some(joined) = writers.join_next().await {
        want.extend(joined??);
    }
    assert_eq!(want.len(), WRITERS * WRITES_PER_WRITER);

    let received = receive_until(&consumer, |r| {
        let got: HashSet<(Uuid, i64)> = r
            .iter()
            .map(|x| (x.event.review_id, x.event.version))
            .collect();
        want.is_subset(&got)
    })
    .await?;
    // Anything sent twice would be re-sent from a checkpoint, i.e. within a
    // settle window and a sweep: read on for that long (plus margin).
    let settle = Duration::from_millis(fast_relay().relay_settle_ms + 1_500);
    let late = receive_for(&consumer, settle).await?;
    let mut per_event: HashMap<Uuid, usize> = HashMap::new();
    for event in received.iter().map(|r| &r.event).chain(&late) {
        *per_event.entry(event.event_id).or_default() += 1;
    }
    let twice: Vec<_> = per_event.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "events published more than once: {twice:?}"
    );
    assert_eq!(
        per_event.len(),
        want.len(),
        "one event per acknowledged write"
    );
    assert_eq!(
        counter("review_svc_relay_duplicates_republished_total"),
        0.0
    );
    assert_eq!(counter("review_svc_relay_lease_losses_total"), 0.0);

    sampling.store(false, Ordering::Relaxed);
    sampler.await?;
    assert!(!overlaps.load(Ordering::Relaxed), "a shard was owned twice");
    eprintln!("shards split {split:?}; {} changes, each once", want.len());

    for replica in &replicas {
        replica.shutdown.trigger();
    }
    for replica in replicas {
        replica.task.await??;
    }
    // A graceful stop releases every lease at once.
    let rows = h.store.leases().await?;
    assert!(rows.iter().all(|r| r.owner.is_none()), "{rows:?}");
    h.cleanup().await
}
