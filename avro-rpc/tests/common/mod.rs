//! Shared fixtures for avro-rpc's integration tests: the Greeter protocol, a
//! handler implementing it over generic values, and server/client wiring.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use avro_rpc::export::apache_avro::types::Value;
use avro_rpc::{Call, Client, Protocol, Request, Responder, Response, ResponseError};
use tokio::sync::{mpsc, oneshot};

pub const GREETER: &str = include_str!("../protocols/greeter.avpr");

pub fn greeter() -> Protocol {
    Protocol::parse(GREETER).expect("greeter.avpr parses")
}

/// Test-side controls of the handler.
#[derive(Clone, Default)]
pub struct Controls {
    /// `wait(key)` parks until a sender for `key` is fired.
    pub gates: Arc<Mutex<HashMap<String, oneshot::Receiver<()>>>>,
    /// `notify(event)` sends `event` here.
    pub notified: Arc<Mutex<Option<mpsc::UnboundedSender<String>>>>,
    /// How many `wait` calls the handler has started.
    pub waits_started: Arc<std::sync::atomic::AtomicUsize>,
}

impl Controls {
    pub fn gate(&self, key: &str) -> oneshot::Sender<()> {
        let (tx, rx) = oneshot::channel();
        self.gates.lock().unwrap().insert(key.to_string(), rx);
        tx
    }

    pub fn notifications(&self) -> mpsc::UnboundedReceiver<String> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.notified.lock().unwrap() = Some(tx);
        rx
    }
}

fn field<'a>(params: &'a Value, name: &str) -> &'a Value {
    match params {
        Value::Record(fields) => {
            &fields
                .iter()
                .find(|(n, _)| n == name)
                .expect("param present")
                .1
        }
        other => panic!("params are not a record: {other:?}"),
    }
}

/// The Greeter handler over generic values.
pub fn handler(
    controls: Controls,
) -> impl tower::Service<Request, Response = Response, Error = Infallible, Future = impl Send>
+ Clone
+ Send
+ Sync {
    tower::service_fn(move |req: Request| {
        let controls = controls.clone();
        async move {
            let p = &req.params;
            let mut response = match req.message.name() {
                "hello" => match field(p, "name") {
                    Value::String(n) => Response::ok(Value::String(format!("hello, {n}"))),
                    v => Response::system_error(format!("bad name {v:?}")),
                },
                "echo" => Response::ok(field(p, "greeting").clone()),
                "add" => match (field(p, "a"), field(p, "b")) {
                    (Value::Int(a), Value::Long(b)) => Response::ok(Value::Long(i64::from(*a) + b)),
                    other => Response::system_error(format!("bad operands {other:?}")),
                },
                "refuse" => {
                    let code = match field(p, "code") {
                        Value::Int(c) => *c,
                        _ => -1,
                    };
                    let result = match code {
                        0 => Ok(Value::Null),
                        1 => Err(ResponseError::Declared {
                            index: 0,
                            value: Value::Record(vec![
                                ("reason".into(), Value::String("no".into())),
                                ("code".into(), Value::Int(1)),
                            ]),
                        }),
                        2 => Err(ResponseError::Declared {
                            index: 1,
                            value: Value::Record(vec![("retry_after_ms".into(), Value::Long(250))]),
                        }),
                        _ => Err(ResponseError::System(format!("unexpected code {code}"))),
                    };
                    Response {
                        metadata: Default::default(),
                        result,
                    }
                }
                "wait" => {
                    let key = match field(p, "key") {
                        Value::String(k) => k.clone(),
                        _ => String::new(),
                    };
                    controls
                        .waits_started
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let gate = controls.gates.lock().unwrap().remove(&key);
                    if let Some(g) = gate {
                        let _ = g.await;
                    }
                    Response::ok(Value::String(key))
                }
                "notify" => {
                    if let (Value::String(e), Some(tx)) = (
                        field(p, "event"),
                        controls.notified.lock().unwrap().as_ref(),
                    ) {
                        let _ = tx.send(e.clone());
                    }
                    Response::ok(Value::Null)
                }
                other => Response::system_error(format!("unhandled {other}")),
            };
            // Echo call metadata back so tests can check it travels both ways.
            response.metadata = req.metadata.clone();
            Ok::<_, Infallible>(response)
        }
    })
}

/// A responder for `protocol` with the Greeter handler.
pub fn responder(
    protocol: Protocol,
    controls: Controls,
) -> Arc<
    Responder<
        impl tower::Service<Request, Response = Response, Error = Infallible, Future = impl Send>
        + Clone
        + Send
        + Sync,
    >,
> {
    Arc::new(Responder::new(protocol, handler(controls)))
}

pub fn record(fields: &[(&str, Value)]) -> Value {
    Value::Record(
        fields
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect(),
    )
}

pub fn call(client: &Client, message: &str, params: &[(&str, Value)]) -> Call {
    Call::new(client, message, &record(params)).expect("params encode")
}

pub fn greeting() -> Value {
    record(&[
        ("text", Value::String("hi".into())),
        ("mood", Value::Enum(1, "GRUMPY".into())),
        ("digest", Value::Fixed(4, vec![1, 2, 3, 4])),
        (
            "tags",
            Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
        ),
        (
            "attrs",
            Value::Map([("k".to_string(), Value::Long(9))].into_iter().collect()),
        ),
        ("payload", Value::Bytes(vec![0, 255, 7])),
        (
            "reply_to",
            Value::Union(1, Box::new(Value::String("me".into()))),
        ),
        ("score", Value::Double(2.5)),
        (
            "id",
            Value::Uuid(
                avro_rpc::export::apache_avro::Uuid::parse_str(
                    "67e55044-10b1-426f-9247-bb680e5fe0c8",
                )
                .expect("uuid"),
            ),
        ),
        ("sent_at", Value::TimestampMicros(1_700_000_000_123_456)),
        ("day", Value::Date(19_000)),
        ("ratio", Value::Union(1, Box::new(Value::Float(0.25)))),
    ])
}
