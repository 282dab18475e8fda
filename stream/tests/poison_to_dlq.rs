//! Poison records go to `<source>.dlq` with service-kit's header set and
//! never block their partition: an undecodable record at once (attempts 0),
//! an event the operator declares dead with its attempts — and a dead event
//! is marked done, so its redelivery is a duplicate.

mod common;

use cinerec_stream::{
    HEADER_ATTEMPTS, HEADER_ERROR, HEADER_OFFSET, HEADER_PARTITION, HEADER_TOPIC,
};
use common::{World, wait_stats};

#[tokio::test]
async fn poison_goes_to_the_dlq_and_the_partition_moves_on() -> anyhow::Result<()> {
    let world = World::start("stream_poison").await?;
    // One Kafka key: one partition, in this order.
    world.publish("k", b"garbage without a separator").await?;
    world.publish("k", b"dead|fail").await?;
    world.publish("k", b"good|ok").await?;
    let running = world.spawn(world.config()).await?;

    let dlq = world.read_until(&world.dlq_topic, |r| r.len() >= 2).await?;
    wait_stats(&running.handle, "2 dead, 1 processed", |s| {
        s.dlq == 2 && s.processed == 1
    })
    .await?;
    assert_eq!(running.effects.count("good"), 1);

    assert_eq!(dlq[0].text(), "garbage without a separator");
    assert!(
        dlq[0].headers[HEADER_ERROR].contains("undecodable"),
        "{:?}",
        dlq[0].headers
    );
    assert_eq!(dlq[0].headers[HEADER_ATTEMPTS], "0");
    assert_eq!(dlq[1].text(), "dead|fail");
    assert_eq!(dlq[1].headers[HEADER_ERROR], "asked to fail");
    assert_eq!(dlq[1].headers[HEADER_ATTEMPTS], "3");
    let mut offsets = Vec::new();
    for r in &dlq {
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.headers[HEADER_TOPIC], world.source_topic);
        assert!(r.headers[HEADER_PARTITION].parse::<i32>().is_ok());
        offsets.push(r.headers[HEADER_OFFSET].parse::<i64>()?);
    }
    assert!(offsets[0] < offsets[1], "{offsets:?}");

    // The dead event was marked done: redelivered, it is skipped.
    world.publish("k", b"dead|fail").await?;
    let stats = wait_stats(&running.handle, "the redelivery skipped", |s| {
        s.duplicates == 1
    })
    .await?;
    assert_eq!(stats.dlq, 2, "{stats:?}");
    running.stop().await?;
    Ok(())
}
