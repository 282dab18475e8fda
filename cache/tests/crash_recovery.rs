//! Crash simulations: a worker that dies between claim and commit (its
//! marker expires, the next worker redoes the event and commits) and between
//! effect and commit (the effect is redone, harmless because it is idempotent).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use cinerec_cache::{Backend, Claim};
use common::*;

const IN_FLIGHT: Duration = Duration::from_secs(1);
const DONE: Duration = Duration::from_secs(60);

async fn crash_then_commit(backend: Backend) {
    let (a, b) = urls(backend);
    let ns = namespace("crash");
    // Idempotent effect: inserting the event id into a set.
    let mut effects: BTreeSet<&str> = BTreeSet::new();

    // Worker 1 claims evt-1, then crashes before its effect: a dropped client
    // that never commits.
    {
        let w1 = stack_cache(&ns, &[&a, &b]);
        assert_eq!(
            w1.claim("evt-1", IN_FLIGHT).await.ok(),
            Some(Claim::Claimed { degraded: false })
        );
    }
    // Worker 2 (a restarted process, new connections) gets the redelivery.
    let w2 = stack_cache(&ns, &[&a, &b]);
    assert_eq!(
        w2.claim("evt-1", DONE).await.ok(),
        Some(Claim::InFlight),
        "worker 1's marker is still alive"
    );
    assert_eq!(
        claim_when_free(&w2, "evt-1", IN_FLIGHT).await,
        Claim::Claimed { degraded: false }
    );
    effects.insert("evt-1");
    assert!(!w2.commit("evt-1", DONE).await.expect("commit").degraded);

    // Worker 2 claims evt-2, applies the effect, crashes before commit.
    assert_eq!(
        w2.claim("evt-2", IN_FLIGHT).await.ok(),
        Some(Claim::Claimed { degraded: false })
    );
    effects.insert("evt-2");
    drop(w2);

    // Worker 3 sees both redelivered: evt-1 is skipped, evt-2 is redone.
    let w3 = stack_cache(&ns, &[&a, &b]);
    assert_eq!(
        w3.claim("evt-1", IN_FLIGHT).await.ok(),
        Some(Claim::AlreadyDone)
    );
    assert_eq!(
        claim_when_free(&w3, "evt-2", IN_FLIGHT).await,
        Claim::Claimed { degraded: false }
    );
    effects.insert("evt-2");
    w3.commit("evt-2", DONE).await.expect("commit");
    assert_eq!(
        w3.claim("evt-2", IN_FLIGHT).await.ok(),
        Some(Claim::AlreadyDone)
    );
    assert_eq!(effects.into_iter().collect::<Vec<_>>(), ["evt-1", "evt-2"]);

    // A failed effect releases its claim: the retry need not wait for the TTL.
    assert_eq!(
        w3.claim("evt-3", DONE).await.ok(),
        Some(Claim::Claimed { degraded: false })
    );
    assert!(!w3.release("evt-3").await.expect("release").degraded);
    assert_eq!(
        w3.claim("evt-3", DONE).await.ok(),
        Some(Claim::Claimed { degraded: false })
    );
}

#[tokio::test]
async fn memcached_crash_then_commit() {
    crash_then_commit(Backend::Memcached).await;
}

#[tokio::test]
async fn redis_crash_then_commit() {
    crash_then_commit(Backend::Redis).await;
}
