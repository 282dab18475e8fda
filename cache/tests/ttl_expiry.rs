//! TTLs run out for real on the servers: an in-flight marker, a done marker
//! and a plain value all disappear, observed by polling (no timing asserts).

mod common;

use std::time::{Duration, Instant};

use cinerec_cache::{Backend, Claim};
use common::*;

const SHORT: Duration = Duration::from_secs(1);
const LONG: Duration = Duration::from_secs(60);

async fn expiry(backend: Backend) {
    let (url, _) = urls(backend);
    let cache = stack_cache(&namespace("ttl"), &[&url]);

    // In-flight marker: held, then free again once it expires.
    assert_eq!(
        cache.claim("e", SHORT).await.ok(),
        Some(Claim::Claimed { degraded: false })
    );
    assert_eq!(cache.claim("e", LONG).await.ok(), Some(Claim::InFlight));
    assert_eq!(
        claim_when_free(&cache, "e", LONG).await,
        Claim::Claimed { degraded: false }
    );

    // Done marker: skipped while it lives, claimable after.
    cache.commit("e", SHORT).await.expect("commit");
    assert_eq!(cache.claim("e", LONG).await.ok(), Some(Claim::AlreadyDone));
    let start = Instant::now();
    loop {
        match cache.claim("e", LONG).await.expect("claim") {
            Claim::AlreadyDone if start.elapsed() < POLL_LIMIT => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => {
                assert_eq!(other, Claim::Claimed { degraded: false });
                break;
            }
        }
    }

    // Plain value.
    cache.set("v", b"x", SHORT).await.expect("set");
    assert_eq!(
        cache.get("v").await.expect("get").as_deref(),
        Some(&b"x"[..])
    );
    let start = Instant::now();
    while cache.get("v").await.expect("get").is_some() {
        assert!(start.elapsed() < POLL_LIMIT, "value never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn memcached_ttls_expire() {
    expiry(Backend::Memcached).await;
}

#[tokio::test]
async fn redis_ttls_expire() {
    expiry(Backend::Redis).await;
}
