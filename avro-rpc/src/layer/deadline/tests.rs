//! Tests for the deadline layers, on paused time (no wall-clock waits).

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use tower::{Layer, Service, ServiceExt};
use tower_test::mock;

use super::*;
use crate::client::Call;
use crate::error::{BoxError, Error, Kind};
use crate::server::{Request, Response};

fn call(metadata: crate::Metadata) -> Call {
    Call {
        message: "m".into(),
        metadata,
        params: Bytes::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn client_side_times_out_and_tells_the_server() {
    let (mock, mut handle) = mock::pair::<Call, crate::Reply>();
    let mut svc = DeadlineLayer::new(Duration::from_millis(250)).layer(mock);
    handle.allow(1);
    svc.ready().await.unwrap();
    let fut = svc.call(call(Default::default()));
    let (sent, _reply) = handle.next_request().await.unwrap();
    assert_eq!(
        timeout_from(&sent.metadata),
        Some(Duration::from_millis(250))
    );
    assert_eq!(&sent.metadata[TIMEOUT_KEY][..], b"250000");
    let err: BoxError = fut.await.unwrap_err();
    let err = err.downcast::<Error>().unwrap();
    assert_eq!(err.kind(), Kind::Timeout);
}

#[tokio::test(start_paused = true)]
async fn a_shorter_caller_timeout_wins() {
    let (mock, mut handle) = mock::pair::<Call, crate::Reply>();
    let mut svc = DeadlineLayer::new(Duration::from_secs(5)).layer(mock);
    handle.allow(1);
    let mut meta = crate::Metadata::new();
    set_timeout(&mut meta, Duration::from_millis(3));
    svc.ready().await.unwrap();
    let _fut = svc.call(call(meta));
    let (sent, _reply) = handle.next_request().await.unwrap();
    assert_eq!(timeout_from(&sent.metadata), Some(Duration::from_millis(3)));
}

#[test]
fn malformed_timeouts_are_ignored() {
    let mut meta = crate::Metadata::new();
    meta.insert(TIMEOUT_KEY.into(), Bytes::from_static(b"soon"));
    assert_eq!(timeout_from(&meta), None);
    meta.insert(TIMEOUT_KEY.into(), Bytes::from_static(&[0xff]));
    assert_eq!(timeout_from(&meta), None);
}

fn request(metadata: crate::Metadata) -> Request {
    let p = crate::Protocol::parse(
        r#"{"protocol":"P","messages":{"m":{"request":[],"response":"null"}}}"#,
    )
    .unwrap();
    Request {
        message: p.message("m").unwrap().clone(),
        metadata,
        params: apache_avro::types::Value::Record(vec![]),
    }
}

#[tokio::test(start_paused = true)]
async fn server_side_abandons_handlers_past_the_deadline() {
    let never =
        tower::service_fn(|_r: Request| std::future::pending::<Result<Response, Infallible>>());
    let mut svc = HonourDeadlineLayer::new().layer(never);
    let mut meta = crate::Metadata::new();
    set_timeout(&mut meta, Duration::from_millis(5));
    let r = svc
        .ready()
        .await
        .unwrap()
        .call(request(meta))
        .await
        .unwrap();
    assert!(matches!(r.result, Err(crate::ResponseError::System(s)) if s == "deadline exceeded"));
}

#[tokio::test(start_paused = true)]
async fn server_side_without_deadline_just_runs() {
    let quick = tower::service_fn(|_r: Request| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok::<_, Infallible>(Response::ok(apache_avro::types::Value::Null))
    });
    let mut svc = HonourDeadlineLayer::new().layer(quick);
    let r = svc
        .ready()
        .await
        .unwrap()
        .call(request(Default::default()))
        .await
        .unwrap();
    assert!(r.result.is_ok());
}
