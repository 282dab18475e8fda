//! Load balancing with circuit breaking, over real sockets: stock
//! `tower::balance::p2c` over two endpoints, each a reconnecting socket
//! client with a per-attempt deadline behind its own [`CircuitBreaker`]. One
//! endpoint serves; the other handshakes and then never answers (a hung
//! peer: every call to it times out). Once that endpoint's circuit opens, the
//! balancer sends every call to the serving one — the breaker reports
//! `Refusing` as its load — instead of picking the hung endpoint and having the
//! call refused.
//!
//! (An endpoint whose connects are refused or whose handshake never ends never
//! becomes ready inside p2c — `Reconnect` goes back to connecting when polled
//! again — so the balancer avoids it by itself; a peer that fails or hangs
//! once connected is what the breaker is for.)

mod common;

use std::time::Duration;

use avro_rpc::codegen::CallError;
use avro_rpc::error::from_box;
use avro_rpc::layer::circuit_breaker::{CircuitBreaker, CircuitBreakerLayer, Status};
use avro_rpc::layer::deadline::{Deadline, DeadlineLayer};
use avro_rpc::transport::socket::{SocketConnector, serve_connection};
use avro_rpc::{BoxError, Error, Kind, Request, Responder, Response};
use common::{Controls, responder};
use std::convert::Infallible;
use tower::load::{CompleteOnResponse, PendingRequests};
use tower::reconnect::Reconnect;
use tower::{Layer, ServiceExt};

mod greeter {
    avro_rpc::include_protocol!("greeter");
}
use greeter::*;

const GUARD: Duration = Duration::from_secs(60);
const THRESHOLD: u32 = 3;
const ATTEMPT: Duration = Duration::from_millis(100);
const CALLS: usize = 300;

type Endpoint = CircuitBreaker<
    PendingRequests<
        Deadline<
            tower::util::MapErr<
                Reconnect<SocketConnector, std::net::SocketAddr>,
                fn(BoxError) -> Error,
            >,
        >,
    >,
>;

/// One endpoint: a reconnecting socket client whose attempts time out after
/// `ATTEMPT`, its in-flight count as its load, behind a breaker that opens
/// after `THRESHOLD` consecutive failures (timeouts here).
fn endpoint(addr: std::net::SocketAddr) -> Endpoint {
    let reconnecting = Reconnect::new(SocketConnector::new(greeter()), addr)
        .map_err(from_box as fn(BoxError) -> Error);
    CircuitBreakerLayer::new(THRESHOLD, Duration::from_secs(600)).layer(PendingRequests::new(
        DeadlineLayer::new(ATTEMPT).layer(reconnecting),
        CompleteOnResponse::default(),
    ))
}

fn greeter() -> avro_rpc::Protocol {
    protocol().expect("greeter protocol")
}

#[tokio::test]
async fn p2c_steers_calls_away_from_an_endpoint_whose_circuit_is_open() {
    tokio::time::timeout(GUARD, async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let serving = listener.local_addr().unwrap();
        let r = responder(greeter(), Controls::default());
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(serve_connection(stream, r.clone()));
            }
        });
        // A hung peer: handshakes (the responder does that), then never
        // answers a call — a stuck handler, a peer paused by GC or overload.
        let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hung_addr = hung.local_addr().unwrap();
        let stuck = std::sync::Arc::new(Responder::new(
            greeter(),
            tower::service_fn(|_: Request| {
                futures::future::pending::<Result<Response, Infallible>>()
            }),
        ));
        tokio::spawn(async move {
            while let Ok((stream, _)) = hung.accept().await {
                tokio::spawn(serve_connection(stream, stuck.clone()));
            }
        });
        let dead = endpoint(hung_addr);
        let circuit = dead.monitor();
        let balance = tower::balance::p2c::Balance::new(tower::discover::ServiceList::new(vec![
            endpoint(serving),
            dead,
        ]));
        let client =
            GreeterClient::with_service(greeter(), tower::buffer::Buffer::new(balance, 64));

        let (mut answered, mut timeouts, mut refused) = (0, 0, 0);
        for i in 0..CALLS {
            match client.hello(format!("n{i}")).await {
                Ok(a) => {
                    assert_eq!(a, format!("hello, n{i}"));
                    answered += 1;
                }
                Err(CallError::Rpc(e)) if e.kind() == Kind::Timeout => timeouts += 1,
                Err(CallError::Rpc(e)) if e.kind() == Kind::CircuitOpen => refused += 1,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            circuit.status(),
            Status::Open,
            "the hung endpoint's circuit opened"
        );
        // The hung endpoint cost exactly the calls that opened its circuit;
        // after that the balancer never picked it.
        assert_eq!(timeouts, THRESHOLD as usize, "attempts that timed out");
        assert_eq!(refused, 0, "calls picked for an open circuit");
        assert_eq!(answered, CALLS - THRESHOLD as usize);
    })
    .await
    .expect("bounded");
}
