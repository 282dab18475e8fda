//! Edits write new versions: two edits give two more events after the
//! create, in version order on one partition; the latest version wins on
//! GET; a delete is a change too and GET then answers 410 with the tombstone.

mod common;

use axum::http::{Method, StatusCode};
use common::{Harness, fast_relay, receive_until};
use review_svc::event::ChangeOp;
use serde_json::json;

#[tokio::test]
async fn two_edits_two_events_in_order_and_latest_wins() -> anyhow::Result<()> {
    let h = Harness::new("rv_edits").await?;
    let consumer = h.consumer()?;
    let (shutdown, relay) = h.start_relay(fast_relay())?;

    let created = h.create(8, 15, 2.0, "meh").await?;
    let id = created["review_id"].as_str().unwrap_or_default().to_owned();
    let uri = format!("/v1/reviews/{id}");
    let token = h.token("8", &[]);
    for (rating, text) in [(3.0, "grew on me"), (4.5, "loved it on rewatch")] {
        let body = json!({"rating": rating, "text": text}).to_string();
        let (status, _, json) = h
            .call(Method::PUT, &uri, Some(&token), &[], Some(body))
            .await?;
        assert_eq!(status, StatusCode::OK, "{json}");
    }

    let (status, _, latest) = h.call(Method::GET, &uri, None, &[], None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(latest["version"], 3);
    assert_eq!(latest["rating"], 4.5);
    assert_eq!(latest["text"], "loved it on rewatch");

    let received = receive_until(&consumer, |r| r.len() >= 3).await?;
    let seen: Vec<(i64, ChangeOp)> = received
        .iter()
        .map(|r| (r.event.version, r.event.op))
        .collect();
    assert_eq!(
        seen,
        [
            (1, ChangeOp::Create),
            (2, ChangeOp::Update),
            (3, ChangeOp::Update)
        ]
    );
    assert!(received.iter().all(|r| r.key == id));

    let (status, _, tombstone) = h
        .call(Method::DELETE, &uri, Some(&token), &[], None)
        .await?;
    assert_eq!(
        (status, tombstone["version"].clone()),
        (StatusCode::OK, json!(4))
    );
    let (status, _, gone) = h.call(Method::GET, &uri, None, &[], None).await?;
    assert_eq!(
        (status, gone["deleted"].clone()),
        (StatusCode::GONE, json!(true))
    );
    let received = receive_until(&consumer, |r| !r.is_empty()).await?;
    assert_eq!(
        (received[0].event.version, received[0].event.op),
        (4, ChangeOp::Delete)
    );
    let (status, _, _) = h
        .call(
            Method::PUT,
            &uri,
            Some(&token),
            &[],
            Some(json!({"rating": 1.0}).to_string()),
        )
        .await?;
    assert_eq!(
        status,
        StatusCode::GONE,
        "a deleted review cannot be edited"
    );

    shutdown.trigger();
    relay.await??;
    h.cleanup().await
}
