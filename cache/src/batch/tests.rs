//! Unit tests of the batch claim over in-memory zones; `cache/tests/batch.rs`
//! runs it against the real servers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::{MemoryStore, Store};

const TTL: Duration = Duration::from_secs(30);

/// Two callers over the same zone: "us" and another consumer.
fn two_callers() -> (Cache, Cache) {
    let zone: Arc<dyn Store> = Arc::new(MemoryStore::new("mem"));
    let us = Cache::from_stores("test", vec![zone.clone()], 1024).expect("cache");
    let other = Cache::from_stores("test", vec![zone], 1024).expect("cache");
    (us, other)
}

#[derive(Default)]
struct Recorder {
    degraded: Mutex<Vec<(usize, DegradedBy)>>,
    held: Mutex<Vec<usize>>,
}

impl BatchEvents for Recorder {
    fn degraded(&self, keys: usize, why: DegradedBy) {
        self.degraded.lock().unwrap().push((keys, why));
    }
    fn held_elsewhere(&self, keys: usize) {
        self.held.lock().unwrap().push(keys);
    }
}

fn quick(give_up_after: Duration) -> BatchWait {
    BatchWait {
        give_up_after,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
    }
}

#[tokio::test]
async fn settles_done_free_and_held_keys_waiting_for_the_holder() {
    let (us, other) = two_callers();
    other.commit("done", TTL).await.expect("commit");
    assert_eq!(
        other.claim("held", TTL).await.expect("claim"),
        Claim::Claimed { degraded: false }
    );
    // The other consumer finishes "held" a little later.
    let finisher = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        other.commit("held", TTL).await.expect("commit");
    });
    let events = Recorder::default();
    let settled = us
        .claim_batch(
            &["done", "free", "held"],
            TTL,
            quick(Duration::from_secs(10)),
            std::future::pending(),
            &events,
        )
        .await
        .expect("valid keys")
        .expect("not cancelled");
    finisher.await.unwrap();
    assert_eq!(
        settled,
        vec![
            Settled::AlreadyDone,
            Settled::Claimed { degraded: false },
            Settled::AlreadyDone,
        ]
    );
    let held = events.held.lock().unwrap().clone();
    assert!(!held.is_empty(), "waited for the holder");
    assert!(
        held.iter().all(|&n| n == 1),
        "only the held key was retried: {held:?}"
    );
    assert!(events.degraded.lock().unwrap().is_empty());
    // "free" is claimed (in flight) now, not yet done.
    let again = us.claim_many(&["free"], TTL).await.expect("claim");
    assert_eq!(again, vec![Claim::InFlight]);
}

#[tokio::test]
async fn a_key_held_past_the_limit_is_taken_over_degraded() {
    let (us, other) = two_callers();
    other.claim("stuck", TTL).await.expect("claim");
    let events = Recorder::default();
    let started = tokio::time::Instant::now();
    let settled = us
        .claim_batch(
            &["stuck", "free"],
            TTL,
            quick(Duration::from_millis(200)),
            std::future::pending(),
            &events,
        )
        .await
        .expect("valid keys")
        .expect("not cancelled");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        settled,
        vec![
            Settled::Claimed { degraded: true },
            Settled::Claimed { degraded: false },
        ]
    );
    assert_eq!(
        *events.degraded.lock().unwrap(),
        vec![(1, DegradedBy::TakenOver)]
    );
}

#[tokio::test]
async fn cancel_ends_the_wait_with_none_and_releases_our_claims() {
    let (us, other) = two_callers();
    other.claim("held", TTL).await.expect("claim");
    let settled = us
        .claim_batch(
            &["held", "ours"],
            TTL,
            quick(Duration::from_secs(60)),
            tokio::time::sleep(Duration::from_millis(50)),
            &(),
        )
        .await
        .expect("valid keys");
    assert_eq!(settled, None);
    // "ours" was claimed in the first round and given back on cancel.
    assert_eq!(
        other.claim("ours", TTL).await.expect("claim"),
        Claim::Claimed { degraded: false }
    );
}

#[tokio::test]
async fn repeated_keys_are_refused_and_bad_keys_claim_degraded() {
    let (us, _) = two_callers();
    let e = us
        .claim_batch(
            &["a", "b", "a"],
            TTL,
            quick(TTL),
            std::future::pending(),
            &(),
        )
        .await
        .expect_err("a repeat");
    assert_eq!(e.kind(), ErrorKind::InvalidKey);

    // claim_many refuses a key memcached cannot carry; the batch goes on
    // (an outage must not stall the consumer), every key degraded.
    let events = Recorder::default();
    let settled = us
        .claim_batch(
            &["ok", "not ok"],
            TTL,
            quick(TTL),
            std::future::pending(),
            &events,
        )
        .await
        .expect("distinct")
        .expect("not cancelled");
    assert_eq!(settled, vec![Settled::Claimed { degraded: true }; 2]);
    assert_eq!(
        *events.degraded.lock().unwrap(),
        vec![(2, DegradedBy::ClaimFailed)]
    );
}
