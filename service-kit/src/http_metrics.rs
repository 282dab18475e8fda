//! Prometheus metrics of an axum HTTP server, per route template (never the
//! raw path, whose ids would make one series per resource):
//!
//! * `cinerec_http_server_requests_total{method, route, status}` — `status`
//!   is the class (`2xx`, `4xx`, `5xx` …);
//! * `cinerec_http_server_duration_seconds{method, route}` — until the
//!   response head is ready.
//!
//! `route` is axum's `MatchedPath` (`/v1/reviews/{id}`), or `unmatched` for
//! the fallback; `method` is one of the standard methods or `other`, so a
//! client cannot mint new series.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Counter of requests by method, route and status class.
pub const REQUESTS_TOTAL: &str = "cinerec_http_server_requests_total";
/// Histogram of request latency by method and route.
pub const DURATION_SECONDS: &str = "cinerec_http_server_duration_seconds";

/// Axum middleware recording the metrics above. Layer it on the `Router`
/// (`router.layer(axum::middleware::from_fn(http_server_metrics))`), so it
/// runs after routing and sees the matched route.
pub async fn http_server_metrics(request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::histogram!(DURATION_SECONDS, "method" => method, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(REQUESTS_TOTAL, "method" => method, "route" => route,
        "status" => status_class(response.status()))
    .increment(1);
    response
}

fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_class(status: http::StatusCode) -> &'static str {
    match status.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_counted_by_route_template_and_status_class() {
        use tower::ServiceExt as _;
        let handle = crate::telemetry::metrics_handle();
        let app = axum::Router::new()
            .route(
                "/metrics-test/{id}",
                axum::routing::get(|| async { "found" }),
            )
            .layer(axum::middleware::from_fn(http_server_metrics));
        for path in [
            "/metrics-test/1",
            "/metrics-test/2",
            "/nowhere-metrics-test",
        ] {
            let request = Request::builder()
                .uri(path)
                .body(axum::body::Body::empty())
                .expect("a valid request");
            app.clone().oneshot(request).await.expect("infallible");
        }
        let text = handle.render();
        let value = |line: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(line))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        assert_eq!(
            value(
                r#"cinerec_http_server_requests_total{method="GET",route="/metrics-test/{id}",status="2xx"}"#
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            value(
                r#"cinerec_http_server_duration_seconds_count{method="GET",route="/metrics-test/{id}"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                r#"cinerec_http_server_requests_total{method="GET",route="unmatched",status="4xx"}"#
            ),
            Some(1.0)
        );
        // The raw path never becomes a label.
        assert!(!text.contains("/metrics-test/1"), "{text}");
        assert!(!text.contains("/nowhere-metrics-test"), "{text}");
    }

    #[test]
    fn labels_stay_within_a_fixed_set() {
        assert_eq!(method_label(&http::Method::POST), "POST");
        let custom = http::Method::from_bytes(b"BREW").expect("a valid token");
        assert_eq!(method_label(&custom), "other");
        assert_eq!(status_class(http::StatusCode::CREATED), "2xx");
        assert_eq!(status_class(http::StatusCode::NOT_FOUND), "4xx");
        assert_eq!(status_class(http::StatusCode::SERVICE_UNAVAILABLE), "5xx");
    }
}
