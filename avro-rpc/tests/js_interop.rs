//! Interop with npm `avsc` (5.7.9, pinned in `interop/js/package-lock.json`),
//! in both directions, over both transports avsc offers
//! (`interop/js/README.md` is the contract):
//!
//! - avsc's **stateful** channels on raw TCP, which avsc frames exactly like
//!   Java's `NettyTransportCodec` (serial, buffer count, length-prefixed
//!   buffers) — our socket transport;
//! - avsc's **stateless** channels, one per HTTP `POST` (the spec's buffer
//!   list ending with an empty buffer) — our HTTP transport.
//!
//! Rust client → avsc `interop.js server` (v1 and v2): the same 28 checks as
//! against Java (`java/checks.rs`), for a v1 and a v2 Rust client, each over
//! both transports. avsc `interop.js client` (v1 and v2) → the Rust Interop
//! server (v1 and v2), over both transports: every run must end `27 passed,
//! 0 failed`. Both directions also run Avro's own `simple.avpr`.
//!
//! Needs `node` and `npm` (`interop/run-js.sh` runs `npm ci` on first use).
//! Without them these tests FAIL saying so; they never pass by skipping.
//! Node processes bind 127.0.0.1, get a piped stdin (EOF stops the server),
//! and are killed when their guard drops.

mod java;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use avro_rpc::Client;
use java::checks::*;
use java::simple::*;
use java::*;

/// Bounds a whole run so a hang fails the test instead of stalling CI; not a
/// latency check.
const GUARD: Duration = Duration::from_secs(180);

/// The checks of one `interop.js client` run on the Interop protocol.
const JS_CHECKS: usize = 27;
/// The checks of one `interop.js client` run on `simple.avpr`.
const JS_SIMPLE_CHECKS: usize = SIMPLE_CHECKS;

/// `interop/js/interop.js`, once `run-js.sh` installed avsc. Panics with a
/// clear message when node or npm is missing.
fn interop_js() -> &'static PathBuf {
    static JS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let js = JS.get_or_init(|| {
        let script = interop_dir().join("run-js.sh");
        let out = Command::new(&script)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => {}
            Some(127) => {
                return Err(format!(
                    "the avsc interop tests need `node` (18+) and `npm` on PATH, and one is \
                     missing (run-js.sh exited 127). Install Node.js (CI does); these tests \
                     fail rather than skip.\n{stderr}"
                ));
            }
            _ => {
                return Err(format!(
                    "{} failed ({}):\n{stderr}",
                    script.display(),
                    out.status
                ));
            }
        }
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if !path.is_file() {
            return Err(format!("run-js.sh printed {path:?}, not a file"));
        }
        Ok(path)
    });
    match js {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn node(mode: &str) -> Command {
    let mut c = Command::new("node");
    c.arg(interop_js()).arg(mode);
    c
}

/// A running `interop.js server` on 127.0.0.1.
struct JsServer {
    socket_port: u16,
    http_port: u16,
    _stdout: ChildStdout,
    _process: ProcessGuard,
}

impl JsServer {
    /// Spawns `interop.js server --proto <proto>` and waits for its READY line.
    fn start(proto: &str) -> JsServer {
        let mut child = node("server")
            .args(["--proto", proto, "--max-seconds", "600"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot spawn node (Node.js 18+ must be on PATH; CI installs it): {e}")
            });
        let stdout = child.stdout.take().expect("piped stdout");
        let process = ProcessGuard::new(child);
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("read interop.js stdout");
        let ports = line
            .trim()
            .strip_prefix("READY netty=")
            .and_then(|r| r.split_once(" http="))
            .and_then(|(n, h)| Some((n.parse::<u16>().ok()?, h.parse::<u16>().ok()?)));
        let Some((socket_port, http_port)) = ports else {
            panic!(
                "interop.js server --proto {proto} did not print `READY netty=<p> http=<q>`: {line:?}"
            );
        };
        JsServer {
            socket_port,
            http_port,
            _stdout: reader.into_inner(),
            _process: process,
        }
    }
}

/// Runs `interop.js client` and returns (success, passed, failed, stdout, stderr).
fn run_js_client(args: &[&str]) -> (bool, usize, usize, String, String) {
    let mut child = node("client")
        .args(args)
        .args(["--max-seconds", "120"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot spawn node (Node.js 18+ must be on PATH; CI installs it): {e}")
        });
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let mut guard = ProcessGuard::new(child);
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut stdout = String::new();
    let _ = out.read_to_string(&mut stdout);
    let status = guard.wait().expect("wait for interop.js client");
    let stderr = err_reader.join().unwrap_or_default();
    let (passed, failed) = parse_tally(&stdout);
    (status.success(), passed, failed, stdout, stderr)
}

// ------------------------------------------------ Rust client, avsc server

/// A v1 and a v2 Rust client against one avsc server, over both transports.
fn rust_clients_against_avsc_server(sv: Version) {
    let server = JsServer::start(sv.arg());
    let peer = PeerServer {
        name: "avsc",
        version: sv,
        socket_port: server.socket_port,
        http_port: server.http_port,
        // avsc hashes JSON.stringify of the parsed .avpr: not our file's MD5,
        // so first contact is NONE; the checks compare what it announces.
        hash: None,
    };
    let rt = runtime();
    let mut summary = Vec::new();
    let mut failures = Vec::new();
    for cv in Version::ALL {
        for wire in [Wire::Socket, Wire::Http] {
            let checks = rt
                .block_on(async {
                    tokio::time::timeout(GUARD, rust_client_checks(&peer, wire, cv)).await
                })
                .unwrap_or_else(|_| {
                    panic!("Rust client {cv} -> avsc server {sv} over {wire}: no result within {GUARD:?}")
                });
            summary.push(format!(
                "{}: {} passed, {} failed",
                checks.label,
                checks.passed(),
                checks.failures().len()
            ));
            assert_eq!(
                checks.passed() + checks.failures().len(),
                RUST_CHECKS,
                "{}: not every check ran",
                checks.label
            );
            failures.extend(checks.failures());
        }
    }
    println!("{}", summary.join("\n"));
    assert!(
        failures.is_empty(),
        "{} failed checks:\n{}",
        failures.len(),
        failures.join("\n")
    );
    drop(rt);
    drop(server);
}

#[test]
fn rust_client_to_avsc_server_v1() {
    rust_clients_against_avsc_server(Version::V1);
}

#[test]
fn rust_client_to_avsc_server_v2() {
    rust_clients_against_avsc_server(Version::V2);
}

// ------------------------------------------------ avsc client, Rust server

/// The avsc client of each version against a Rust server of `sv`, over both
/// transports; every run must pass all of its checks.
fn avsc_clients_against_rust_server(sv: Version) {
    let rt = runtime();
    let (socket_port, http_port) = serve_rust(&rt, sv);
    let mut summary = Vec::new();
    let mut failures = Vec::new();
    for cv in Version::ALL {
        for (transport, port) in [("netty", socket_port), ("http", http_port)] {
            let label = format!("avsc client {cv} -> Rust server {sv} over {transport}");
            let port = port.to_string();
            let (ok, passed, failed, stdout, stderr) = run_js_client(&[
                "--transport",
                transport,
                "--port",
                &port,
                "--proto",
                cv.arg(),
                "--server-proto",
                sv.arg(),
            ]);
            println!("== {label}\n{}", stdout.trim_end());
            summary.push(format!("{label}: {passed} passed, {failed} failed"));
            if !ok || failed != 0 || passed != JS_CHECKS {
                failures.push(format!(
                    "{label} (expected {JS_CHECKS} passed, 0 failed):\n{}\n-- stderr:\n{stderr}",
                    stdout
                        .lines()
                        .filter(|l| !l.starts_with("PASS "))
                        .collect::<Vec<_>>()
                        .join("\n")
                ));
            }
        }
    }
    println!("{}", summary.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    drop(rt);
}

#[test]
fn avsc_client_to_rust_server_v1() {
    avsc_clients_against_rust_server(Version::V1);
}

#[test]
fn avsc_client_to_rust_server_v2() {
    avsc_clients_against_rust_server(Version::V2);
}

// ------------------------------------------------------------- simple.avpr

/// avsc's `simple.avpr` client against the Rust simple server, then a Rust
/// client against avsc's simple server; both transports each way.
#[test]
fn simple_avpr_both_directions() {
    let rt = runtime();
    let (socket_port, http_port, acks) = serve_simple(&rt);
    let mut failures = Vec::new();
    for (transport, port) in [("netty", socket_port), ("http", http_port)] {
        let label = format!("avsc simple client -> Rust simple server over {transport}");
        let port = port.to_string();
        let (ok, passed, failed, stdout, stderr) = run_js_client(&[
            "--transport",
            transport,
            "--port",
            &port,
            "--proto",
            "simple",
        ]);
        println!("== {label}\n{}", stdout.trim_end());
        if !ok || failed != 0 || passed != JS_SIMPLE_CHECKS {
            failures.push(format!(
                "{label} (expected {JS_SIMPLE_CHECKS} passed, 0 failed):\n{stdout}\n-- stderr:\n{stderr}"
            ));
        }
    }
    assert_eq!(
        acks.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the Rust server should have seen one one-way ack per avsc run"
    );

    let server = JsServer::start("simple");
    for wire in [Wire::Socket, Wire::Http] {
        let label = format!("Rust simple client -> avsc simple server over {wire}");
        let result = rt.block_on(async {
            tokio::time::timeout(GUARD, async {
                let client = match wire {
                    Wire::Socket => simple_socket_client(server.socket_port).await,
                    Wire::Http => simple_http_client(server.http_port),
                };
                simple_checks(&client).await
            })
            .await
        });
        match result {
            Ok(Ok(n)) => println!("== {label}: {n} passed, 0 failed"),
            Ok(Err(e)) => failures.push(format!("{label}: {e}")),
            Err(_) => failures.push(format!("{label}: no result within {GUARD:?}")),
        }
    }
    drop(server);
    drop(rt);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

async fn simple_socket_client(port: u16) -> Client {
    let t = avro_rpc::transport::socket::SocketTransport::connect(("127.0.0.1", port))
        .await
        .expect("connect to the avsc simple server");
    Client::new(simple_protocol(), t)
}

fn simple_http_client(port: u16) -> Client {
    let t = avro_rpc::transport::http::HttpTransport::new(&format!("http://127.0.0.1:{port}/"))
        .expect("HTTP transport");
    Client::new(simple_protocol(), t)
}
