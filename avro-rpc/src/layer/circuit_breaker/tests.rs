//! Tests for the circuit breaker, with tower-test mocks on paused time.

use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use tower::{Layer, Service, ServiceExt};
use tower_test::mock;

use super::*;
use crate::client::{Call, RemoteError, Reply};
use crate::error::{BoxError, from_box};

const COOL_DOWN: Duration = Duration::from_secs(5);

fn call() -> Call {
    Call {
        message: "m".into(),
        metadata: Default::default(),
        params: Bytes::new(),
    }
}

fn reply(result: Result<crate::export::apache_avro::types::Value, RemoteError>) -> Reply {
    Reply {
        metadata: Default::default(),
        result,
    }
}

/// The mock's boxed errors mapped back to ours, as a client's would be,
/// reporting a constant load of 7 (for the balancer tests).
type Breaker =
    CircuitBreaker<Loaded<tower::util::MapErr<mock::Mock<Call, Reply>, fn(BoxError) -> Error>>>;

/// A service reporting a constant load of 7 (`tower::load::Constant` is not
/// `Clone`).
#[derive(Clone)]
struct Loaded<S>(S);

impl<S: Service<Call>> Service<Call> for Loaded<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }
    fn call(&mut self, req: Call) -> S::Future {
        self.0.call(req)
    }
}

impl<S> tower::load::Load for Loaded<S> {
    type Metric = u32;
    fn load(&self) -> u32 {
        7
    }
}

fn breaker(threshold: u32) -> (Breaker, mock::Handle<Call, Reply>) {
    let (mock, handle) = mock::pair::<Call, Reply>();
    let inner = Loaded(mock.map_err(from_box as fn(BoxError) -> Error));
    (
        CircuitBreakerLayer::new(threshold, COOL_DOWN).layer(inner),
        handle,
    )
}

/// Sends one call through `svc` and lets the mock answer with `answer`.
async fn exchange(
    svc: &mut Breaker,
    handle: &mut mock::Handle<Call, Reply>,
    answer: Result<Reply, Error>,
) -> Result<Reply, Error> {
    handle.allow(1);
    let fut = svc.ready().await.expect("ready").call(call());
    let (_, respond) = handle
        .next_request()
        .await
        .expect("the call reached the peer");
    match answer {
        Ok(r) => respond.send_response(r),
        Err(e) => respond.send_error(e),
    }
    fut.await
}

fn transport() -> Error {
    Error::new(Kind::Transport, "connection reset")
}

/// A call that must be refused without reaching the mock.
async fn expect_refused(svc: &mut Breaker, handle: &mut mock::Handle<Call, Reply>) {
    handle.allow(1);
    let err = svc
        .ready()
        .await
        .expect("ready (to refuse)")
        .call(call())
        .await
        .expect_err("refused while open");
    assert_eq!(err.kind(), Kind::CircuitOpen, "{err}");
    assert!(
        handle.next_request().now_or_never().is_none(),
        "a refused call must not reach the peer"
    );
}

#[tokio::test(start_paused = true)]
async fn opens_after_n_consecutive_failures_and_fails_fast() {
    let (mut svc, mut handle) = breaker(3);
    for i in 0..3 {
        assert_eq!(svc.status(), Status::Closed, "before failure {i}");
        let e = exchange(&mut svc, &mut handle, Err(transport())).await;
        assert_eq!(e.unwrap_err().kind(), Kind::Transport);
    }
    assert_eq!(svc.status(), Status::Open);
    expect_refused(&mut svc, &mut handle).await;
    // A clone shares the circuit.
    let mut clone = svc.clone();
    expect_refused(&mut clone, &mut handle).await;
}

#[tokio::test(start_paused = true)]
async fn timeouts_count_as_failures() {
    let (mut svc, mut handle) = breaker(2);
    for _ in 0..2 {
        let e = Error::new(Kind::Timeout, "no reply within 50ms");
        exchange(&mut svc, &mut handle, Err(e)).await.unwrap_err();
    }
    assert_eq!(svc.status(), Status::Open);
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_answers_and_reset_the_count() {
    let (mut svc, mut handle) = breaker(3);
    for round in 0..3 {
        for _ in 0..2 {
            exchange(&mut svc, &mut handle, Err(transport()))
                .await
                .unwrap_err();
        }
        // A declared error, then a system error: both are the server's answer.
        let answer = if round % 2 == 0 {
            reply(Err(RemoteError::Declared {
                index: 0,
                value: crate::export::apache_avro::types::Value::Null,
            }))
        } else {
            reply(Err(RemoteError::System("boom".into())))
        };
        let got = exchange(&mut svc, &mut handle, Ok(answer)).await.unwrap();
        assert!(got.result.is_err());
        assert_eq!(svc.status(), Status::Closed, "round {round}");
    }
    // Local errors (not the peer's fault) count as neither.
    for _ in 0..5 {
        let e = Error::new(Kind::Encode, "bad value");
        exchange(&mut svc, &mut handle, Err(e)).await.unwrap_err();
    }
    assert_eq!(svc.status(), Status::Closed);
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_one_probe_and_closes_on_success() {
    let (mut svc, mut handle) = breaker(1);
    exchange(&mut svc, &mut handle, Err(transport()))
        .await
        .unwrap_err();
    assert_eq!(svc.status(), Status::Open);
    tokio::time::advance(COOL_DOWN - Duration::from_millis(1)).await;
    expect_refused(&mut svc, &mut handle).await;
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(svc.status(), Status::HalfOpen);

    // The probe goes through; while it is in flight, others fail fast.
    handle.allow(1);
    let probe = svc.ready().await.unwrap().call(call());
    let (_, respond) = handle
        .next_request()
        .await
        .expect("the probe reached the peer");
    let mut other = svc.clone();
    expect_refused(&mut other, &mut handle).await;
    respond.send_response(reply(Ok(crate::export::apache_avro::types::Value::Null)));
    probe.await.expect("probe answered");
    assert_eq!(svc.status(), Status::Closed);
    exchange(
        &mut svc,
        &mut handle,
        Ok(reply(Ok(crate::export::apache_avro::types::Value::Null))),
    )
    .await
    .expect("calls flow again");
}

#[tokio::test(start_paused = true)]
async fn failed_probe_reopens_for_another_cool_down() {
    let (mut svc, mut handle) = breaker(2);
    for _ in 0..2 {
        exchange(&mut svc, &mut handle, Err(transport()))
            .await
            .unwrap_err();
    }
    tokio::time::advance(COOL_DOWN).await;
    exchange(&mut svc, &mut handle, Err(transport()))
        .await
        .unwrap_err();
    assert_eq!(svc.status(), Status::Open, "one failed probe re-opens");
    tokio::time::advance(COOL_DOWN / 2).await;
    expect_refused(&mut svc, &mut handle).await;
    tokio::time::advance(COOL_DOWN / 2).await;
    exchange(
        &mut svc,
        &mut handle,
        Ok(reply(Ok(crate::export::apache_avro::types::Value::Null))),
    )
    .await
    .unwrap();
    assert_eq!(svc.status(), Status::Closed);
}

#[tokio::test(start_paused = true)]
async fn dropped_probe_lets_the_next_call_probe() {
    let (mut svc, mut handle) = breaker(1);
    exchange(&mut svc, &mut handle, Err(transport()))
        .await
        .unwrap_err();
    tokio::time::advance(COOL_DOWN).await;
    handle.allow(1);
    let probe = svc.ready().await.unwrap().call(call());
    let _ = handle.next_request().await.expect("probe sent");
    drop(probe); // e.g. an outer deadline gave up on it
    assert_eq!(svc.status(), Status::HalfOpen);
    exchange(
        &mut svc,
        &mut handle,
        Ok(reply(Ok(crate::export::apache_avro::types::Value::Null))),
    )
    .await
    .expect("a new probe goes through");
    assert_eq!(svc.status(), Status::Closed);
}

#[tokio::test(start_paused = true)]
async fn reports_refusing_as_its_load_while_open_or_probed_by_another() {
    use tower::load::Load;
    let (mut svc, mut handle) = breaker(1);
    assert_eq!(svc.load(), BreakerLoad::Available(7));
    exchange(&mut svc, &mut handle, Err(transport()))
        .await
        .unwrap_err();
    assert_eq!(svc.load(), BreakerLoad::Refusing, "open");
    assert!(BreakerLoad::Available(u32::MAX) < BreakerLoad::Refusing);

    // Cool-down over: a call would probe, so the endpoint is worth picking.
    tokio::time::advance(COOL_DOWN).await;
    assert_eq!(svc.load(), BreakerLoad::Available(7));
    // This one holds the probe (made ready); it must stay pickable, and a
    // clone must not be picked meanwhile.
    handle.allow(1);
    svc.ready().await.unwrap();
    let mut other = svc.clone();
    assert_eq!(svc.load(), BreakerLoad::Available(7), "the probe's holder");
    assert_eq!(other.load(), BreakerLoad::Refusing, "another is probing");
    let probe = svc.call(call());
    let (_, respond) = handle
        .next_request()
        .now_or_never()
        .flatten()
        .expect("the probe was sent");
    respond.send_response(reply(Ok(crate::export::apache_avro::types::Value::Null)));
    probe.await.expect("probe answered");
    assert_eq!(other.load(), BreakerLoad::Available(7), "closed again");
    exchange(
        &mut other,
        &mut handle,
        Ok(reply(Ok(crate::export::apache_avro::types::Value::Null))),
    )
    .await
    .expect("calls flow");
}

#[tokio::test(start_paused = true)]
async fn a_refusal_made_ready_before_the_cool_down_ended_probes_after_it() {
    let (mut svc, mut handle) = breaker(1);
    exchange(&mut svc, &mut handle, Err(transport()))
        .await
        .unwrap_err();
    // Ready to refuse (as a balancer's ready set holds it)...
    svc.ready().await.unwrap();
    tokio::time::advance(COOL_DOWN).await;
    // ...polled again before the call (as a balancer does): it probes.
    handle.allow(1);
    let probe = svc.ready().await.unwrap().call(call());
    let (_, respond) = handle
        .next_request()
        .now_or_never()
        .flatten()
        .expect("the call went out as the probe");
    respond.send_response(reply(Ok(crate::export::apache_avro::types::Value::Null)));
    probe.await.expect("probe answered");
    assert_eq!(svc.status(), Status::Closed);
}
