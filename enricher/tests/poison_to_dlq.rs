//! Poison messages go to `<source>.dlq` with the error in headers and never
//! block their partition: undecodable payloads at once (attempts 0), events
//! whose RPCs keep failing after the retry budget.

mod common;

use common::World;
use enricher::pipeline::{
    HEADER_ATTEMPTS, HEADER_ERROR, HEADER_OFFSET, HEADER_PARTITION, HEADER_TOPIC,
};

#[tokio::test]
async fn garbage_goes_to_the_dlq_and_the_partition_moves_on() -> anyhow::Result<()> {
    let world = World::start("enr_poison").await?;
    let ev = world.create(7, 8, 1.5).await?;
    // Same key as the good event: same partition, before it.
    let key = ev.key();
    world.publish_raw(&key, b"not avro at all", None).await?;
    let mut unknown_schema = vec![0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8];
    unknown_schema.extend_from_slice(b"datum");
    world.publish_raw(&key, &unknown_schema, None).await?;
    world.publish(&ev, None).await?;

    let (shutdown, handle, task) = world.spawn_enricher(world.config()).await?;
    let dlq = world.read_until(&world.dlq_topic, |r| r.len() >= 2).await?;
    let sink = world
        .read_until(&world.sink_topic, |r| {
            r.iter().any(|r| {
                r.enriched()
                    .map(|e| e.event_id == ev.event_id)
                    .unwrap_or(false)
            })
        })
        .await?;
    assert_eq!(sink.len(), 1);

    let payloads: Vec<&[u8]> = dlq.iter().filter_map(|r| r.payload.as_deref()).collect();
    assert_eq!(payloads, vec![&b"not avro at all"[..], &unknown_schema[..]]);
    let mut offsets = Vec::new();
    for r in &dlq {
        assert_eq!(r.key.as_deref(), Some(key.as_bytes()));
        let error = &r.headers[HEADER_ERROR];
        assert!(error.contains("undecodable ReviewChanged"), "{error}");
        assert_eq!(r.headers[HEADER_ATTEMPTS], "0");
        assert_eq!(r.headers[HEADER_TOPIC], world.source_topic);
        assert!(r.headers[HEADER_PARTITION].parse::<i32>().is_ok());
        offsets.push(r.headers[HEADER_OFFSET].parse::<i64>()?);
    }
    assert!(offsets[0] < offsets[1], "{offsets:?}");
    assert!(dlq[1].headers[HEADER_ERROR].contains("unknown writer schema"));

    let stats = world
        .wait_stats(&handle, "2 dead, 1 processed", |s| {
            s.dlq == 2 && s.processed == 1
        })
        .await?;
    assert_eq!(stats.duplicates, 0);
    shutdown.trigger();
    task.await??;
    world.cleanup().await
}

#[tokio::test]
async fn an_unreachable_review_service_sends_events_to_the_dlq_after_retries() -> anyhow::Result<()>
{
    let world = World::start("enr_rpcdown").await?;
    let ev = world.create(9, 10, 5.0).await?;
    world
        .publish(
            &ev,
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        )
        .await?;

    // A port nobody listens on: every getReviews attempt is refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut config = world.config();
    config.review_rpc = closed.local_addr()?.to_string();
    drop(closed);
    config.retry_attempts = 3;
    let (shutdown, handle, task) = world.spawn_enricher(config).await?;

    let dlq = world
        .read_until(&world.dlq_topic, |r| !r.is_empty())
        .await?;
    let r = &dlq[0];
    assert!(
        r.headers[HEADER_ERROR].contains("getReviews"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.headers[HEADER_ATTEMPTS], "3");
    assert_eq!(
        r.headers.get("traceparent").map(String::as_str),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );
    assert_eq!(r.payload.as_deref(), Some(&ev.encode()?[..]));
    world
        .wait_stats(&handle, "1 dead", |s| s.dlq == 1 && s.processed == 0)
        .await?;
    shutdown.trigger();
    task.await??;
    world.cleanup().await
}
