//! Reviews written through review-svc's store, their changes on
//! `reviews.changed` → the enricher produces correct EnrichedReviews: the
//! *latest* version for every event (edited twice before the enricher runs,
//! even the first event carries the last rating), a tombstone for a deleted
//! review, movie and user fields from movie-svc/user-svc, keyed by user_id,
//! the traceparent header carried over; an event of an unknown review is
//! skipped and counted.

mod common;

use common::World;
use uuid::Uuid;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn latest_version_wins_and_tombstones_flow() -> anyhow::Result<()> {
    let world = World::start("enr_latest").await?;
    let a1 = world.create(11, 21, 3.0).await?;
    let a2 = world.edit(a1.review_id, 4.5).await?;
    let a3 = world.edit(a1.review_id, 5.0).await?;
    let b1 = world.create(12, 22, 2.0).await?;
    let b2 = world.delete(b1.review_id).await?;
    let ghost = cinerec_events::ReviewChanged {
        event_id: Uuid::new_v4(),
        review_id: Uuid::new_v4(),
        ..a1
    };
    world.publish(&a1, Some(TRACEPARENT)).await?;
    for ev in [&a2, &a3, &ghost, &b1, &b2] {
        world.publish(ev, None).await?;
    }

    let (shutdown, handle, task) = world.spawn_enricher(world.config()).await?;
    let records = world
        .read_until(&world.sink_topic, |r| r.len() >= 5)
        .await?;
    let stats = world
        .wait_stats(&handle, "5 processed, 1 not found", |s| {
            s.processed == 5 && s.skipped == 1
        })
        .await?;
    assert_eq!((stats.duplicates, stats.dlq), (0, 0), "{stats:?}");

    let mut by_event = std::collections::HashMap::new();
    for r in &records {
        let e = r.enriched()?;
        assert_eq!(r.key.as_deref(), Some(e.user_id.to_string().as_bytes()));
        by_event.insert(e.event_id, (e, r.headers.clone()));
    }
    assert_eq!(by_event.len(), 5, "one record per event");

    for ev in [&a1, &a2, &a3] {
        let (e, headers) = &by_event[&ev.event_id];
        assert_eq!(e.review_id, a1.review_id);
        assert_eq!(e.version, a3.version, "latest version, not the event's");
        assert_eq!(e.rating, Some(5.0));
        assert!(!e.deleted);
        assert_eq!((e.user_id, e.movie_id), (11, 21));
        let movie = world.catalog.movie(21);
        assert_eq!(e.movie_title, movie.title);
        assert_eq!(e.movie_year, movie.year);
        assert_eq!(e.movie_genres, movie.genres);
        let user = world.catalog.user(11);
        assert_eq!(e.user_country, user.country);
        assert_eq!(e.user_zone, user.zone);
        assert_eq!(e.user_preferred_genres, user.preferred_genres);
        assert_eq!(e.user_tier.as_str(), user.tier.as_str());
        assert!(e.enriched_at_us >= e.changed_at_us);
        let expected_tp = (ev.event_id == a1.event_id).then_some(TRACEPARENT);
        assert_eq!(headers.get("traceparent").map(String::as_str), expected_tp);
    }
    for ev in [&b1, &b2] {
        let (e, _) = &by_event[&ev.event_id];
        assert_eq!(e.version, b2.version);
        assert!(e.deleted, "the recommender must unlike");
        assert_eq!(e.rating, None);
        assert_eq!((e.user_id, e.movie_id), (12, 22));
    }

    shutdown.trigger();
    task.await??;
    world.cleanup().await
}
