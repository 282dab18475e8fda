//! A created review appears on the change topic as one single-object-encoded
//! `ReviewChanged` carrying ids only, keyed by the review id.

mod common;

use common::{Harness, fast_relay, receive_until};
use review_svc::event::ChangeOp;

#[tokio::test]
async fn create_appears_on_reviews_changed_with_ids_only() -> anyhow::Result<()> {
    let h = Harness::new("rv_create").await?;
    let consumer = h.consumer()?;
    let (shutdown, relay) = h.start_relay(fast_relay())?;

    let text = "a distinctive review text that must never reach Kafka";
    let review = h.create(31, 77, 4.5, text).await?;
    let review_id = review["review_id"].as_str().unwrap_or_default().to_owned();

    let received = receive_until(&consumer, |r| !r.is_empty()).await?;
    let change = &received[0];
    assert_eq!(change.key, review_id, "keyed by review id");
    assert_eq!(change.event.review_id.to_string(), review_id);
    assert_eq!(change.event.user_id, 31);
    assert_eq!(change.event.version, 1);
    assert_eq!(change.event.op, ChangeOp::Create);
    assert_eq!(
        Some(change.event.changed_at_us),
        review["changed_at_us"].as_i64()
    );
    assert_ne!(change.event.event_id, change.event.review_id);
    // Single-object encoding, and no review data: the payload is the header
    // plus a handful of ids (~100 bytes), never the text or rating.
    assert_eq!(&change.payload[..2], &[0xC3, 0x01]);
    assert!(change.payload.len() < 128, "{} bytes", change.payload.len());
    let payload = String::from_utf8_lossy(&change.payload);
    assert!(!payload.contains("distinctive"));

    shutdown.trigger();
    relay.await??;
    h.cleanup().await
}
