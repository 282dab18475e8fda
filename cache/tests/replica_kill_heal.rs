//! A zone server killed mid-test (crash: connections reset) degrades claims
//! without stalling; restarted on the same port, the cache heals by itself and
//! writes reach both zones again.

mod common;

use std::time::{Duration, Instant};

use cinerec_cache::{Backend, Cache, Claim};
use common::*;
use tokio::time::timeout;

const TTL: Duration = Duration::from_secs(60);

/// Claim fresh keys until one is claimed on every zone again.
pub async fn wait_healed(cache: &Cache, tag: &str) {
    let start = Instant::now();
    for i in 0.. {
        let key = format!("{tag}-probe-{i}");
        let c = timeout(HANG_GUARD, cache.claim(&key, TTL))
            .await
            .expect("claim stalled")
            .expect("claim");
        if c == (Claim::Claimed { degraded: false }) {
            return;
        }
        assert!(
            start.elapsed() < POLL_LIMIT,
            "zone never healed: last claim {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn kill_and_heal(backend: Backend) {
    let (live, _) = urls(backend);
    require(&live);
    let mut own = OwnServer::start(backend);
    let ns = namespace("kill");
    let cache = cache(&ns, &[&live, &own.url()]);

    assert_eq!(
        cache.claim("before", TTL).await.ok(),
        Some(Claim::Claimed { degraded: false })
    );

    own.kill();
    let during = async {
        assert_eq!(
            cache.claim("during", TTL).await.ok(),
            Some(Claim::Claimed { degraded: true })
        );
        assert!(cache.commit("during", TTL).await.expect("commit").degraded);
        assert_eq!(
            cache.claim("during", TTL).await.ok(),
            Some(Claim::AlreadyDone)
        );
    };
    timeout(HANG_GUARD, during)
        .await
        .expect("a killed zone stalled the caller");
    assert!(cache.stats().claimed_degraded >= 1);

    own.restart(); // empty: memcached/redis without persistence
    wait_healed(&cache, "kill").await;

    // The done marker survived on the live zone, so the restarted, empty zone
    // cannot hand out a second claim; our marker there is rolled back.
    assert_eq!(
        cache.claim("during", TTL).await.ok(),
        Some(Claim::AlreadyDone)
    );
    let own_only = common::cache(&ns, &[&own.url()]);
    assert_eq!(
        own_only.get("during").await.expect("get"),
        None,
        "rolled back"
    );

    // Healed: a commit lands on both zones again.
    assert_eq!(
        cache.claim("after", TTL).await.ok(),
        Some(Claim::Claimed { degraded: false })
    );
    assert!(!cache.commit("after", TTL).await.expect("commit").degraded);
    assert_eq!(
        own_only.claim("after", TTL).await.ok(),
        Some(Claim::AlreadyDone)
    );
}

#[tokio::test]
async fn memcached_zone_killed_then_healed() {
    kill_and_heal(Backend::Memcached).await;
}

#[tokio::test]
async fn redis_zone_killed_then_healed() {
    kill_and_heal(Backend::Redis).await;
}
