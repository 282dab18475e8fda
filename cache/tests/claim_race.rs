//! 16 concurrent claimers of one key, each with its own client (connection):
//! exactly one is `Claimed`, on one zone and across two zones.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cinerec_cache::{Backend, Cache, Claim};
use common::*;
use tokio::sync::Barrier;

const TASKS: usize = 16;
const TTL: Duration = Duration::from_secs(30);

/// Every task claims the same key at once; no retries.
async fn race_once(urls: &[&str]) {
    let ns = namespace("race");
    let barrier = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let cache = stack_cache(&ns, urls);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                // Connect before the race so the claims really overlap.
                let _ = cache.get("warm-up").await;
                barrier.wait().await;
                cache.claim("event-1", TTL).await.expect("claim")
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("task"));
    }
    let claimed = outcomes
        .iter()
        .filter(|c| matches!(c, Claim::Claimed { .. }))
        .count();
    assert_eq!(claimed, 1, "outcomes: {outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|c| matches!(c, Claim::Claimed { degraded: false } | Claim::InFlight))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memcached_one_winner() {
    race_once(&[&memcached_url()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_one_winner() {
    race_once(&[&redis_url()]).await;
}

/// Over two zones two claimers can each win the `add` on a different zone;
/// then both get `InFlight`, roll back, and retry. So every task retries on
/// `InFlight` and commits when it wins: exactly one task may ever win, and
/// everyone else must end up seeing `AlreadyDone`.
async fn race_two_zones(backend: Backend) {
    let (a, b) = urls(backend);
    let ns = namespace("race2");
    let barrier = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let cache: Cache = stack_cache(&ns, &[&a, &b]);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let _ = cache.get("warm-up").await;
                barrier.wait().await;
                loop {
                    match cache.claim("event-1", TTL).await.expect("claim") {
                        Claim::InFlight => tokio::time::sleep(Duration::from_millis(2)).await,
                        Claim::Claimed { degraded } => {
                            assert!(!degraded, "both zones are up");
                            cache.commit("event-1", TTL).await.expect("commit");
                            return true;
                        }
                        Claim::AlreadyDone => return false,
                    }
                }
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.expect("task"));
    }
    assert_eq!(winners, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memcached_two_zones_one_winner() {
    race_two_zones(Backend::Memcached).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_two_zones_one_winner() {
    race_two_zones(Backend::Redis).await;
}
