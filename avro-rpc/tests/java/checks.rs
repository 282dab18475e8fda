//! The Rust interop client's checks (the mirror of Java's `InteropClient`,
//! `interop/README.md` "Checks"), run against any peer's Interop server:
//! the Java harness (`java_interop.rs`) and avsc (`js_interop.rs`).

use std::future::Future;
use std::time::Duration;

use avro_rpc::client::RemoteCache;
use avro_rpc::export::apache_avro::types::Value;
use std::sync::Arc;

use avro_rpc::transport::http::{HttpTransport, serve_http};
use avro_rpc::transport::socket::{SocketTransport, serve_socket};
use avro_rpc::{Call, Client, RemoteError, Responder};

use super::*;

/// The checks `rust_client_checks` runs.
pub const RUST_CHECKS: usize = 28;

/// A peer's Interop server on 127.0.0.1 (both transports).
#[derive(Debug, Clone)]
pub struct PeerServer {
    /// Who serves, for labels: "Java", "avsc".
    pub name: &'static str,
    pub version: Version,
    pub socket_port: u16,
    pub http_port: u16,
    /// The MD5 the peer announces for its protocol, when known in advance.
    pub hash: Option<&'static str>,
}

impl PeerServer {
    pub fn java(server: &JavaServer) -> Self {
        PeerServer {
            name: "Java",
            version: server.version,
            socket_port: server.netty_port,
            http_port: server.http_port,
            hash: Some(server.version.java_hash()),
        }
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Socket,
    Http,
}

impl std::fmt::Display for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Wire::Socket => "socket (Netty framing)",
            Wire::Http => "HTTP",
        })
    }
}

/// A Rust client of `version` on a new connection to the peer's server.
pub async fn connect(
    server: &PeerServer,
    wire: Wire,
    version: Version,
    cache: RemoteCache,
) -> Result<Client, String> {
    let builder = Client::builder(protocol(version)).remote_cache(cache);
    Ok(match wire {
        Wire::Socket => builder.build(
            SocketTransport::connect(("127.0.0.1", server.socket_port))
                .await
                .map_err(|e| format!("connect to {} socket server: {e}", server.name))?,
        ),
        Wire::Http => builder.build(
            HttpTransport::new(&format!("http://127.0.0.1:{}/", server.http_port))
                .map_err(|e| e.to_string())?,
        ),
    })
}

pub type Outcome = Result<Value, RemoteError>;

pub async fn call(
    client: &Client,
    message: &str,
    params: Vec<(&str, Value)>,
) -> Result<Outcome, String> {
    let call = Call::new(client, message, &record(params))
        .map_err(|e| format!("encoding {message} params: {e}"))?;
    let reply = client
        .call(call)
        .await
        .map_err(|e| format!("{message} failed: {e}"))?;
    if !reply.metadata.is_empty() {
        return Err(format!(
            "{message}: unexpected response metadata {:?}",
            reply.metadata
        ));
    }
    Ok(reply.result)
}

/// `Ok(())` when `got` is the successful result `expected`.
pub fn expect_ok(what: &str, expected: &Value, got: Outcome) -> Result<(), String> {
    match got {
        Ok(v) => diff(what, expected, &v).map_or(Ok(()), Err),
        Err(e) => Err(format!("{what}: expected a result, got error {e:?}")),
    }
}

/// `Ok(())` when `got` is the declared `InteropError` `expected`.
pub fn expect_declared(what: &str, expected: &Value, got: Outcome) -> Result<(), String> {
    match got {
        Err(RemoteError::Declared { index: 0, value }) => {
            diff(what, expected, &value).map_or(Ok(()), Err)
        }
        other => Err(format!(
            "{what}: expected InteropError {expected:?}, got {other:?}"
        )),
    }
}

/// Records PASS/FAIL per check, like `InteropClient`.
pub struct Checks {
    pub label: String,
    results: Vec<(String, Result<(), String>)>,
}

impl Checks {
    pub fn new(label: String) -> Self {
        Checks {
            label,
            results: Vec::new(),
        }
    }

    pub async fn run(&mut self, name: &str, check: impl Future<Output = Result<(), String>>) {
        let r = check.await;
        match &r {
            Ok(()) => println!("PASS {name}"),
            Err(e) => println!("FAIL {name}: {e}"),
        }
        self.results.push((name.to_string(), r));
    }

    pub fn failures(&self) -> Vec<String> {
        self.results
            .iter()
            .filter_map(|(n, r)| {
                r.as_ref()
                    .err()
                    .map(|e| format!("{}: {n}: {e}", self.label))
            })
            .collect()
    }

    pub fn passed(&self) -> usize {
        self.results.iter().filter(|(_, r)| r.is_ok()).count()
    }
}

/// Every message of the Interop protocol from a Rust client of `cv` to the
/// peer's server, over `wire`: the Rust mirror of `InteropClient`'s checks.
pub async fn rust_client_checks(server: &PeerServer, wire: Wire, cv: Version) -> Checks {
    let sv = server.version;
    let mut checks = Checks::new(format!(
        "Rust client {cv} -> {} server {sv} over {wire}",
        server.name
    ));
    println!("== {}", checks.label);
    let cache = RemoteCache::default();
    let client = match connect(server, wire, cv, cache.clone()).await {
        Ok(c) => c,
        Err(e) => {
            checks.run("connect", async { Err(e) }).await;
            return checks;
        }
    };
    let c = &client;

    // First contact: a ping (Netty) or a handshake-only exchange (HTTP). Our
    // hash is not the peer's, so it answers NONE and we resend our protocol.
    checks
        .run("ping", async {
            c.handshake().await.map_err(|e| format!("handshake: {e}"))?;
            let remote = c
                .remote_protocol()
                .ok_or("no server protocol after the handshake")?;
            if remote.name() != "Interop" || remote.namespace() != Some("org.cinerec.interop") {
                return Err(format!("server protocol is {remote:?}"));
            }
            if version_of(&remote) != sv {
                return Err(format!(
                    "server announced {}, expected {sv}",
                    version_of(&remote)
                ));
            }
            let h = format!("{:?}", remote.hash());
            if let Some(expected) = server.hash
                && h != expected
            {
                return Err(format!(
                    "server protocol hash {h}, expected {}'s {expected}",
                    server.name
                ));
            }
            Ok(())
        })
        .await;

    checks
        .run("nop", async {
            expect_ok("nop", &Value::Null, call(c, "nop", vec![]).await?)
        })
        .await;

    for (name, a, b, sum) in [
        ("add.small", 40, 2, 42),
        ("add.negative", -5, 3, -2),
        ("add.large", 1i64 << 40, -(1i64 << 41), -(1i64 << 40)),
        ("add.wrap", i64::MAX, 1, i64::MIN),
    ] {
        checks
            .run(name, async {
                let got =
                    call(c, "add", vec![("a", Value::Long(a)), ("b", Value::Long(b))]).await?;
                expect_ok("result", &Value::Long(sum), got)
            })
            .await;
    }

    for which in ITEMS {
        checks
            .run(&format!("echo.{which}"), async {
                let got = call(c, "echo", vec![("item", item(which, cv))]).await?;
                expect_ok("item", &echo_expected(which, cv, sv), got)
            })
            .await;
    }
    for which in ITEMS {
        checks
            .run(&format!("summarize.{which}"), async {
                let got = call(c, "summarize", vec![("item", item(which, cv))]).await?;
                expect_ok("summary", &summary(which), got)
            })
            .await;
    }

    for (name, start, count) in [
        ("range.small", 5, 3),
        ("range.empty", 0, 0),
        ("range.large", -2, 1000),
    ] {
        checks
            .run(name, async {
                let got = call(
                    c,
                    "range",
                    vec![("start", Value::Long(start)), ("count", Value::Int(count))],
                )
                .await?;
                expect_ok("parts", &range_expected(start, count, cv, sv), got)
            })
            .await;
    }
    for (name, count) in [("range.error.negative", -1), ("range.error.too-big", 10001)] {
        checks
            .run(name, async {
                let got = call(
                    c,
                    "range",
                    vec![("start", Value::Long(0)), ("count", Value::Int(count))],
                )
                .await?;
                expect_declared(
                    "error",
                    &interop_error(400, &format!("count out of range: {count}")),
                    got,
                )
            })
            .await;
    }

    let fail = |code: i32, message: &'static str| {
        call(
            c,
            "fail",
            vec![("code", Value::Int(code)), ("message", string(message))],
        )
    };
    checks
        .run("fail.ok", async {
            expect_ok("result", &string("ok: fine"), fail(0, "fine").await?)
        })
        .await;
    checks
        .run("fail.declared-404", async {
            expect_declared(
                "error",
                &interop_error(404, "not found"),
                fail(404, "not found").await?,
            )
        })
        .await;
    checks
        .run("fail.declared-503", async {
            expect_declared(
                "error",
                &interop_error(503, "unavailable"),
                fail(503, "unavailable").await?,
            )
        })
        .await;
    checks
        .run("fail.undeclared", async {
            match fail(-1, "boom").await? {
                Err(RemoteError::System(s)) if s == "undeclared: boom" => Ok(()),
                other => Err(format!(
                    "expected the string error \"undeclared: boom\", got {other:?}"
                )),
            }
        })
        .await;

    let channel = format!(
        "rust-{}-{cv}-{}-{}",
        if wire == Wire::Http { "http" } else { "socket" },
        std::process::id(),
        sv
    );
    let drain = || call(c, "drain", vec![("channel", string(&channel))]);
    checks
        .run("drain.empty", async {
            expect_ok("events", &Value::Array(vec![]), drain().await?)
        })
        .await;
    checks
        .run("notify.one-way", async {
            if !c.message("notify").map_err(|e| e.to_string())?.is_one_way() {
                return Err("notify is not one-way in our protocol".into());
            }
            for e in ["e1", "e2", "e3"] {
                let got = call(
                    c,
                    "notify",
                    vec![("channel", string(&channel)), ("event", string(e))],
                )
                .await?;
                expect_ok("notify", &Value::Null, got)?;
            }
            // Java runs each Netty frame on a pool: a one-way call can be
            // overtaken by the drain after it, so poll (as InteropClient does).
            // Up to 30 s: in the full suite on 2 cores a JVM was seen to take
            // over 5 s to run the third of three one-way calls.
            let mut got = Vec::new();
            for _ in 0..1_500 {
                match drain().await? {
                    Ok(Value::Array(events)) => got.extend(events),
                    other => return Err(format!("drain gave {other:?}")),
                }
                if got.len() >= 3 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let mut names: Vec<String> = got
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .collect();
            names.sort();
            if names != ["e1", "e2", "e3"] {
                return Err(format!("drain after notify e1, e2, e3 gave {names:?}"));
            }
            expect_ok("second drain", &Value::Array(vec![]), drain().await?)
        })
        .await;

    // 32 calls in flight at once on this client: over the socket transport
    // that is one connection, with replies matched by serial in any order.
    checks
        .run("concurrent", async {
            let calls = (0..32i64).map(|i| async move {
                (
                    i,
                    call(
                        c,
                        "add",
                        vec![("a", Value::Long(i)), ("b", Value::Long(1000 * i))],
                    )
                    .await,
                )
            });
            for (i, got) in futures::future::join_all(calls).await {
                expect_ok(&format!("add#{i}"), &Value::Long(1001 * i), got?)?;
            }
            Ok(())
        })
        .await;

    // A second connection, sharing the cache of server protocols: the peer
    // now knows our hash and we know its, so the handshake is BOTH at once.
    checks
        .run("reconnect", async {
            let c2 = connect(server, wire, cv, cache.clone()).await?;
            let got = call(
                &c2,
                "add",
                vec![("a", Value::Long(3)), ("b", Value::Long(4))],
            )
            .await?;
            expect_ok("result", &Value::Long(7), got)
        })
        .await;
    // And one that knows nothing: it guesses the server speaks our protocol,
    // the peer knows our hash but not the guess, and answers CLIENT + its protocol.
    checks
        .run("reconnect.fresh-cache", async {
            let c3 = connect(server, wire, cv, RemoteCache::default()).await?;
            let got = call(
                &c3,
                "add",
                vec![("a", Value::Long(3)), ("b", Value::Long(4))],
            )
            .await?;
            expect_ok("result", &Value::Long(7), got)?;
            let h = format!(
                "{:?}",
                c3.remote_protocol().ok_or("no server protocol")?.hash()
            );
            let first = c.remote_protocol().map(|p| format!("{:?}", p.hash()));
            if Some(&h) != first.as_ref() || server.hash.is_some_and(|e| e != h) {
                return Err(format!(
                    "learnt server hash {h}, expected {:?} (first connection: {first:?})",
                    server.hash
                ));
            }
            Ok(())
        })
        .await;

    println!(
        "{} passed, {} failed",
        checks.passed(),
        checks.failures().len()
    );
    checks
}

/// Serves the Interop protocol of `version` on loopback: (socket port, HTTP
/// port). Like the Java server, each transport has its own responder (and
/// so its own cache of client protocols).
pub fn serve_rust(rt: &tokio::runtime::Runtime, version: Version) -> (u16, u16) {
    let events = Events::default();
    let socket = Arc::new(Responder::new(
        protocol(version),
        interop_handler(version, events.clone()),
    ));
    let http = Arc::new(Responder::new(
        protocol(version),
        interop_handler(version, events),
    ));
    rt.block_on(async {
        let ls = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind socket port");
        let lh = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind HTTP port");
        let ports = (
            ls.local_addr().unwrap().port(),
            lh.local_addr().unwrap().port(),
        );
        tokio::spawn(serve_socket(ls, socket));
        tokio::spawn(serve_http(lh, http));
        ports
    })
}
