//! The whole front of the pipeline with review-svc's own CDC relay: reviews
//! written through review-svc's store, their change rows relayed to the
//! source topic by `review_svc::relay::Relay` (review-svc's codec), then
//! enriched. Proves the two codecs agree on the wire and that the enricher
//! reads what the relay writes; the edits land before the enricher starts, so
//! every event carries the latest version.

mod common;

use std::collections::HashMap;

use common::World;
use review_svc::config::{KafkaArgs, RelayArgs};
use review_svc::relay::{self, Relay};
use uuid::Uuid;

#[tokio::test]
async fn changes_relayed_by_review_svc_are_enriched() -> anyhow::Result<()> {
    let world = World::start("enr_relay").await?;
    let a = world.create(13, 23, 2.0).await?;
    world.edit(a.review_id, 3.5).await?;
    let a3 = world.edit(a.review_id, 4.0).await?;
    let b = world.create(14, 24, 5.0).await?;
    let b2 = world.delete(b.review_id).await?;

    let kafka = KafkaArgs {
        kafka_brokers: world.stack.kafka_brokers.clone(),
        changes_topic: world.source_topic.clone(),
        topic_partitions: common::PARTITIONS,
    };
    relay::ensure_topic(&kafka).await?;
    let relay = Relay::new(
        world.store.clone(),
        relay::producer(&kafka)?,
        &world.source_topic,
        RelayArgs::default(),
    );
    let relay_stop = cinerec_service_kit::Shutdown::new();
    let relay_task = tokio::spawn(relay.run(relay_stop.clone()));
    // All five changes relayed before the enricher runs.
    let changes = world
        .read_until(&world.source_topic, |r| r.len() >= 5)
        .await?;
    let decoded: Vec<cinerec_events::ReviewChanged> = changes
        .iter()
        .map(|r| cinerec_events::ReviewChanged::decode(r.payload.as_deref().unwrap_or_default()))
        .collect::<Result<_, _>>()?;

    let (shutdown, handle, task) = world.spawn_enricher(world.config()).await?;
    let records = world
        .read_until(&world.sink_topic, |r| r.len() >= 5)
        .await?;
    let mut by_review: HashMap<Uuid, Vec<cinerec_events::EnrichedReview>> = HashMap::new();
    for r in &records {
        let e = r.enriched()?;
        assert!(
            decoded.iter().any(|d| d.event_id == e.event_id),
            "an event the relay wrote"
        );
        by_review.entry(e.review_id).or_default().push(e);
    }
    let of_a = &by_review[&a.review_id];
    assert_eq!(of_a.len(), 3);
    assert!(
        of_a.iter()
            .all(|e| e.version == a3.version && e.rating == Some(4.0))
    );
    let of_b = &by_review[&b.review_id];
    assert_eq!(of_b.len(), 2);
    assert!(
        of_b.iter()
            .all(|e| e.version == b2.version && e.deleted && e.rating.is_none())
    );
    world
        .wait_stats(&handle, "5 processed", |s| s.processed == 5)
        .await?;

    shutdown.trigger();
    task.await??;
    relay_stop.trigger();
    relay_task.await??;
    world.cleanup().await
}
