//! Bad messages (not an EnrichedReview; a review with an impossible rating)
//! are counted (the undecodable one goes to the DLQ, the invalid one is
//! skipped); the good events around them are rolled up.

mod common;

use std::sync::atomic::Ordering;

use common::{World, base_minute, event, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_counted_and_the_rest_applied() {
    let world = World::new("rollup_bad").await;
    let m0 = base_minute();
    let good = event(1, 10, 1, Some(4.5), m0 + 1);
    let bad_rating = event(2, 10, 1, Some(4.2), m0 + 2);
    let also_good = event(3, 11, 1, Some(2.0), m0 + 3);
    world
        .produce([
            (good.key(), good.encode().expect("encodes")),
            ("1".to_owned(), b"not avro at all".to_vec()),
            (bad_rating.key(), bad_rating.encode().expect("encodes")),
            (also_good.key(), also_good.encode().expect("encodes")),
        ])
        .await;
    let sink = world.start(world.config.clone()).await;
    let stats = sink.stats.clone();
    eventually("4 messages handled", || async {
        let s = &stats;
        (s.applied.load(Ordering::Relaxed)
            + s.invalid.load(Ordering::Relaxed)
            + s.undecodable.load(Ordering::Relaxed)
            == 4)
            .then_some(())
    })
    .await;
    assert_eq!(stats.applied.load(Ordering::Relaxed), 2);
    assert_eq!(stats.invalid.load(Ordering::Relaxed), 1);
    assert_eq!(stats.undecodable.load(Ordering::Relaxed), 1);
    let pool = sink.stop().await;
    let rows = rollup::store::throughput(&pool).await.expect("throughput");
    assert_eq!(rows[&m0], (2, 2, 0, 0, 2, 6.5));
    world.cleanup(&pool).await;
}
