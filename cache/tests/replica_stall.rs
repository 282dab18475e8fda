//! A zone that stops answering (SIGSTOP: its port still accepts, nothing
//! replies) costs one per-op timeout, not a hang; after SIGCONT it heals.

mod common;

use std::time::{Duration, Instant};

use cinerec_cache::{Backend, Claim};
use common::*;
use tokio::time::timeout;

const TTL: Duration = Duration::from_secs(60);

async fn freeze_and_thaw(backend: Backend) {
    let (live, _) = urls(backend);
    require(&live);
    let own = OwnServer::start(backend);
    let cache = cache(&namespace("stall"), &[&own.url(), &live]);
    // Both zones answer before the freeze: the first connections of a cold
    // run (a clean CI clone builds and starts everything at once) may miss
    // one 500 ms op timeout, which is not what this test is about.
    let start = Instant::now();
    for i in 0.. {
        match cache.claim(&format!("warmup-{i}"), TTL).await {
            Ok(Claim::Claimed { degraded: false }) => break,
            other => assert!(
                start.elapsed() < POLL_LIMIT,
                "zones never both answered: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        cache.claim("warm", TTL).await.ok(),
        Some(Claim::Claimed { degraded: false })
    );

    own.freeze();
    let frozen = async {
        for i in 0..3 {
            let c = cache
                .claim(&format!("frozen-{i}"), TTL)
                .await
                .expect("claim");
            assert_eq!(c, Claim::Claimed { degraded: true });
        }
        assert_eq!(
            cache.get("warm").await.ok().flatten().as_deref(),
            Some(&b"in-flight"[..]),
            "read falls back"
        );
    };
    let r = timeout(HANG_GUARD, frozen).await;
    own.thaw();
    r.expect("a frozen zone stalled the caller");
    assert!(cache.stats().zone_failures >= 1);

    let start = Instant::now();
    for i in 0.. {
        let c = timeout(HANG_GUARD, cache.claim(&format!("thawed-{i}"), TTL))
            .await
            .expect("claim stalled")
            .expect("claim");
        if c == (Claim::Claimed { degraded: false }) {
            break;
        }
        assert!(start.elapsed() < POLL_LIMIT, "zone never healed: {c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn memcached_zone_frozen_then_thawed() {
    freeze_and_thaw(Backend::Memcached).await;
}

#[tokio::test]
async fn redis_zone_frozen_then_thawed() {
    freeze_and_thaw(Backend::Redis).await;
}
