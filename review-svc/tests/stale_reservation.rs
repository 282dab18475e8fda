//! A writer that died between reserving a version (the LWT) and committing
//! it (the batch) blocks its review only until the reservation's lease
//! expires: while fresh, edits answer 409; once stale, the next edit takes
//! over with a higher version, and the change topic skips the version that
//! never existed without losing order.

mod common;

use axum::http::{Method, StatusCode};
use cinerec_service_kit::clock::now_micros;
use common::{Harness, fast_relay, receive_until};
use review_svc::store::RESERVATION_LEASE_MICROS;
use serde_json::json;

#[tokio::test]
async fn an_abandoned_reservation_is_taken_over_after_its_lease() -> anyhow::Result<()> {
    let h = Harness::new("rv_stale").await?;
    let consumer = h.consumer()?;
    let (shutdown, relay) = h.start_relay(fast_relay())?;
    let created = h.create(70, 7, 3.0, "v1").await?;
    let id: uuid::Uuid = serde_json::from_value(created["review_id"].clone())?;
    let uri = format!("/v1/reviews/{id}");
    let token = h.token("70", &[]);
    let edit = json!({"rating": 4.0, "text": "after the crash"}).to_string();

    // A writer reserves version 2 and dies before its batch.
    let reserve = |reserved_at: i64, expected: i64| {
        let h = &h;
        async move {
            h.store
                .session()
                .query_unpaged(
                    format!(
                        "UPDATE {}.review_heads SET version = ?, changed_at = ?, reserved_at = ? \
                         WHERE review_id = ? IF version = ?",
                        h.cql.keyspace
                    ),
                    (expected + 1, now_micros(), reserved_at, id, expected),
                )
                .await
        }
    };
    reserve(now_micros(), 1).await?;
    let (status, _, json) = h
        .call(Method::PUT, &uri, Some(&token), &[], Some(edit.clone()))
        .await?;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a live reservation blocks: {json}"
    );
    assert_eq!(json["error"], "write_conflict");

    // The same reservation, but older than the lease: taken over.
    reserve(now_micros() - RESERVATION_LEASE_MICROS - 1_000_000, 2).await?;
    let (status, _, json) = h
        .call(Method::PUT, &uri, Some(&token), &[], Some(edit))
        .await?;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        json["version"], 4,
        "versions 2 and 3 were reserved and abandoned"
    );
    let (_, _, latest) = h.call(Method::GET, &uri, None, &[], None).await?;
    assert_eq!(
        (latest["version"].clone(), latest["text"].clone()),
        (json!(4), json!("after the crash"))
    );

    let received = receive_until(&consumer, |r| r.len() >= 2).await?;
    let versions: Vec<i64> = received.iter().map(|r| r.event.version).collect();
    assert_eq!(versions, [1, 4]);
    assert!(
        common::metrics_text().contains("review_svc_stale_reservations_total"),
        "the takeover is counted"
    );

    shutdown.trigger();
    relay.await??;
    h.cleanup().await
}
