//! `ReviewService` over real Avro RPC, socket and HTTP transports, against
//! the stack's Cassandra: a review created and edited twice through the API
//! answers its latest version; a deleted one answers its tombstone; the
//! multi-get keeps request order, drops duplicates and lists the missing;
//! oversized batches are `InvalidArgument`; malformed ids never reach the
//! store (refused by the uuid logical type on either side); the server
//! stops cleanly.

mod common;

use avro_rpc::codegen::CallError;
use avro_rpc::transport::http::HttpTransport;
use avro_rpc::transport::socket::SocketTransport;
use axum::http::{Method, StatusCode};
use cinerec_service_kit::Shutdown;
use cinerec_service_kit::rpc::{RpcAddrs, RpcListeners};
use common::Harness;
use review_svc::rpc::proto::{GetReviewError, GetReviewsError, ReviewServiceClient};

struct Running {
    addrs: RpcAddrs,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(h: &Harness) -> anyhow::Result<Running> {
    let (responder, metrics) = review_svc::rpc::responder(h.store.clone())?;
    let listeners = RpcListeners::bind(RpcAddrs {
        socket: "127.0.0.1:0".parse()?,
        http: "127.0.0.1:0".parse()?,
    })
    .await?;
    let addrs = listeners.local_addrs()?;
    let shutdown = Shutdown::new();
    let task = listeners.serve(responder, metrics, shutdown.clone());
    Ok(Running {
        addrs,
        shutdown,
        task,
    })
}

async fn clients(addrs: RpcAddrs) -> anyhow::Result<Vec<(&'static str, ReviewServiceClient)>> {
    Ok(vec![
        (
            "socket",
            ReviewServiceClient::new(SocketTransport::connect(addrs.socket).await?)?,
        ),
        (
            "http",
            ReviewServiceClient::new(HttpTransport::new(&format!("http://{}/", addrs.http))?)?,
        ),
    ])
}

fn id_of(review: &serde_json::Value) -> anyhow::Result<String> {
    review["review_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no review_id in {review}"))
}

/// PUTs new content as the author; returns the answered version.
async fn edit(h: &Harness, id: &str, user: i64, rating: f64, text: &str) -> anyhow::Result<i64> {
    let body = serde_json::json!({"rating": rating, "text": text});
    let (status, _, json) = h
        .call(
            Method::PUT,
            &format!("/v1/reviews/{id}"),
            Some(&h.token(&user.to_string(), &[])),
            &[],
            Some(body.to_string()),
        )
        .await?;
    anyhow::ensure!(status == StatusCode::OK, "edit: {status} {json}");
    json["version"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no version in {json}"))
}

#[tokio::test]
async fn latest_versions_tombstones_and_missing_over_both_transports() -> anyhow::Result<()> {
    let h = Harness::new("rv_rpc").await?;
    let server = start(&h).await?;

    let user = 41;
    let edited = h.create(user, 7, 2.0, "first").await?;
    let edited_id = id_of(&edited)?;
    let v2 = edit(&h, &edited_id, user, 3.5, "second").await?;
    let v3 = edit(&h, &edited_id, user, 4.5, "third").await?;
    assert!(1 < v2 && v2 < v3, "versions increase: 1, {v2}, {v3}");

    let deleted = h.create(user, 8, 1.0, "to be deleted").await?;
    let deleted_id = id_of(&deleted)?;
    let (status, _, tombstone) = h
        .call(
            Method::DELETE,
            &format!("/v1/reviews/{deleted_id}"),
            Some(&h.token(&user.to_string(), &[])),
            &[],
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "delete: {tombstone}");

    let plain = h.create(user + 1, 9, 5.0, "untouched").await?;
    let plain_id = id_of(&plain)?;
    let unknown = uuid::Uuid::new_v4().to_string();

    for (transport, client) in clients(server.addrs).await? {
        let r = client.get_review(edited_id.clone()).await?;
        assert_eq!(r.review_id, edited_id, "{transport}");
        assert_eq!(r.version, v3, "{transport}: the latest version");
        assert_eq!(r.rating, Some(4.5), "{transport}");
        assert_eq!(r.text.as_deref(), Some("third"), "{transport}");
        assert!(!r.deleted, "{transport}");
        assert_eq!((r.user_id, r.movie_id), (user, 7), "{transport}");
        assert!(
            r.created_at > 0 && r.changed_at > r.created_at,
            "{transport}: {r:?}"
        );

        let t = client.get_review(deleted_id.clone()).await?;
        assert!(t.deleted, "{transport}: a tombstone, not NotFound");
        assert_eq!(t.rating, None, "{transport}");
        assert_eq!(t.text, None, "{transport}");
        assert_eq!(
            Some(t.version),
            tombstone["version"].as_i64(),
            "{transport}"
        );

        match client.get_review(unknown.clone()).await {
            Err(CallError::Declared(GetReviewError::NotFound(e))) => {
                assert_eq!(e.review_id, unknown, "{transport}")
            }
            other => panic!("{transport}: expected NotFound, got {other:?}"),
        }

        // Request order, duplicates (also in upper case) answered once,
        // unknown ids listed once in `missing`.
        let batch = client
            .get_reviews(vec![
                plain_id.clone(),
                unknown.clone(),
                deleted_id.clone(),
                plain_id.to_uppercase(),
                edited_id.clone(),
                unknown.clone(),
            ])
            .await?;
        let ids: Vec<&str> = batch.reviews.iter().map(|r| r.review_id.as_str()).collect();
        assert_eq!(
            ids,
            vec![plain_id.as_str(), deleted_id.as_str(), edited_id.as_str()],
            "{transport}"
        );
        assert_eq!(batch.missing, vec![unknown.clone()], "{transport}");
        let versions: Vec<(i64, bool)> = batch
            .reviews
            .iter()
            .map(|r| (r.version, r.deleted))
            .collect();
        assert_eq!(versions[0], (1, false), "{transport}");
        assert!(versions[1].1, "{transport}: the tombstone");
        assert_eq!(versions[2], (v3, false), "{transport}: the latest version");

        let empty = client.get_reviews(Vec::new()).await?;
        assert!(
            empty.reviews.is_empty() && empty.missing.is_empty(),
            "{transport}"
        );
    }

    server.shutdown.trigger();
    server.task.await??;
    h.cleanup().await
}

/// `protocols/review.avpr` with the `uuid` logical type dropped: what a peer
/// that does not validate UUIDs (Java without the UUID conversion) speaks.
/// Same wire encoding, different handshake hash.
fn lenient_protocol() -> anyhow::Result<avro_rpc::Protocol> {
    let text = review_svc::rpc::proto::PROTOCOL_TEXT.replace(
        r#"{"type": "string", "logicalType": "uuid"}"#,
        r#""string""#,
    );
    anyhow::ensure!(!text.contains("uuid\""), "every uuid replaced");
    Ok(avro_rpc::Protocol::parse(&text)?)
}

#[tokio::test]
async fn malformed_ids_and_oversized_batches_are_refused() -> anyhow::Result<()> {
    use avro_rpc::export::apache_avro::types::Value;
    use review_svc::rpc::proto::ReviewService;

    let h = Harness::new("rv_rpc_bad").await?;
    let server = start(&h).await?;
    let existing = id_of(&h.create(5, 5, 3.0, "here").await?)?;

    for (transport, client) in clients(server.addrs).await? {
        // The contract types ids as uuid: the generated client refuses to
        // send a malformed one at all.
        match client.get_review("not-a-uuid".into()).await {
            Err(CallError::Rpc(e)) => assert_eq!(e.kind(), avro_rpc::Kind::Encode, "{transport}"),
            other => panic!("{transport}: expected an encode error, got {other:?}"),
        }
        match client.get_review(uuid::Uuid::nil().to_string()).await {
            Err(CallError::Declared(GetReviewError::NotFound(_))) => {}
            other => panic!("{transport}: expected NotFound, got {other:?}"),
        }
        let too_many: Vec<String> = (0..=review_svc::rpc::MAX_BATCH)
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect();
        match client.get_reviews(too_many).await {
            Err(CallError::Declared(GetReviewsError::InvalidArgument(e))) => {
                assert!(
                    e.reason.contains("at most 1000"),
                    "{transport}: {}",
                    e.reason
                )
            }
            other => panic!("{transport}: expected InvalidArgument, got {other:?}"),
        }
        // Exactly the limit is answered.
        let at_limit: Vec<String> = std::iter::once(existing.clone())
            .chain((1..review_svc::rpc::MAX_BATCH).map(|_| uuid::Uuid::new_v4().to_string()))
            .collect();
        let batch = client.get_reviews(at_limit).await?;
        assert_eq!(batch.reviews.len(), 1, "{transport}");
        assert_eq!(
            batch.missing.len(),
            review_svc::rpc::MAX_BATCH - 1,
            "{transport}"
        );
        // The connection survives declared errors.
        assert_eq!(client.get_review(existing.clone()).await?.version, 1);
    }

    // A peer that sends a malformed id anyway: the server's decoder (uuid
    // logical type) refuses the parameters before any handler runs, so the
    // answer is a system error naming them, and the server keeps serving.
    let lenient = avro_rpc::Client::new(
        lenient_protocol()?,
        SocketTransport::connect(server.addrs.socket).await?,
    );
    let params = Value::Record(vec![(
        "review_id".into(),
        Value::String("not-a-uuid".into()),
    )]);
    let reply = lenient
        .call(avro_rpc::Call::new(&lenient, "getReview", &params)?)
        .await?;
    match reply.result {
        Err(avro_rpc::RemoteError::System(reason)) => {
            assert!(reason.contains("bad parameters for getReview"), "{reason}")
        }
        other => panic!("expected a system error, got {other:?}"),
    }
    // The server still serves (a new connection, the typed client).
    let (_, client) = clients(server.addrs).await?.remove(0);
    assert_eq!(client.get_review(existing.clone()).await?.version, 1);

    // Were a malformed id ever to reach the handler (a codec that passes
    // the string through), it answers the declared InvalidArgument.
    let handler = review_svc::rpc::ReviewRpc::new(h.store.clone());
    match handler.get_review("not-a-uuid".into()).await {
        Err(avro_rpc::codegen::HandlerError::Declared(GetReviewError::InvalidArgument(e))) => {
            assert!(e.reason.contains("not a UUID"), "{}", e.reason)
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    match handler
        .get_reviews(vec![existing.clone(), "1234".into()])
        .await
    {
        Err(avro_rpc::codegen::HandlerError::Declared(GetReviewsError::InvalidArgument(e))) => {
            assert!(e.reason.contains("\"1234\""), "{}", e.reason)
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }

    let metrics = common::metrics_text();
    assert!(
        metrics.contains(r#"cinerec_rpc_server_requests_total{service="review-svc",message="getReviews",outcome="declared_error"}"#),
        "declared errors are counted per message:\n{metrics}"
    );
    server.shutdown.trigger();
    server.task.await??;
    h.cleanup().await
}
