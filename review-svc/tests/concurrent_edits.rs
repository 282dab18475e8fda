//! Concurrent edits of one review are serialised by its version counter
//! (an LWT): every accepted edit gets its own version, and the change topic
//! carries them in version order.

mod common;

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use common::{Harness, fast_relay, receive_until};
use serde_json::json;

const EDITS: usize = 12;

#[tokio::test]
async fn racing_edits_get_distinct_versions_published_in_order() -> anyhow::Result<()> {
    let h = Harness::new("rv_race").await?;
    let consumer = h.consumer()?;
    let (shutdown, relay) = h.start_relay(fast_relay())?;
    let created = h.create(55, 5, 3.0, "v1").await?;
    let uri = format!(
        "/v1/reviews/{}",
        created["review_id"].as_str().unwrap_or_default()
    );
    let token = h.token("55", &[]);

    let edits = (0..EDITS).map(|i| {
        let body = json!({"rating": 0.5 * (1 + i % 10) as f64, "text": format!("edit {i}")});
        h.call(Method::PUT, &uri, Some(&token), &[], Some(body.to_string()))
    });
    let mut versions = BTreeSet::new();
    for result in futures::future::join_all(edits).await {
        let (status, _, json) = result?;
        // 409 is the documented answer when contention outlasts the retries.
        assert!(
            status == StatusCode::OK || status == StatusCode::CONFLICT,
            "{status} {json}"
        );
        if status == StatusCode::OK {
            assert!(
                versions.insert(json["version"].as_i64().unwrap_or(0)),
                "a version twice: {json}"
            );
        }
    }
    assert!(!versions.is_empty());
    let latest = versions.last().copied().unwrap_or(0);
    let (_, _, got) = h.call(Method::GET, &uri, None, &[], None).await?;
    assert_eq!(
        got["version"], latest,
        "the highest accepted version wins on GET"
    );

    let received = receive_until(&consumer, |r| r.len() > versions.len()).await?;
    let published: Vec<i64> = received.iter().map(|r| r.event.version).collect();
    assert!(
        published.windows(2).all(|w| w[0] < w[1]),
        "in order: {published:?}"
    );
    let want: Vec<i64> = std::iter::once(1).chain(versions.iter().copied()).collect();
    assert_eq!(published, want);

    shutdown.trigger();
    relay.await??;
    h.cleanup().await
}
