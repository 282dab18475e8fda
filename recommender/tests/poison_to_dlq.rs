//! Undecodable and invalid records go to `<topic>.dlq` with the error in
//! headers, are counted, and the partition continues past them.

mod common;

use std::time::{Duration, Instant};

use anyhow::bail;
use cinerec_tests::{POLL_DEADLINE, unique_name};
use common::{World, event};
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use recommender::pipeline::{HEADER_ERROR, HEADER_OFFSET};
use uuid::Uuid;

#[tokio::test]
async fn poison_goes_to_the_dlq_and_the_partition_continues() -> anyhow::Result<()> {
    let world = World::start("rec_poison", 1).await?;
    let config = world.config();
    let dlq = config.dlq_topic();
    let (shutdown, handle, task) = world.spawn(config).await?;

    world.publish_raw("1", b"not avro at all").await?;
    let mut bad_rating = event(Uuid::new_v4(), 1, 10, Some(4.0), 1);
    bad_rating.rating = Some(f32::NAN);
    world.publish(&bad_rating).await?;
    let good = vec![
        event(Uuid::new_v4(), 1, 10, Some(5.0), 1),
        event(Uuid::new_v4(), 1, 11, Some(4.0), 1),
    ];
    for ev in &good {
        world.publish(ev).await?;
    }
    let stats = world.wait_idle(&handle, 4).await?;
    assert_eq!(stats.dlq, 2, "{stats:?}");
    assert_eq!(stats.applied, 2, "{stats:?}");
    world.assert_matches(&good).await?;

    let reader: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &world.stack.kafka_brokers)
        .set("group.id", unique_name("rec_dlq_reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    reader.subscribe(&[&dlq])?;
    let mut errors = Vec::new();
    let deadline = Instant::now() + POLL_DEADLINE;
    while errors.len() < 2 {
        if Instant::now() > deadline {
            bail!("DLQ records: {errors:?}");
        }
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), reader.recv()).await
        else {
            continue;
        };
        let headers = m.headers().ok_or_else(|| anyhow::anyhow!("no headers"))?;
        let get = |k: &str| {
            headers
                .iter()
                .find(|h| h.key == k)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        errors.push((get(HEADER_ERROR), get(HEADER_OFFSET)));
    }
    assert!(
        errors[0]
            .0
            .as_deref()
            .is_some_and(|e| e.contains("undecodable")),
        "{errors:?}"
    );
    assert_eq!(errors[0].1.as_deref(), Some("0"));
    assert!(
        errors[1]
            .0
            .as_deref()
            .is_some_and(|e| e.contains("invalid rating")),
        "{errors:?}"
    );
    shutdown.trigger();
    task.await??;
    Ok(())
}
