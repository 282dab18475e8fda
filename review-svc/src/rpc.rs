//! The Avro RPC face of review-svc: `ReviewService` (protocols/review.avpr)
//! implemented over [`ReviewStore`]. The enricher calls it for delayed
//! materialization, so every answer is the review's *latest* version,
//! tombstones included (`deleted = true`, rating and text null). Generated
//! types stay in here; the rest of the crate speaks store types.

use std::collections::HashSet;
use std::sync::Arc;

use avro_rpc::codegen::HandlerError;
use avro_rpc::server::Responder;
use cinerec_service_kit::rpc::{self, RpcMetricsLayer};
use futures::{StreamExt, TryStreamExt};
use uuid::Uuid;

use crate::model::Review;
use crate::store::{ReviewStore, StoreError};

/// Types, client and server trait generated from `protocols/review.avpr`.
#[allow(missing_docs)]
pub mod proto {
    avro_rpc::include_protocol!("review_service");
}

use proto::{GetReviewError, GetReviewsError, InvalidArgument, NotFound};

/// Largest `getReviews` answered in one call (the protocol documents it);
/// larger requests are `InvalidArgument`.
pub const MAX_BATCH: usize = 1000;

/// Reads one `getReviews` call keeps in flight against Cassandra: each id is
/// its own partition, read token-aware from one of its replicas (a
/// multi-partition `IN` would make one coordinator wait for all of them).
pub const MULTI_GET_CONCURRENCY: usize = 64;

/// `ReviewService` over [`ReviewStore`].
#[derive(Debug, Clone)]
pub struct ReviewRpc {
    store: Arc<ReviewStore>,
}

impl ReviewRpc {
    /// Serves the reviews in `store`.
    pub fn new(store: Arc<ReviewStore>) -> ReviewRpc {
        ReviewRpc { store }
    }
}

/// The handler stack review-svc serves (service-kit's standard stack).
pub type Handler = rpc::Handler<proto::ReviewServiceServer<ReviewRpc>>;

/// The responder for `store`, with its metrics layer (the drain needs it).
pub fn responder(
    store: Arc<ReviewStore>,
) -> anyhow::Result<(Arc<Responder<Handler>>, RpcMetricsLayer)> {
    let server = proto::ReviewServiceServer::new(ReviewRpc::new(store));
    Ok(rpc::responder("review-svc", proto::protocol()?, server))
}

/// The wire form of a stored version.
pub fn to_wire(r: &Review) -> proto::Review {
    proto::Review {
        review_id: r.review_id.to_string(),
        version: r.version,
        user_id: r.user_id,
        movie_id: r.movie_id,
        rating: r.rating,
        text: r.text.clone(),
        deleted: r.deleted,
        created_at: r.created_at_us,
        changed_at: r.changed_at_us,
    }
}

fn parse_id(id: &str) -> Result<Uuid, InvalidArgument> {
    Uuid::try_parse(id).map_err(|e| InvalidArgument {
        reason: format!("review id {id:?} is not a UUID: {e}"),
    })
}

/// A store failure is a system error on the wire: both messages are
/// idempotent, so the client's retry layer may resend.
fn system<E>(e: StoreError) -> HandlerError<E> {
    tracing::warn!(error = %e, "review store failed answering an RPC");
    HandlerError::system(e)
}

impl proto::ReviewService for ReviewRpc {
    async fn get_review(
        &self,
        review_id: String,
    ) -> Result<proto::Review, HandlerError<GetReviewError>> {
        let id = parse_id(&review_id).map_err(|e| HandlerError::Declared(e.into()))?;
        match self.store.get(id).await.map_err(system)? {
            Some(review) => Ok(to_wire(&review)),
            None => Err(HandlerError::Declared(
                NotFound {
                    review_id: id.to_string(),
                }
                .into(),
            )),
        }
    }

    async fn get_reviews(
        &self,
        review_ids: Vec<String>,
    ) -> Result<proto::ReviewBatch, HandlerError<GetReviewsError>> {
        if review_ids.len() > MAX_BATCH {
            return Err(HandlerError::Declared(
                InvalidArgument {
                    reason: format!(
                        "{} review ids asked for, at most {MAX_BATCH} per call",
                        review_ids.len()
                    ),
                }
                .into(),
            ));
        }
        // Request order, first occurrence of each id (compared as UUIDs, so
        // two spellings of one id are one review).
        let mut seen = HashSet::with_capacity(review_ids.len());
        let mut ids = Vec::with_capacity(review_ids.len());
        for raw in &review_ids {
            let id = parse_id(raw).map_err(|e| HandlerError::Declared(e.into()))?;
            if seen.insert(id) {
                ids.push(id);
            }
        }
        let store = &self.store;
        let found: Vec<(Uuid, Option<Review>)> = futures::stream::iter(ids)
            .map(|id| async move { store.get(id).await.map(|r| (id, r)) })
            .buffered(MULTI_GET_CONCURRENCY)
            .try_collect()
            .await
            .map_err(system)?;
        let mut batch = proto::ReviewBatch {
            reviews: Vec::with_capacity(found.len()),
            missing: Vec::new(),
        };
        for (id, review) in found {
            match review {
                Some(review) => batch.reviews.push(to_wire(&review)),
                None => batch.missing.push(id.to_string()),
            }
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_go_on_the_wire_as_deleted() {
        let id = Uuid::new_v4();
        let wire = to_wire(&Review {
            review_id: id,
            version: 3,
            user_id: 7,
            movie_id: 9,
            rating: None,
            text: None,
            deleted: true,
            created_at_us: 10,
            changed_at_us: 20,
        });
        assert_eq!(wire.review_id, id.to_string());
        assert!(wire.deleted && wire.rating.is_none() && wire.text.is_none());
        assert_eq!(
            (wire.version, wire.created_at, wire.changed_at),
            (3, 10, 20)
        );
    }

    #[test]
    fn malformed_ids_are_invalid_arguments() {
        assert!(parse_id("not-a-uuid").is_err_and(|e| e.reason.contains("not a UUID")));
        assert!(parse_id("").is_err());
        let id = Uuid::new_v4();
        assert_eq!(parse_id(&id.to_string()).ok(), Some(id));
    }
}
