//! `GET /v1/users/{id}/reviews` lists a user's live reviews at their latest
//! versions, in pages, without deleted ones or other users' reviews.

mod common;

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use common::Harness;
use serde_json::json;

#[tokio::test]
async fn a_users_reviews_page_by_page_latest_versions_only() -> anyhow::Result<()> {
    let h = Harness::new("rv_list").await?;
    let token = h.token("90", &[]);
    let mut ids = BTreeSet::new();
    for movie in 1..=5 {
        let review = h.create(90, movie, 2.0, "first take").await?;
        ids.insert(review["review_id"].as_str().unwrap_or_default().to_owned());
    }
    h.create(91, 1, 5.0, "someone else").await?;
    let edited = ids.iter().next().cloned().unwrap_or_default();
    let deleted = ids.iter().last().cloned().unwrap_or_default();
    let (s1, _, _) = h
        .call(
            Method::PUT,
            &format!("/v1/reviews/{edited}"),
            Some(&token),
            &[],
            Some(json!({"rating": 5.0}).to_string()),
        )
        .await?;
    let (s2, _, _) = h
        .call(
            Method::DELETE,
            &format!("/v1/reviews/{deleted}"),
            Some(&token),
            &[],
            None,
        )
        .await?;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));

    let mut listed = Vec::new();
    let mut uri = "/v1/users/90/reviews?limit=2".to_owned();
    loop {
        let (status, _, page) = h.call(Method::GET, &uri, None, &[], None).await?;
        assert_eq!(status, StatusCode::OK, "{page}");
        listed.extend(page["reviews"].as_array().cloned().unwrap_or_default());
        match page["next_after"].as_str() {
            Some(after) => uri = format!("/v1/users/90/reviews?limit=2&after={after}"),
            None => break,
        }
    }
    let listed_ids: BTreeSet<String> = listed
        .iter()
        .map(|r| r["review_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let mut want = ids.clone();
    want.remove(&deleted);
    assert_eq!(listed_ids, want, "live reviews of user 90 only");
    assert_eq!(listed.len(), want.len(), "each once");
    for review in &listed {
        let latest = if review["review_id"] == edited.as_str() {
            (2, 5.0)
        } else {
            (1, 2.0)
        };
        assert_eq!(
            (review["version"].as_i64(), review["rating"].as_f64()),
            (Some(latest.0), Some(latest.1))
        );
        assert_eq!(review["user_id"], 90);
    }
    h.cleanup().await
}
