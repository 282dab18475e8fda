//! Redelivered and re-produced events never count twice: the throughput,
//! histogram and mean rating equal the distinct events, the duplicates show up
//! as dedup skips — also when a second sink re-reads the whole topic.

mod common;

use std::sync::atomic::Ordering;

use common::{World, base_minute, event, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_skipped_and_counted() {
    let world = World::new("rollup_dup").await;
    let m0 = base_minute();
    let m1 = m0 + 60_000_000;
    let events = vec![
        event(1, 10, 1, Some(4.0), m0 + 1),
        event(2, 10, 1, Some(5.0), m0 + 2),
        event(3, 11, 2, Some(3.0), m0 + 3),
        event(1, 11, 3, None, m0 + 4),
        event(4, 12, 1, Some(4.0), m1 + 5),
    ];
    // Every event once, then the first three again (an enricher that
    // re-produced them after a crash): same event ids, new offsets.
    world.produce_events(&events).await;
    world.produce_events(&events[..3]).await;

    let sink = world.start(world.config.clone()).await;
    let stats = sink.stats.clone();
    eventually("8 deliveries", || async {
        (stats.applied.load(Ordering::Relaxed) + stats.duplicates.load(Ordering::Relaxed) == 8)
            .then_some(())
    })
    .await;
    assert_eq!(stats.applied.load(Ordering::Relaxed), 5);
    assert_eq!(stats.duplicates.load(Ordering::Relaxed), 3);

    let pool = sink.stop().await;
    let rows = rollup::store::throughput(&pool).await.expect("throughput");
    // (events, reviews, edits, deletes, rated, rating_sum)
    assert_eq!(rows[&m0], (4, 2, 1, 1, 3, 12.0));
    assert_eq!(rows[&m1], (1, 1, 0, 0, 1, 4.0));
    let mean: f64 = sqlx::query_scalar(
        "SELECT mean_rating FROM review_throughput WHERE minute = to_timestamp($1)",
    )
    .bind(m0 as f64 / 1e6)
    .fetch_one(&pool)
    .await
    .expect("mean");
    assert_eq!(mean, 4.0);
    let histogram: Vec<(f64, i64)> = sqlx::query_as(
        "SELECT rating, SUM(reviews)::BIGINT FROM rating_histogram_minute GROUP BY rating ORDER BY rating",
    )
    .fetch_all(&pool)
    .await
    .expect("histogram");
    assert_eq!(histogram, vec![(3.0, 1), (4.0, 2), (5.0, 1)]);
    let skips: i64 = sqlx::query_scalar("SELECT SUM(skips)::BIGINT FROM dedup_skips_minute")
        .fetch_one(&pool)
        .await
        .expect("skips");
    assert_eq!(skips, 3);

    // A second sink in a new group re-reads everything (a rewound group):
    // nothing is added, all 8 deliveries are skips.
    let mut replay = world.config.clone();
    replay.kafka.group = format!("{}_replay", world.config.kafka.group);
    let sink = world.start(replay).await;
    let stats = sink.stats.clone();
    eventually("the replay", || async {
        (stats.duplicates.load(Ordering::Relaxed) == 8).then_some(())
    })
    .await;
    assert_eq!(stats.applied.load(Ordering::Relaxed), 0);
    let pool = sink.stop().await;
    let again = rollup::store::throughput(&pool).await.expect("throughput");
    assert_eq!(again, rows, "a replay changes no count");
    let skips: i64 = sqlx::query_scalar("SELECT SUM(skips)::BIGINT FROM dedup_skips_minute")
        .fetch_one(&pool)
        .await
        .expect("skips");
    assert_eq!(skips, 11);
    let titles: Vec<(i64, String, Vec<String>)> =
        sqlx::query_as("SELECT movie_id, title, genres FROM movies ORDER BY movie_id")
            .fetch_all(&pool)
            .await
            .expect("movies");
    assert_eq!(
        titles,
        vec![
            (10, "Title 10".into(), vec!["Drama".into(), "Comedy".into()]),
            (11, "Title 11".into(), vec!["Horror".into()]),
            (12, "Title 12".into(), vec!["Drama".into(), "Comedy".into()]),
        ]
    );
    world.cleanup(&pool).await;
}
