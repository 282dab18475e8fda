//! The public HTTP/JSON API (OpenAPI document: `openapi.json`, served at
//! `/openapi.json`).
//!
//! Every failure is a JSON `{"error": code, "reason": text}` with a 4xx or
//! 5xx status, produced in one place ([`ApiError`]) that also logs and
//! counts it. Writes need a bearer token whose subject is the review's
//! author (or the `admin` scope); reads are public.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::auth::{Authenticator, Principal};
use crate::directory::Directory;
use crate::model::{CreateReview, EditReview, MAX_BODY_BYTES, Review};
use crate::recommendations::{Recommendations, RecommendationsError};
use crate::store::{MAX_LIST, ReviewStore, StoreError};
use crate::telemetry;

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");
/// The request header carrying an idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The response header saying a write was answered from an earlier one.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;
/// Default page size of a user's reviews.
pub const DEFAULT_LIST: i32 = 50;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Reviews.
    pub store: Arc<ReviewStore>,
    /// Token checks.
    pub auth: Arc<Authenticator>,
    /// User/movie existence.
    pub directory: Arc<dyn Directory>,
}

/// The API router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/v1/reviews", axum::routing::post(create))
        .route("/v1/reviews/{id}", get(get_review).put(edit).delete(delete))
        .route("/v1/users/{id}/reviews", get(list_by_user))
        .route("/v1/users/{id}/recommendations", get(recommendations))
        // Even a wrong path or method answers in the API's JSON error shape.
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies above the limit are cut off while streaming, before they are
        // buffered; the handler turns the rejection into a JSON 413.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A failed request, as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    /// What the client reads: our words only.
    reason: String,
    /// What only the log gets (a driver's or a dependency's error text).
    detail: Option<String>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        reason: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            reason: reason.into(),
            detail: None,
        }
    }

    /// Adds text for the log that the client must not see.
    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> ApiError {
        self.detail = Some(detail.into());
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            telemetry::request_failed(self.code, &self.detail.as_deref().unwrap_or(&self.reason));
        } else {
            telemetry::request_rejected(
                self.code,
                self.status.as_u16(),
                self.detail.as_deref().unwrap_or(&self.reason),
            );
        }
        let body = serde_json::json!({ "error": self.code, "reason": self.reason });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let status = match &e {
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::Deleted(_) => StatusCode::GONE,
            StoreError::Forbidden => StatusCode::FORBIDDEN,
            StoreError::IdempotencyConflict => StatusCode::UNPROCESSABLE_ENTITY,
            StoreError::Busy(_) => StatusCode::CONFLICT,
            StoreError::Database(_) | StoreError::Corrupt(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let code = match &e {
            StoreError::NotFound(_) => "not_found",
            StoreError::Deleted(_) => "deleted",
            StoreError::Forbidden => "forbidden",
            StoreError::IdempotencyConflict => "idempotency_key_reused",
            StoreError::Busy(_) => "write_conflict",
            StoreError::Database(_) => "database_unavailable",
            StoreError::Corrupt(_) => "stored_data_malformed",
        };
        match e {
            // Driver text names hosts, statements and internals: it goes to
            // the log, the client gets our words.
            StoreError::Database(detail) => {
                ApiError::new(status, code, "the review store is unavailable; retry later")
                    .with_detail(detail)
            }
            StoreError::Corrupt(detail) => ApiError::new(
                status,
                code,
                "a stored review could not be read (malformed row)",
            )
            .with_detail(detail),
            other => ApiError::new(status, code, other.to_string()),
        }
    }
}

pub(crate) fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default());
    state
        .auth
        .authenticate(value)
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", e.to_string()))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    let ok = !key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY
        && key.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_idempotency_key",
            format!("Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        ));
    }
    Ok(Some(key.to_owned()))
}

/// Parses a JSON body, mapping each way it can be wrong to its own code.
fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json",
        ));
    }
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request body exceeds {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                "the request body could not be read to its end",
            )
            .with_detail(e.body_text())
        }
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", e.to_string()))
}

/// The `{id}` path segment, or our 400 when axum cannot decode it (say,
/// percent-encoded bytes that are not UTF-8): axum's own answer would be
/// plain text, outside the contract, and counted nowhere.
pub(crate) fn path_segment(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    id.map(|Path(id)| id).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_path",
            "the path's id segment is not valid percent-encoded UTF-8",
        )
        .with_detail(e.body_text())
    })
}

fn review_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_review_id",
            "review id must be a UUID",
        )
    })
}

fn invalid(e: crate::model::Invalid) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string())
}

fn written(status: StatusCode, review: Review, replayed: bool) -> Response {
    let mut response = (status, axum::Json(review)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

async fn no_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        "no such endpoint; see /openapi.json",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint; see /openapi.json",
    )
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let principal = authenticate(&state, &headers)?;
    let request: CreateReview = json_body(&headers, body)?;
    let key = idempotency_key(&headers)?;
    let content = request.validate().map_err(invalid)?;
    if !principal.may_act_for(request.user_id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the token's subject is not user_id",
        ));
    }
    let unavailable = |e: crate::directory::DirectoryError| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "directory_unavailable",
            e.to_string(),
        )
    };
    let (user, movie) = tokio::join!(
        state.directory.user_exists(request.user_id),
        state.directory.movie_exists(request.movie_id)
    );
    if !user.map_err(unavailable)? {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_user",
            format!("user {} does not exist", request.user_id),
        ));
    }
    if !movie.map_err(unavailable)? {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_movie",
            format!("movie {} does not exist", request.movie_id),
        ));
    }
    let outcome = state
        .store
        .create(request.user_id, request.movie_id, content, key.as_deref())
        .await?;
    let status = if outcome.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(written(status, outcome.review, outcome.replayed))
}

async fn edit(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = path_segment(id)?;
    let principal = authenticate(&state, &headers)?;
    let id = review_id(&id)?;
    let request: EditReview = json_body(&headers, body)?;
    let key = idempotency_key(&headers)?;
    let content = request.validate().map_err(invalid)?;
    let outcome = state
        .store
        .update(id, Some(content), key.as_deref(), |author| {
            principal.may_act_for(author)
        })
        .await?;
    Ok(written(StatusCode::OK, outcome.review, outcome.replayed))
}

async fn delete(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = path_segment(id)?;
    let principal = authenticate(&state, &headers)?;
    let id = review_id(&id)?;
    let key = idempotency_key(&headers)?;
    let outcome = state
        .store
        .update(id, None, key.as_deref(), |author| {
            principal.may_act_for(author)
        })
        .await?;
    Ok(written(StatusCode::OK, outcome.review, outcome.replayed))
}

async fn get_review(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_segment(id)?;
    let id = review_id(&id)?;
    match state.store.get(id).await? {
        None => Err(StoreError::NotFound(id).into()),
        // A tombstone answers 410 with its body: clients learn the version.
        Some(review) if review.deleted => {
            Ok((StatusCode::GONE, axum::Json(review)).into_response())
        }
        Some(review) => Ok(axum::Json(review).into_response()),
    }
}

/// Query of `GET /v1/users/{id}/reviews`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i32>,
    after: Option<Uuid>,
}

async fn list_by_user(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let id = path_segment(id)?;
    let user_id = crate::model::canonical_id(&id).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_id",
            "user id must be a positive integer in canonical decimal (digits only, no sign or leading zero)",
        )
    })?;
    let Query(query) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!("query takes only limit (1-{MAX_LIST}) and after (a review id)"),
        )
        .with_detail(e.body_text())
    })?;
    let limit = query.limit.unwrap_or(DEFAULT_LIST);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!("limit must be 1-{MAX_LIST}"),
        ));
    }
    let (reviews, next) = state
        .store
        .list_by_user(user_id, query.after, limit)
        .await?;
    Ok(axum::Json(serde_json::json!({ "reviews": reviews, "next_after": next })).into_response())
}

impl From<RecommendationsError> for ApiError {
    fn from(e: RecommendationsError) -> ApiError {
        let code = match &e {
            RecommendationsError::TableMissing(_) => "recommendations_unavailable",
            RecommendationsError::Database(_) => "database_unavailable",
            RecommendationsError::Malformed(_) => "stored_data_malformed",
        };
        let reason = match &e {
            RecommendationsError::TableMissing(_) => e.to_string(),
            RecommendationsError::Database(_) => {
                "the recommendations store is unavailable; retry later".to_owned()
            }
            RecommendationsError::Malformed(row) => {
                format!(
                    "the stored recommendations of user {} are malformed",
                    row.key
                )
            }
        };
        // The driver's or the row's own text goes to the log only.
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, reason).with_detail(e.to_string())
    }
}

/// The handler. The reader comes as an extension the binary adds (built from
/// `--recommendations-keyspace`); a router without it answers 503.
///
/// Unlike reviews (public, like on any review site), recommendations are
/// derived from what the user likes and so reveal their taste: only the user
/// (the token's subject) or an admin may read them — 401 without a valid
/// token, 403 for someone else's.
pub async fn recommendations(
    State(state): State<AppState>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    reader: Option<Extension<Arc<Recommendations>>>,
) -> Result<Response, ApiError> {
    let principal = authenticate(&state, &headers)?;
    let id = path_segment(id)?;
    let user_id = crate::model::canonical_id(&id).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_id",
            "user id must be a positive integer in canonical decimal (digits only, no sign or leading zero)",
        )
    })?;
    if !principal.may_act_for(user_id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the user or an admin may read a user's recommendations",
        ));
    }
    let Some(Extension(reader)) = reader else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "recommendations_unavailable",
            "this server has no recommendations keyspace configured",
        ));
    };
    match reader.get(user_id).await? {
        Some(found) => Ok(axum::Json(found).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_recommendations",
            format!("user {user_id} has no recommendations yet"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_documents_every_refusal_an_operation_can_answer() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).expect("valid JSON");
        // POST answers 409 write_conflict when a keyed create stays busy.
        assert!(doc["paths"]["/v1/reviews"]["post"]["responses"]["409"].is_object());
        // The server's own refusals apply to every operation.
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            let methods = ["get", "put", "post", "delete"];
            for (method, op) in ops
                .as_object()
                .expect("operations")
                .iter()
                .filter(|(m, _)| methods.contains(&m.as_str()))
            {
                for status in ["408", "431", "503"] {
                    assert!(
                        op["responses"][status].is_object(),
                        "{method} {path} documents {status}"
                    );
                }
            }
        }
    }

    #[test]
    fn store_failures_do_not_show_driver_text() {
        let driver = "Connection broken: 10.0.0.7:9042 ConnectionPool BrokenPipe";
        for e in [
            StoreError::Database(driver.into()),
            StoreError::Corrupt(driver.into()),
        ] {
            let api = ApiError::from(e);
            assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
            assert!(!api.reason.contains("10.0.0.7"), "{}", api.reason);
            assert_eq!(api.detail.as_deref(), Some(driver), "kept for the log");
        }
    }
}
