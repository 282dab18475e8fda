//! `GET /v1/users/{id}/recommendations` against the real Cassandra: before
//! the recommender created its table → 503 with a reason naming the table
//! (no driver text); then a row written in the recommender's table layout is
//! served with model/trending sources and an RFC 3339 time; a user without a
//! row → 404; bad ids → 400; a malformed row → 503; only the user's own
//! token or admin scope may read (401 without a token, 403 for another user).

mod common;

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use cinerec_tests::unique_name;
use common::Harness;
use review_svc::recommendations::{Recommendations, RecommendationsArgs};
use scylla::statement::Consistency;
use serde_json::json;
use tower::ServiceExt;

async fn get(
    app: &axum::Router,
    uri: &str,
    token: Option<&str>,
) -> anyhow::Result<(StatusCode, serde_json::Value)> {
    let mut request = Request::get(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app.clone().oneshot(request.body(Body::empty())?).await?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    Ok((status, serde_json::from_slice(&bytes)?))
}

#[tokio::test]
async fn serves_the_recommenders_rows() -> anyhow::Result<()> {
    let h = Harness::new("rv_recs").await?;
    let ks = unique_name("rv_recs_recommender");
    let session = h.store.session().clone();
    let reader = Recommendations::new(
        session.clone(),
        &RecommendationsArgs {
            recommendations_keyspace: ks.clone(),
        },
        Consistency::LocalQuorum,
    )
    .map_err(anyhow::Error::msg)?;
    let app = h.app.clone().layer(Extension(Arc::new(reader)));
    let token = h.token("42", &[]);

    // The recommender never ran: no keyspace, no table.
    let (status, body) = get(&app, "/v1/users/42/recommendations", Some(&token)).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "recommendations_unavailable");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!("{ks}.recommendations_by_user does not exist")),
        "{reason}"
    );
    assert!(
        !reason.contains("Invalid") && !reason.contains("unconfigured"),
        "no driver text: {reason}"
    );

    // The recommender's table, as its contract defines it.
    for cql in [
        format!(
            "CREATE KEYSPACE {ks} WITH replication = \
             {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        ),
        format!(
            "CREATE TABLE {ks}.recommendations_by_user (user_id bigint PRIMARY KEY, \
             movie_ids list<bigint>, scores list<double>, from_model int, computed_at bigint)"
        ),
    ] {
        session.query_unpaged(cql, &[]).await?;
    }
    session.await_schema_agreement().await?;
    let insert = format!(
        "INSERT INTO {ks}.recommendations_by_user (user_id, movie_ids, scores, from_model, \
         computed_at) VALUES (?, ?, ?, ?, ?)"
    );
    session
        .query_unpaged(
            insert.as_str(),
            (
                42_i64,
                vec![5_i64, 9, 3],
                vec![1.5_f64, 0.75, 0.0],
                2_i32,
                1_700_000_000_123_456_i64,
            ),
        )
        .await?;

    let (status, body) = get(&app, "/v1/users/42/recommendations", Some(&token)).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "user_id": 42,
            "items": [
                {"movie_id": 5, "score": 1.5, "source": "model"},
                {"movie_id": 9, "score": 0.75, "source": "model"},
                {"movie_id": 3, "score": 0.0, "source": "trending"},
            ],
            "computed_at": "2023-11-14T22:13:20.123456Z",
        })
    );

    // They reveal the user's taste: the user's own token or admin scope only.
    let admin = h.token("ops", &["admin"]);
    let (status, as_admin) = get(&app, "/v1/users/42/recommendations", Some(&admin)).await?;
    assert_eq!((status, &as_admin), (StatusCode::OK, &body));
    let (status, anonymous) = get(&app, "/v1/users/42/recommendations", None).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{anonymous}");
    assert_eq!(anonymous["error"], "unauthenticated");
    let (status, other) = get(
        &app,
        "/v1/users/42/recommendations",
        Some(&h.token("43", &[])),
    )
    .await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{other}");
    assert_eq!(other["error"], "forbidden");

    let (status, body) = get(
        &app,
        "/v1/users/43/recommendations",
        Some(&h.token("43", &[])),
    )
    .await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "no_recommendations");
    assert_eq!(body["reason"], "user 43 has no recommendations yet");

    for bad in ["abc", "0", "-4", "99999999999999999999"] {
        let (status, body) = get(
            &app,
            &format!("/v1/users/{bad}/recommendations"),
            Some(&admin),
        )
        .await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"], "bad_id");
    }

    session
        .query_unpaged(
            insert.as_str(),
            (44_i64, vec![1_i64, 2], vec![1.0_f64], 1_i32, 0_i64),
        )
        .await?;
    let (status, body) = get(&app, "/v1/users/44/recommendations", Some(&admin)).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "stored_data_malformed");

    // A router the binary did not give a reader to says so.
    let (status, body) = get(&h.app, "/v1/users/42/recommendations", Some(&admin)).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "recommendations_unavailable");

    let metrics = common::metrics_text();
    for code in [
        "no_recommendations",
        "bad_id",
        "recommendations_unavailable",
        "stored_data_malformed",
    ] {
        assert!(
            metrics.contains(&format!("code=\"{code}\"")),
            "{code} counted: {metrics}"
        );
    }

    let (_, openapi) = get(&app, "/openapi.json", None).await?;
    assert!(
        openapi["paths"]["/v1/users/{id}/recommendations"]["get"].is_object(),
        "documented in /openapi.json"
    );

    // The table dropped under a running reader (keyspace reset): 503 again.
    session
        .query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
        .await?;
    let (status, body) = get(&app, "/v1/users/42/recommendations", Some(&token)).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "recommendations_unavailable", "{body}");
    h.cleanup().await
}
