//! A change-log row that cannot become an event (here: an unknown `op`, as a
//! corrupted or future-version row would have) goes to `<topic>.dlq` with
//! the reason in an `error` header; it neither blocks the changes after it
//! nor disappears silently.

mod common;

use std::time::Instant;

use anyhow::{Context, bail};
use cinerec_service_kit::clock::now_micros;
use cinerec_service_kit::kafka::dlq::HEADER_ERROR;
use cinerec_tests::POLL_DEADLINE;
use common::{Harness, fast_relay, metrics_text, receive_until};
use rdkafka::message::{Headers, Message};
use review_svc::relay::dlq_topic;
use review_svc::store::{bucket_of, shard_of};
use uuid::Uuid;

#[tokio::test]
async fn an_unpublishable_change_goes_to_the_dlq_and_the_rest_flows() -> anyhow::Result<()> {
    let h = Harness::new("rv_poison").await?;
    let consumer = h.consumer()?;
    let dlq_consumer = h.consumer_of(&dlq_topic(&h.kafka.changes_topic))?;
    let (shutdown, relay) = h.start_relay(fast_relay())?;

    let before = h.create(61, 1, 3.0, "before").await?;
    let poison = Uuid::new_v4();
    let at = now_micros();
    h.store
        .session()
        .query_unpaged(
            format!(
                "INSERT INTO {}.review_changes (shard, bucket, changed_at, review_id, version, \
                 event_id, user_id, op, prev_changed_at) VALUES (?, ?, ?, ?, 1, ?, 61, 'UPSERT', null)",
                h.cql.keyspace
            ),
            (shard_of(poison), bucket_of(at), at, poison, Uuid::new_v4()),
        )
        .await?;
    let after = h.create(61, 2, 4.0, "after").await?;

    let received = receive_until(&consumer, |r| r.len() >= 2).await?;
    let ids: Vec<String> = received
        .iter()
        .map(|r| r.event.review_id.to_string())
        .collect();
    assert!(ids.contains(&before["review_id"].as_str().unwrap_or_default().to_owned()));
    assert!(ids.contains(&after["review_id"].as_str().unwrap_or_default().to_owned()));
    assert!(
        !ids.contains(&poison.to_string()),
        "the poison row is not an event"
    );

    let deadline = Instant::now() + POLL_DEADLINE;
    let message = loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            bail!("nothing on the DLQ");
        }
        if let Ok(m) = tokio::time::timeout(remaining, dlq_consumer.recv()).await {
            break m?.detach();
        }
    };
    assert_eq!(message.key(), Some(poison.to_string().as_bytes()));
    let reason = message
        .headers()
        .and_then(|hs| hs.iter().find(|hd| hd.key == HEADER_ERROR))
        .and_then(|hd| hd.value)
        .context("error header")?;
    assert!(String::from_utf8_lossy(reason).contains("unknown op"));
    let body: serde_json::Value = serde_json::from_slice(message.payload().context("payload")?)?;
    assert_eq!(body["op"], "UPSERT");
    assert!(metrics_text().contains("review_svc_relay_invalid_rows_total"));

    shutdown.trigger();
    relay.await??;
    h.cleanup().await
}
