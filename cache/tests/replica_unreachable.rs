//! A zone with nothing listening: claims degrade instead of failing or
//! hanging, writes report `degraded`, reads fall back to the other zone, and
//! the outage is counted.

mod common;

use std::time::Duration;

use cinerec_cache::{Backend, Claim, ErrorKind};
use common::*;
use tokio::time::timeout;

const TTL: Duration = Duration::from_secs(60);

async fn one_zone_dead(backend: Backend) {
    let (live, _) = urls(backend);
    require(&live);
    let dead_port = DeadPort::new();
    let dead = dead_port.url(backend);
    let ns = namespace("dead");

    for (round, zones) in [
        [live.as_str(), dead.as_str()],
        [dead.as_str(), live.as_str()],
    ]
    .into_iter()
    .enumerate()
    {
        let cache = cache(&ns, &zones);
        let checks = async {
            let key = format!("evt-{round}");
            assert_eq!(
                cache.claim(&key, TTL).await.ok(),
                Some(Claim::Claimed { degraded: true })
            );
            assert_eq!(
                cache.claim(&key, TTL).await.ok(),
                Some(Claim::InFlight),
                "the live zone holds it"
            );
            assert!(cache.commit(&key, TTL).await.expect("commit").degraded);
            assert_eq!(cache.claim(&key, TTL).await.ok(), Some(Claim::AlreadyDone));

            assert!(
                cache
                    .set("v", b"kept", TTL)
                    .await
                    .expect("set on the live zone")
                    .degraded
            );
            assert_eq!(
                cache.get("v").await.expect("get").as_deref(),
                Some(&b"kept"[..])
            );
            // Many calls in a row: after the first failure the dead zone fails
            // fast for its retry interval, then is probed again.
            for i in 0..50 {
                let c = cache
                    .claim(&format!("many-{round}-{i}"), TTL)
                    .await
                    .expect("claim");
                assert_eq!(c, Claim::Claimed { degraded: true });
            }
        };
        timeout(HANG_GUARD, checks)
            .await
            .expect("a dead zone stalled the caller");
        let s = cache.stats();
        assert_eq!(s.claimed, 0);
        assert_eq!(s.claimed_degraded, 51);
        assert!(s.zone_failures > 0 && s.degraded_writes == 2, "{s:?}");
    }
}

async fn all_zones_dead(backend: Backend) {
    let (p1, p2) = (DeadPort::new(), DeadPort::new());
    let (dead1, dead2) = (p1.url(backend), p2.url(backend));
    let cache = cache(&namespace("alldead"), &[&dead1, &dead2]);
    let checks = async {
        // Process anyway: at-least-once holds without the cache.
        assert_eq!(
            cache.claim("e", TTL).await.ok(),
            Some(Claim::Claimed { degraded: true })
        );
        assert!(
            cache
                .commit("e", TTL)
                .await
                .expect("commit never errors on outage")
                .degraded
        );
        let many = cache.claim_many(&["a", "b"], TTL).await.expect("claims");
        assert_eq!(many, vec![Claim::Claimed { degraded: true }; 2]);
        assert_eq!(
            cache.get("e").await.map_err(|e| e.kind()).err(),
            Some(ErrorKind::Unavailable)
        );
        assert_eq!(
            cache.set("e", b"1", TTL).await.map_err(|e| e.kind()).err(),
            Some(ErrorKind::Unavailable)
        );
    };
    timeout(HANG_GUARD, checks)
        .await
        .expect("dead zones stalled the caller");
    assert_eq!(cache.stats().claimed_degraded, 3);
}

#[tokio::test]
async fn memcached_zone_unreachable() {
    one_zone_dead(Backend::Memcached).await;
}

#[tokio::test]
async fn redis_zone_unreachable() {
    one_zone_dead(Backend::Redis).await;
}

#[tokio::test]
async fn memcached_all_zones_unreachable() {
    all_zones_dead(Backend::Memcached).await;
}

#[tokio::test]
async fn redis_all_zones_unreachable() {
    all_zones_dead(Backend::Redis).await;
}
