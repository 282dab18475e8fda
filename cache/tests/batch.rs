//! Batched claims and commits over two zones: one pipelined round trip per
//! zone, one answer per key, in order — including batches far larger than a
//! socket buffer. And a consumer's whole-batch claim (`claim_batch`) against
//! another consumer holding some of its keys.

mod common;

use std::time::Duration;

use cinerec_cache::{Backend, BatchWait, Claim, Settled};
use common::*;

const TTL: Duration = Duration::from_secs(60);

async fn batches(backend: Backend) {
    let (a, b) = urls(backend);
    let cache = stack_cache(&namespace("batch"), &[&a, &b]);
    let keys: Vec<String> = (0..1000).map(|i| format!("evt-{i}")).collect();

    let first = cache.claim_many(&keys, TTL).await.expect("claim_many");
    assert!(
        first
            .iter()
            .all(|c| *c == Claim::Claimed { degraded: false })
    );

    assert!(
        !cache
            .commit_many(&keys[..500], TTL)
            .await
            .expect("commit_many")
            .degraded
    );
    let again = cache.claim_many(&keys, TTL).await.expect("claim_many");
    assert!(again[..500].iter().all(|c| *c == Claim::AlreadyDone));
    assert!(again[500..].iter().all(|c| *c == Claim::InFlight));

    assert!(
        !cache
            .release_many(&keys[500..])
            .await
            .expect("release_many")
            .degraded
    );
    let third = cache
        .claim_many(&keys[500..], TTL)
        .await
        .expect("claim_many");
    assert!(
        third
            .iter()
            .all(|c| *c == Claim::Claimed { degraded: false })
    );

    // ~1 MB of requests in one batch.
    let big: Vec<String> = (0..20_000).map(|i| format!("big-{i:06}")).collect();
    let got = cache.claim_many(&big, TTL).await.expect("big claim_many");
    assert_eq!(got.len(), big.len());
    assert!(got.iter().all(|c| *c == Claim::Claimed { degraded: false }));
    let s = cache.stats();
    assert_eq!(
        (s.claimed, s.already_done, s.in_flight, s.claimed_degraded),
        (21_500, 500, 500, 0)
    );
}

#[tokio::test]
async fn memcached_batches() {
    batches(Backend::Memcached).await;
}

#[tokio::test]
async fn redis_batches() {
    batches(Backend::Redis).await;
}

/// Two consumers over the same two zones: the other holds two keys of our
/// batch, finishes one and crashes on the other (its marker outlives our
/// wait). Our batch claims the free keys, skips the finished one and takes
/// the orphan over, degraded.
async fn whole_batch(backend: Backend) {
    let (a, b) = urls(backend);
    let ns = namespace("whole");
    let us = stack_cache(&ns, &[&a, &b]);
    let other = stack_cache(&ns, &[&a, &b]);
    let keys = ["free-1", "finished", "orphan", "free-2"];
    other
        .claim_many(&keys[1..3], TTL)
        .await
        .expect("the other consumer claims");
    let finish = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        other.commit("finished", TTL).await.expect("commit");
    });
    let settled = us
        .claim_batch(
            &keys,
            TTL,
            BatchWait::up_to(Duration::from_secs(2)),
            std::future::pending(),
            &(),
        )
        .await
        .expect("distinct keys")
        .expect("not cancelled");
    finish.await.expect("finisher");
    assert_eq!(
        settled,
        vec![
            Settled::Claimed { degraded: false },
            Settled::AlreadyDone,
            Settled::Claimed { degraded: true },
            Settled::Claimed { degraded: false },
        ]
    );
}

#[tokio::test]
async fn memcached_whole_batch_waits_for_held_keys() {
    whole_batch(Backend::Memcached).await;
}

#[tokio::test]
async fn redis_whole_batch_waits_for_held_keys() {
    whole_batch(Backend::Redis).await;
}
