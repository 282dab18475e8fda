//! Every invalid request is refused with its own 4xx status, a JSON
//! `{error, reason}`, and a count in `review_svc_requests_rejected_total`;
//! nothing is stored.

mod common;

use axum::http::{Method, StatusCode};
use common::{Harness, rejected};
use serde_json::json;

/// method, uri, content type, body, extra headers, expected status and code.
type Case = (
    Method,
    String,
    &'static str,
    String,
    Vec<(&'static str, &'static str)>,
    StatusCode,
    &'static str,
);

#[tokio::test]
async fn each_invalid_request_gets_its_4xx_reason_and_metric() -> anyhow::Result<()> {
    let h = Harness::new("rv_valid").await?;
    let token = h.token("5", &[]);
    let ok_review = || json!({"user_id": 5, "movie_id": 9, "rating": 3.5, "text": "fine"});
    let with = |field: &str, value: serde_json::Value| {
        let mut body = ok_review();
        body[field] = value;
        body.to_string()
    };
    let created = h.create(5, 9, 3.5, "fine").await?;
    let id = created["review_id"].as_str().unwrap_or_default().to_owned();
    let put_uri = format!("/v1/reviews/{id}");

    // (method, uri, content-type, body, extra headers, status, code)
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/v1/reviews".into(),
            "application/json",
            with("rating", json!(0.0)),
            vec![],
            StatusCode::UNPROCESSABLE_ENTITY,
            "rating_out_of_range",
        ),
        (
            Method::POST,
            "/v1/reviews".into(),
            "application/json",
            with("rating", json!(5.5)),
            vec![],
            StatusCode::UNPROCESSABLE_ENTITY,
            "rating_out_of_range",
        ),
        (
            Method::POST,
            "/v1/reviews".into(),
            "application/json",
            with("rating", json!(3.3)),
            vec![],
            StatusCode::UNPROCESSABLE_ENTITY,
            "rating_not_half_step",
        ),
        (
            Method::POST,
            "/v1/reviews".into(),
            "application/json",
            with("text", json!("x".repeat(4097))),
            vec![],
            StatusCode::UNPROCESSABLE_ENTITY,
            "text_too_long",
        ),
        (
            Method::POST,
            "/v1/reviews".into(),
            "application/json",
            with("movie_id", json!(0)),
            vec![],
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_id",
        ),
        (
            Method::POST,
            "/v1/reviews".into(),
            "application/json",
            with("movie_id", json!(common::CATALOG_SIZE + 1)),
            vec![],
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_movie",
        ),
        (
            Method::POST,
            "/v1/reviews".into(),
            "application/json",
            with("stars", json!(5)),
            vec![],
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Method::POST,
            "/v1/reviews".into(),
            "application/json",
            "{\"user_id\": 5,".into(),
            vec![],
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Method::POST,
            "/v1/reviews".into(),
            "application/json",
            with("rating", json!("four")),
            vec![],
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Method::POST,
            "/v1/reviews".into(),
            "text/plain",
            ok_review().to_string(),
            vec![],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            "/v1/reviews".into(),
            "application/json",
            format!(
                "{{\"user_id\":5,\"movie_id\":9,\"rating\":3.0,\"text\":\"{}\"}}",
                "y".repeat(17 * 1024)
            ),
            vec![],
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            Method::POST,
            "/v1/reviews".into(),
            "application/json",
            ok_review().to_string(),
            vec![("idempotency-key", "")],
            StatusCode::BAD_REQUEST,
            "bad_idempotency_key",
        ),
        (
            Method::PUT,
            put_uri.clone(),
            "application/json",
            json!({"rating": 6.0}).to_string(),
            vec![],
            StatusCode::UNPROCESSABLE_ENTITY,
            "rating_out_of_range",
        ),
        (
            Method::PUT,
            put_uri.clone(),
            "application/json",
            json!({"rating": 4.0, "movie_id": 3}).to_string(),
            vec![],
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Method::PUT,
            "/v1/reviews/not-a-uuid".into(),
            "application/json",
            json!({"rating": 4.0}).to_string(),
            vec![],
            StatusCode::BAD_REQUEST,
            "bad_review_id",
        ),
        (
            Method::PUT,
            format!("/v1/reviews/{}", uuid::Uuid::new_v4()),
            "application/json",
            json!({"rating": 4.0}).to_string(),
            vec![],
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/v2/reviews".into(),
            "application/json",
            String::new(),
            vec![],
            StatusCode::NOT_FOUND,
            "no_route",
        ),
        (
            Method::PATCH,
            put_uri.clone(),
            "application/json",
            json!({"rating": 4.0}).to_string(),
            vec![],
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::GET,
            "/v1/users/abc/reviews".into(),
            "application/json",
            String::new(),
            vec![],
            StatusCode::BAD_REQUEST,
            "bad_id",
        ),
        (
            Method::PUT,
            "/v1/reviews/%FF%FE".into(),
            "application/json",
            json!({"rating": 4.0}).to_string(),
            vec![],
            StatusCode::BAD_REQUEST,
            "bad_path",
        ),
        (
            Method::GET,
            "/v1/users/%C3/reviews".into(),
            "application/json",
            String::new(),
            vec![],
            StatusCode::BAD_REQUEST,
            "bad_path",
        ),
        (
            Method::GET,
            "/v1/users/+5/reviews".into(),
            "application/json",
            String::new(),
            vec![],
            StatusCode::BAD_REQUEST,
            "bad_id",
        ),
        (
            Method::GET,
            "/v1/users/05/reviews".into(),
            "application/json",
            String::new(),
            vec![],
            StatusCode::BAD_REQUEST,
            "bad_id",
        ),
        (
            Method::GET,
            "/v1/users/+5/recommendations".into(),
            "application/json",
            String::new(),
            vec![],
            StatusCode::BAD_REQUEST,
            "bad_id",
        ),
        (
            Method::GET,
            "/v1/users/5/reviews?limit=1000".into(),
            "application/json",
            String::new(),
            vec![],
            StatusCode::BAD_REQUEST,
            "bad_query",
        ),
    ];
    for (method, uri, content_type, body, extra, status, code) in cases {
        let mut headers = vec![("content-type", content_type)];
        headers.extend(extra);
        let body = (!body.is_empty()).then_some(body);
        let before = rejected(code);
        let (got, _, json) = h
            .call(method.clone(), &uri, Some(&token), &headers, body)
            .await?;
        assert_eq!(got, status, "{method} {uri} → {json}");
        assert_eq!(json["error"], code, "{method} {uri} → {json}");
        assert!(
            json["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "a reason for {code}: {json}"
        );
        // This test is alone in its binary, so nothing else moves the counter.
        assert_eq!(
            rejected(code) - before,
            1.0,
            "{method} {uri}: review_svc_requests_rejected_total{{code=\"{code}\"}} +1"
        );
    }

    // An unknown user (an admin token, so authorisation is not what fails).
    let admin = h.token("ops", &["admin"]);
    let before = rejected("unknown_user");
    let (status, _, json) = h
        .call(
            Method::POST,
            "/v1/reviews",
            Some(&admin),
            &[],
            Some(with("user_id", json!(common::CATALOG_SIZE + 1))),
        )
        .await?;
    assert_eq!(
        (status, json["error"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("unknown_user"))
    );
    assert_eq!(rejected("unknown_user") - before, 1.0);

    // Nothing of the above was stored: the user still has one review, at v1.
    let (_, _, page) = h
        .call(Method::GET, "/v1/users/5/reviews", None, &[], None)
        .await?;
    assert_eq!(page["reviews"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["reviews"][0]["version"], 1);
    h.cleanup().await
}
