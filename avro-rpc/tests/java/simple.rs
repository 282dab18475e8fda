//! Apache Avro's own interop protocol, `interop/protocols/simple.avpr`
//! (hello, echo, add, echoBytes, error, one-way ack), served and called the
//! way Avro's Java tests do: `hello` answers `"goodbye"`, `echo` and
//! `echoBytes` return their argument, `add` sums, `error` throws
//! `TestError{message: "an error"}`, `ack` is counted.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use avro_rpc::export::apache_avro::types::Value;
use avro_rpc::transport::http::serve_http;
use avro_rpc::transport::socket::serve_socket;
use avro_rpc::{Call, Client, Protocol, RemoteError, Request, Responder, Response, ResponseError};

use super::*;

/// The checks `simple_checks` runs.
pub const SIMPLE_CHECKS: usize = 6;

pub fn simple_protocol() -> Protocol {
    let path = interop_dir().join("protocols").join("simple.avpr");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    Protocol::parse(&text).unwrap_or_else(|e| panic!("simple.avpr does not parse: {e}"))
}

/// `TestRecord{name: "foo", kind: BAR, hash: 0123456789abcdef}`.
pub fn test_record() -> Value {
    record(vec![
        ("name", string("foo")),
        ("kind", Value::Enum(1, "BAR".into())),
        ("hash", Value::Fixed(16, b"0123456789abcdef".to_vec())),
    ])
}

fn test_error() -> Value {
    record(vec![("message", string("an error"))])
}

fn param<'a>(req: &'a Request, name: &str) -> Option<&'a Value> {
    match &req.params {
        Value::Record(f) => f.iter().find(|(n, _)| n == name).map(|(_, v)| v),
        _ => None,
    }
}

/// The Simple server; `acks` counts one-way `ack` calls.
pub fn simple_handler(
    acks: Arc<AtomicUsize>,
) -> impl tower::Service<Request, Response = Response, Error = Infallible, Future = impl Send>
+ Clone
+ Send
+ Sync {
    tower::service_fn(move |req: Request| {
        let response = match (req.message.name(), param(&req, "arg1"), param(&req, "arg2")) {
            ("hello", ..) => Response::ok(string("goodbye")),
            ("echo", ..) => match param(&req, "record") {
                Some(r) => Response::ok(r.clone()),
                None => Response::system_error("echo: no record"),
            },
            ("echoBytes", ..) => match param(&req, "data") {
                Some(d) => Response::ok(d.clone()),
                None => Response::system_error("echoBytes: no data"),
            },
            ("add", Some(Value::Int(a)), Some(Value::Int(b))) => {
                Response::ok(Value::Int(a.wrapping_add(*b)))
            }
            ("error", ..) => Response {
                metadata: Default::default(),
                result: Err(ResponseError::Declared {
                    index: 0,
                    value: test_error(),
                }),
            },
            ("ack", ..) => {
                acks.fetch_add(1, Ordering::SeqCst);
                Response::ok(Value::Null)
            }
            (other, ..) => Response::system_error(format!("simple server: bad call {other}")),
        };
        async move { Ok::<_, Infallible>(response) }
    })
}

async fn call(
    client: &Client,
    message: &str,
    params: Vec<(&str, Value)>,
) -> Result<Result<Value, RemoteError>, String> {
    let call = Call::new(client, message, &record(params))
        .map_err(|e| format!("encoding {message} params: {e}"))?;
    let reply = client
        .call(call)
        .await
        .map_err(|e| format!("{message} failed: {e}"))?;
    Ok(reply.result)
}

fn ok(what: &str, expected: &Value, got: Result<Value, RemoteError>) -> Result<(), String> {
    match got {
        Ok(v) => diff(what, expected, &v).map_or(Ok(()), Err),
        Err(e) => Err(format!("{what}: expected a result, got error {e:?}")),
    }
}

/// Every Simple message from `client` (a Rust client of any server that
/// behaves like Avro's test servers): `Ok(checks passed)` or every failure.
pub async fn simple_checks(client: &Client) -> Result<usize, String> {
    let c = client;
    let bytes = Value::Bytes(vec![0, 1, 2, 0xfe, 0xff]);
    let results = vec![
        (
            "simple.hello",
            async {
                ok(
                    "hello",
                    &string("goodbye"),
                    call(c, "hello", vec![("greeting", string("bonjour"))]).await?,
                )
            }
            .await,
        ),
        (
            "simple.echo",
            async {
                ok(
                    "echo",
                    &test_record(),
                    call(c, "echo", vec![("record", test_record())]).await?,
                )
            }
            .await,
        ),
        (
            "simple.add",
            async {
                ok(
                    "add",
                    &Value::Int(3),
                    call(
                        c,
                        "add",
                        vec![("arg1", Value::Int(1)), ("arg2", Value::Int(2))],
                    )
                    .await?,
                )
            }
            .await,
        ),
        (
            "simple.echoBytes",
            async {
                ok(
                    "echoBytes",
                    &bytes,
                    call(c, "echoBytes", vec![("data", bytes.clone())]).await?,
                )
            }
            .await,
        ),
        (
            "simple.error",
            async {
                match call(c, "error", vec![]).await? {
                    Err(RemoteError::Declared { index: 0, value }) => {
                        diff("TestError", &test_error(), &value).map_or(Ok(()), Err)
                    }
                    other => Err(format!(
                        "expected TestError{{message: \"an error\"}}, got {other:?}"
                    )),
                }
            }
            .await,
        ),
        (
            "simple.ack",
            async {
                ok("ack", &Value::Null, call(c, "ack", vec![]).await?)?;
                ok(
                    "add after ack",
                    &Value::Int(5),
                    call(
                        c,
                        "add",
                        vec![("arg1", Value::Int(2)), ("arg2", Value::Int(3))],
                    )
                    .await?,
                )
            }
            .await,
        ),
    ];
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
        .collect();
    for (n, r) in &results {
        match r {
            Ok(()) => println!("PASS {n}"),
            Err(e) => println!("FAIL {n}: {e}"),
        }
    }
    if failures.is_empty() {
        Ok(results.len())
    } else {
        Err(failures.join("\n"))
    }
}

/// Serves `simple.avpr` (`simple_handler`) on loopback: (socket, HTTP, acks).
pub fn serve_simple(
    rt: &tokio::runtime::Runtime,
) -> (u16, u16, Arc<std::sync::atomic::AtomicUsize>) {
    let acks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let socket = Arc::new(Responder::new(
        simple_protocol(),
        simple_handler(acks.clone()),
    ));
    let http = Arc::new(Responder::new(
        simple_protocol(),
        simple_handler(acks.clone()),
    ));
    let (a, b) = rt.block_on(async {
        let ls = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let lh = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ports = (
            ls.local_addr().unwrap().port(),
            lh.local_addr().unwrap().port(),
        );
        tokio::spawn(serve_socket(ls, socket));
        tokio::spawn(serve_http(lh, http));
        ports
    });
    (a, b, acks)
}
