//! The recommender's Cassandra tables become the dashboard's views: most
//! recommended movies with titles, recommendations per genre, and trending per
//! genre as a series of snapshots over time.

mod common;

use std::sync::atomic::Ordering;

use common::{World, base_minute, event, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommendations_and_trending_are_snapshotted() {
    let world = World::new("rollup_snap").await;
    let ks = world.config.cql.keyspace.clone();
    let session = rollup::snapshot::connect(&world.config.cql.cql_nodes)
        .await
        .expect("Cassandra (dev/stack up)");
    for ddl in rollup::snapshot::contract_ddl(&ks).expect("ddl") {
        session.query_unpaged(ddl, ()).await.expect("ddl runs");
    }
    let rec = format!(
        "INSERT INTO {ks}.recommendations_by_user (user_id, movie_ids, scores, from_model, computed_at) VALUES (?, ?, ?, ?, 1)"
    );
    // Movie 10 (Drama, Comedy) in 3 lists (2 from the model), 11 (Horror) in 2, 12 in 1.
    for (user, movies, from_model) in [
        (1_i64, vec![10_i64, 11], 2_i32),
        (2, vec![10, 12], 1),
        (3, vec![11, 10], 0),
    ] {
        let scores = vec![0.5_f64; movies.len()];
        session
            .query_unpaged(rec.as_str(), (user, movies, scores, from_model))
            .await
            .expect("row");
    }
    let trend = format!(
        "INSERT INTO {ks}.trending_by_genre (genre, movie_ids, counts, window_start, window_end, computed_at) VALUES (?, ?, ?, 1000000, 3600000000, 1)"
    );
    session
        .query_unpaged(trend.as_str(), ("Drama", vec![10_i64, 12], vec![7_i32, 3]))
        .await
        .expect("row");
    session
        .query_unpaged(trend.as_str(), ("Horror", vec![11_i64], vec![5_i32]))
        .await
        .expect("row");
    // The titles come from the events.
    let m0 = base_minute();
    world
        .produce_events(&[
            event(1, 10, 1, Some(4.0), m0),
            event(1, 11, 1, Some(4.0), m0),
            event(2, 12, 1, Some(4.0), m0),
        ])
        .await;

    let sink = world.start(world.config.clone()).await;
    let (stats, pool) = (sink.stats.clone(), sink.pool.clone());
    eventually("events and a snapshot", || async {
        (stats.applied.load(Ordering::Relaxed) == 3 && stats.snapshots.load(Ordering::Relaxed) >= 1)
            .then_some(())
    })
    .await;
    // A snapshot after the events were applied has the titles joined.
    let after = stats.snapshots.load(Ordering::Relaxed);
    eventually("one more snapshot", || async {
        (stats.snapshots.load(Ordering::Relaxed) > after).then_some(())
    })
    .await;
    let most: Vec<(i64, String, i64, i64)> = sqlx::query_as(
        "SELECT movie_id, title, users, model_users FROM most_recommended_movies ORDER BY users DESC, movie_id",
    )
    .fetch_all(&pool)
    .await
    .expect("most recommended");
    assert_eq!(
        most,
        vec![
            (10, "Title 10".into(), 3, 2),
            (11, "Title 11".into(), 2, 1),
            (12, "Title 12".into(), 1, 0),
        ]
    );
    let by_genre: Vec<(String, i64)> = sqlx::query_as(
        "SELECT genre, recommendations::BIGINT FROM recommendations_by_genre ORDER BY genre",
    )
    .fetch_all(&pool)
    .await
    .expect("by genre");
    assert_eq!(
        by_genre,
        vec![
            ("Comedy".into(), 4),
            ("Drama".into(), 4),
            ("Horror".into(), 2)
        ]
    );

    // Trending changes; the next snapshots add a new point in time and keep the old.
    session
        .query_unpaged(trend.as_str(), ("Horror", vec![11_i64], vec![9_i32]))
        .await
        .expect("row");
    let horror: Vec<(i64, i64)> = eventually("a second trending point", || async {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT movie_id, reviews FROM trending_over_time WHERE genre = 'Horror' ORDER BY snapshot_at",
        )
        .fetch_all(&pool)
        .await
        .expect("trending");
        rows.iter().any(|r| r.1 == 9).then_some(rows)
    })
    .await;
    assert!(horror.contains(&(11, 5)), "older point kept: {horror:?}");
    let drama: (String, i32, i64) = sqlx::query_as(
        "SELECT title, rank, reviews FROM trending_over_time WHERE genre = 'Drama' AND rank = 2 LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .expect("drama");
    assert_eq!(drama, ("Title 12".into(), 2, 3));
    let totals: (i64, i64, i64) = sqlx::query_as(
        "SELECT users, recommendations, from_model FROM recommendation_snapshots ORDER BY snapshot_at DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .expect("totals");
    assert_eq!(totals, (3, 6, 3));

    let pool = sink.stop().await;
    let _ = session
        .query_unpaged(format!("DROP KEYSPACE {ks}"), ())
        .await;
    world.cleanup(&pool).await;
}
