//! Concurrent edits of one review are serialised by its version counter
//! (an LWT): all 12 racing edits are accepted, each with its own version
//! (exactly 2..=13), and the change topic carries exactly 1..=13 in order.

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
    // The exact outcome: every edit is accepted (nobody dies mid-write, and
    // 12 writers finish far inside the ~4 s a writer keeps retrying), each
    // with its own version, together exactly 2..=13, each answer carrying the
    // content that edit sent.
    let mut versions = BTreeSet::new();
    let mut text_of = std::collections::BTreeMap::new();
    for (i, result) in futures::future::join_all(edits)
        .await
        .into_iter()
        .enumerate()
    {
        let (status, _, json) = result?;
        assert_eq!(status, StatusCode::OK, "edit {i}: {json}");
        assert_eq!(json["text"], format!("edit {i}"), "edit {i}'s own content");
        let version = json["version"].as_i64().unwrap_or(0);
        assert!(versions.insert(version), "a version twice: {json}");
        text_of.insert(version, format!("edit {i}"));
    }
    let expected: BTreeSet<i64> = (2..=(EDITS as i64 + 1)).collect();
    assert_eq!(versions, expected, "one version per edit, no gaps");
    let latest = EDITS as i64 + 1;
    let (_, _, got) = h.call(Method::GET, &uri, None, &[], None).await?;
    assert_eq!(
        (&got["version"], got["text"].as_str()),
        (
            &serde_json::json!(latest),
            text_of.get(&latest).map(String::as_str)
        ),
        "the highest version wins on GET, with that edit's content"
    );

    let received = receive_until(&consumer, |r| r.len() > EDITS).await?;
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
