//! Unit tests of the claim protocol and replica rules over in-memory zones.
//! The same behaviours are tested against real servers in `cache/tests/`.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::MemoryStore;

const TTL: Duration = Duration::from_secs(30);

fn zones(n: usize) -> Vec<Arc<MemoryStore>> {
    (0..n)
        .map(|i| Arc::new(MemoryStore::new(format!("mem{i}"))))
        .collect()
}

fn cache_over(z: &[Arc<MemoryStore>]) -> Cache {
    let stores = z.iter().map(|s| s.clone() as Arc<dyn Store>).collect();
    Cache::from_stores("test", stores, 1024).expect("valid cache")
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn claim_commit_release_cycle() {
    block_on(async {
        let c = cache_over(&zones(1));
        assert_eq!(
            c.claim("e1", TTL).await.ok(),
            Some(Claim::Claimed { degraded: false })
        );
        assert_eq!(c.claim("e1", TTL).await.ok(), Some(Claim::InFlight));
        assert_eq!(
            c.release("e1").await.ok(),
            Some(Written { degraded: false })
        );
        assert_eq!(
            c.claim("e1", TTL).await.ok(),
            Some(Claim::Claimed { degraded: false })
        );
        assert_eq!(
            c.commit("e1", TTL).await.ok(),
            Some(Written { degraded: false })
        );
        assert_eq!(c.claim("e1", TTL).await.ok(), Some(Claim::AlreadyDone));
        let s = c.stats();
        assert_eq!((s.claimed, s.in_flight, s.already_done), (2, 1, 1));
    });
}

#[test]
fn batch_claims_in_order_with_duplicates() {
    block_on(async {
        let c = cache_over(&zones(2));
        c.commit("done", TTL).await.expect("commit");
        let got = c
            .claim_many(&["a", "done", "a", "b"], TTL)
            .await
            .expect("claims");
        assert_eq!(
            got,
            vec![
                Claim::Claimed { degraded: false },
                Claim::AlreadyDone,
                Claim::InFlight,
                Claim::Claimed { degraded: false },
            ]
        );
        assert!(
            c.claim_many::<&str>(&[], TTL)
                .await
                .expect("empty")
                .is_empty()
        );
    });
}

#[test]
fn zone_outage_degrades_and_heals() {
    block_on(async {
        let z = zones(2);
        let c = cache_over(&z);
        z[1].set_available(false);
        assert_eq!(
            c.claim("x", TTL).await.ok(),
            Some(Claim::Claimed { degraded: true })
        );
        assert_eq!(
            c.commit("x", TTL).await.ok(),
            Some(Written { degraded: true })
        );
        z[0].set_available(false);
        assert_eq!(
            c.claim("y", TTL).await.ok(),
            Some(Claim::Claimed { degraded: true })
        );
        z[0].set_available(true);
        z[1].set_available(true);
        assert_eq!(
            c.claim("z", TTL).await.ok(),
            Some(Claim::Claimed { degraded: false })
        );
        let s = c.stats();
        assert_eq!(
            (s.claimed, s.claimed_degraded, s.degraded_writes),
            (1, 2, 1)
        );
        assert_eq!(s.zone_failures, 4);
    });
}

#[test]
fn done_on_any_zone_wins_and_our_markers_are_rolled_back() {
    block_on(async {
        let z = zones(2);
        cache_over(&z[1..])
            .commit("e", TTL)
            .await
            .expect("commit on zone 1 only");
        let c = cache_over(&z);
        assert_eq!(c.claim("e", TTL).await.ok(), Some(Claim::AlreadyDone));
        assert!(
            z[0].is_empty(),
            "our in-flight marker on zone 0 was deleted"
        );
        assert_eq!(c.stats().rollbacks, 1);
    });
}

#[test]
fn held_on_another_zone_means_in_flight() {
    block_on(async {
        let z = zones(2);
        // A holder claimed while zone 0 was down (or its local zone is 1).
        let other = cache_over(&z[1..]);
        assert_eq!(
            other.claim("e", TTL).await.ok(),
            Some(Claim::Claimed { degraded: false })
        );
        let c = cache_over(&z);
        assert_eq!(c.claim("e", TTL).await.ok(), Some(Claim::InFlight));
        assert!(z[0].is_empty(), "our marker on zone 0 was rolled back");
        other.commit("e", TTL).await.expect("commit");
        assert_eq!(c.claim("e", TTL).await.ok(), Some(Claim::AlreadyDone));
    });
}

#[test]
fn foreign_value_is_counted_and_degrades() {
    block_on(async {
        let z = zones(2);
        let c = cache_over(&z);
        cache_over(&z[..1])
            .set("k", b"user data", TTL)
            .await
            .expect("set");
        assert_eq!(
            c.claim("k", TTL).await.ok(),
            Some(Claim::Claimed { degraded: true })
        );
        assert_eq!(c.stats().unexpected_values, 1);
    });
}

#[test]
fn in_flight_marker_expires() {
    block_on(async {
        let c = cache_over(&zones(1));
        let short = Duration::from_millis(20);
        assert_eq!(
            c.claim("e", short).await.ok(),
            Some(Claim::Claimed { degraded: false })
        );
        loop {
            match c.claim("e", TTL).await.ok() {
                Some(Claim::InFlight) => tokio::time::sleep(Duration::from_millis(5)).await,
                other => {
                    assert_eq!(other, Some(Claim::Claimed { degraded: false }));
                    break;
                }
            }
        }
    });
}

#[test]
fn plain_reads_fall_back_and_writes_report_outages() {
    block_on(async {
        let z = zones(2);
        let c = cache_over(&z);
        cache_over(&z[1..])
            .set("v", b"from zone 1", TTL)
            .await
            .expect("set");
        assert_eq!(
            c.get("v").await.ok().flatten().as_deref(),
            Some(&b"from zone 1"[..])
        );
        assert_eq!(c.get("missing").await.ok(), Some(None));
        z[0].set_available(false);
        assert_eq!(
            c.set("w", b"1", TTL).await.ok(),
            Some(Written { degraded: true })
        );
        assert_eq!(c.get("w").await.ok().flatten().as_deref(), Some(&b"1"[..]));
        z[1].set_available(false);
        assert_eq!(
            c.get("w").await.map_err(|e| e.kind()).err(),
            Some(ErrorKind::Unavailable)
        );
        assert_eq!(
            c.set("w", b"1", TTL).await.map_err(|e| e.kind()).err(),
            Some(ErrorKind::Unavailable)
        );
        assert_eq!(
            c.delete("w").await.map_err(|e| e.kind()).err(),
            Some(ErrorKind::Unavailable)
        );
    });
}

#[test]
fn bad_input_is_rejected_before_sending() {
    block_on(async {
        let z = zones(1);
        let c = cache_over(&z);
        let e = c
            .claim_many(&["ok", "not ok"], TTL)
            .await
            .map_err(|e| e.kind())
            .err();
        assert_eq!(e, Some(ErrorKind::InvalidKey));
        assert!(z[0].is_empty(), "nothing was claimed");
        let big = vec![0u8; 2048];
        assert_eq!(
            c.set("k", &big, TTL).await.map_err(|e| e.kind()).err(),
            Some(ErrorKind::ValueTooLarge)
        );
    });
}
