//! Tests for the idempotent retry policy, on paused time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use apache_avro::types::Value;
use bytes::Bytes;
use tower::retry::RetryLayer;
use tower::{Layer, Service, ServiceExt};

use super::*;
use crate::client::RemoteError;

fn protocol() -> Protocol {
    Protocol::parse(
        r#"{"protocol":"P","messages":{
            "get":{"request":[],"response":"null","idempotent":true},
            "put":{"request":[],"response":"null"}}}"#,
    )
    .unwrap()
}

fn call(message: &str) -> Call {
    Call {
        message: message.into(),
        metadata: Default::default(),
        params: Bytes::new(),
    }
}

/// A service failing with `kind` for the first `failures` calls.
fn flaky(
    failures: u32,
    kind: Kind,
) -> (
    impl Service<Call, Response = Reply, Error = Error, Future = impl Send> + Clone,
    Arc<AtomicU32>,
) {
    let count = Arc::new(AtomicU32::new(0));
    let c = count.clone();
    let svc = tower::service_fn(move |_call: Call| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < failures {
                Err(Error::new(kind, "flaky"))
            } else {
                Ok(Reply {
                    metadata: Default::default(),
                    result: Ok(Value::Null),
                })
            }
        }
    });
    (svc, count)
}

#[tokio::test(start_paused = true)]
async fn idempotent_messages_are_retried_until_success() {
    let (svc, count) = flaky(2, Kind::Transport);
    let mut svc = RetryLayer::new(IdempotentRetry::new(protocol())).layer(svc);
    let r = svc.ready().await.unwrap().call(call("get")).await.unwrap();
    assert_eq!(r.result, Ok(Value::Null));
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn other_messages_are_never_retried() {
    let (svc, count) = flaky(1, Kind::Transport);
    let mut svc = RetryLayer::new(IdempotentRetry::new(protocol())).layer(svc);
    let e = svc
        .ready()
        .await
        .unwrap()
        .call(call("put"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Transport);
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_limit() {
    let (svc, count) = flaky(100, Kind::Timeout);
    let mut svc = RetryLayer::new(IdempotentRetry::new(protocol()).max_retries(2)).layer(svc);
    assert!(svc.ready().await.unwrap().call(call("get")).await.is_err());
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn decode_errors_and_replies_are_not_retried() {
    let (svc, count) = flaky(1, Kind::Decode);
    let mut svc = RetryLayer::new(IdempotentRetry::new(protocol())).layer(svc);
    assert!(svc.ready().await.unwrap().call(call("get")).await.is_err());
    assert_eq!(count.load(Ordering::SeqCst), 1);

    // A system error reply is the server's answer, not a failure to deliver.
    let count = Arc::new(AtomicU32::new(0));
    let c = count.clone();
    let replying = tower::service_fn(move |_c: Call| {
        c.fetch_add(1, Ordering::SeqCst);
        async {
            Ok::<_, Error>(Reply {
                metadata: Default::default(),
                result: Err(RemoteError::System("no".into())),
            })
        }
    });
    let mut svc = RetryLayer::new(IdempotentRetry::new(protocol())).layer(replying);
    let r = svc.ready().await.unwrap().call(call("get")).await.unwrap();
    assert!(r.result.is_err());
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn backoff_bounds_grow_exponentially_and_cap() {
    let p = IdempotentRetry::new(protocol())
        .backoff(Duration::from_millis(10), Duration::from_millis(100));
    let bounds: Vec<u128> = (0..6).map(|a| p.backoff_bound(a).as_millis()).collect();
    assert_eq!(bounds, [10, 20, 40, 80, 100, 100]);
    assert_eq!(p.backoff_bound(200), Duration::from_millis(100));
}
