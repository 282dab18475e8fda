//! `Idempotency-Key`: a retried write with the same key and body returns the
//! first result and writes nothing new — also when the retries race; the same
//! key with another body is refused.

mod common;

use axum::http::{Method, StatusCode};
use common::Harness;
use serde_json::json;

#[tokio::test]
async fn a_retried_post_creates_one_review_and_returns_it() -> anyhow::Result<()> {
    let h = Harness::new("rv_idem").await?;
    let token = h.token("12", &[]);
    let body = json!({"user_id": 12, "movie_id": 40, "rating": 4.0, "text": "twice?"}).to_string();
    let key = [("idempotency-key", "order-7f3a")];

    let (s1, h1, first) = h
        .call(
            Method::POST,
            "/v1/reviews",
            Some(&token),
            &key,
            Some(body.clone()),
        )
        .await?;
    assert_eq!(s1, StatusCode::CREATED, "{first}");
    assert!(h1.get("idempotent-replayed").is_none());
    let (s2, h2, second) = h
        .call(
            Method::POST,
            "/v1/reviews",
            Some(&token),
            &key,
            Some(body.clone()),
        )
        .await?;
    assert_eq!(s2, StatusCode::OK, "{second}");
    assert_eq!(
        h2.get("idempotent-replayed").map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(first, second, "the retry returns the same review");

    // Ten concurrent retries of another key: one review among them.
    let race_key = [("idempotency-key", "race-1")];
    let body2 = json!({"user_id": 12, "movie_id": 41, "rating": 2.5}).to_string();
    let calls = (0..10).map(|_| {
        h.call(
            Method::POST,
            "/v1/reviews",
            Some(&token),
            &race_key,
            Some(body2.clone()),
        )
    });
    let results = futures::future::join_all(calls).await;
    let mut ids = std::collections::BTreeSet::new();
    let mut created = 0;
    for result in results {
        let (status, _, json) = result?;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status} {json}"
        );
        created += usize::from(status == StatusCode::CREATED);
        ids.insert(json["review_id"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(created, 1, "exactly one request created");
    assert_eq!(ids.len(), 1, "all answered with the same review");

    // The same key with a different body is a client error, not a new review.
    let other = json!({"user_id": 12, "movie_id": 40, "rating": 1.0}).to_string();
    let (s3, _, json) = h
        .call(Method::POST, "/v1/reviews", Some(&token), &key, Some(other))
        .await?;
    assert_eq!(s3, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
    assert_eq!(json["error"], "idempotency_key_reused");

    // A retried PUT writes one version.
    let uri = format!(
        "/v1/reviews/{}",
        first["review_id"].as_str().unwrap_or_default()
    );
    let edit = json!({"rating": 5.0, "text": "better"}).to_string();
    let put_key = [("idempotency-key", "edit-1")];
    let (p1, _, v2) = h
        .call(
            Method::PUT,
            &uri,
            Some(&token),
            &put_key,
            Some(edit.clone()),
        )
        .await?;
    let (p2, hp2, again) = h
        .call(Method::PUT, &uri, Some(&token), &put_key, Some(edit))
        .await?;
    assert_eq!((p1, p2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(v2["version"], 2);
    assert_eq!(again["version"], 2, "no third version");
    assert!(hp2.get("idempotent-replayed").is_some());

    let (_, _, page) = h
        .call(Method::GET, "/v1/users/12/reviews", None, &[], None)
        .await?;
    assert_eq!(page["reviews"].as_array().map(Vec::len), Some(2), "{page}");
    h.cleanup().await
}

/// A replay answers the replayed write's own result — its version and
/// content — even after someone else edited the review (Stripe-style keys):
/// the retrying client learns what *its* write did, not the current state.
#[tokio::test]
async fn a_replay_returns_the_original_result_not_the_current_state() -> anyhow::Result<()> {
    let h = Harness::new("rv_idem_orig").await?;
    let token = h.token("13", &[]);
    let admin = h.token("moderation-bot", &["admin"]);
    let body = json!({"user_id": 13, "movie_id": 42, "rating": 3.0, "text": "first"}).to_string();
    let post_key = [("idempotency-key", "create-13")];
    let (status, _, created) = h
        .call(
            Method::POST,
            "/v1/reviews",
            Some(&token),
            &post_key,
            Some(body.clone()),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let uri = format!(
        "/v1/reviews/{}",
        created["review_id"].as_str().unwrap_or_default()
    );

    let mine = json!({"rating": 5.0, "text": "mine"}).to_string();
    let put_key = [("idempotency-key", "edit-13")];
    let (status, _, original) = h
        .call(
            Method::PUT,
            &uri,
            Some(&token),
            &put_key,
            Some(mine.clone()),
        )
        .await?;
    assert_eq!(
        (status, original["version"].clone()),
        (StatusCode::OK, json!(2))
    );

    // Another client edits after it.
    let theirs = json!({"rating": 1.0, "text": "theirs"}).to_string();
    let (status, _, later) = h
        .call(Method::PUT, &uri, Some(&admin), &[], Some(theirs))
        .await?;
    assert_eq!(
        (status, later["version"].clone()),
        (StatusCode::OK, json!(3))
    );

    let (status, headers, replay) = h
        .call(Method::PUT, &uri, Some(&token), &put_key, Some(mine))
        .await?;
    assert_eq!(status, StatusCode::OK, "{replay}");
    assert_eq!(
        headers.get("idempotent-replayed").map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(replay, original, "the PUT replay is the PUT's own answer");
    assert_eq!(
        (&replay["version"], &replay["rating"], &replay["text"]),
        (&json!(2), &json!(5.0), &json!("mine"))
    );

    // The same for a keyed POST replayed after the edits: version 1 as created.
    let (status, _, replay) = h
        .call(
            Method::POST,
            "/v1/reviews",
            Some(&token),
            &post_key,
            Some(body),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{replay}");
    assert_eq!(replay, created, "the POST replay is the POST's own answer");

    // The review itself is still at the later edit.
    let (_, _, current) = h.call(Method::GET, &uri, None, &[], None).await?;
    assert_eq!(
        (&current["version"], &current["text"]),
        (&json!(3), &json!("theirs"))
    );
    h.cleanup().await
}
