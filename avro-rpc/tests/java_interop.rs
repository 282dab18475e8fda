//! Interop with the Java reference implementation (Apache Avro 1.12.1
//! `avro-ipc`, `avro-ipc-netty`, `avro-ipc-jetty`), in both directions, over
//! both transports, across the v1/v2 schema evolution of the interop protocol
//! (`interop/README.md` is the contract):
//!
//! - Rust client → Java `InteropServer` (v1 and v2): every message of the
//!   Interop protocol over the Netty-framed socket transport and over HTTP,
//!   for a v1 and a v2 Rust client against each server, checked against the
//!   README's exact values (schema resolution included).
//! - Java `InteropClient` (v1 and v2) → Rust server (v1 and v2) serving the
//!   README's deterministic behaviour on loopback over the socket transport and
//!   HTTP; every run must end `28 passed, 0 failed` with exit status 0.
//!
//! Needs `java` (17+) and `mvn` on PATH (`interop/run-java.sh` builds the
//! harness on first use). Without them these tests FAIL with a message
//! saying so: they never pass by skipping. Java processes bind 127.0.0.1, get
//! a piped stdin, and are killed when their guard drops. Server logs go to
//! `target/tmp/java-interop/`.

mod java;

use std::time::Duration;

use java::checks::*;
use java::simple::*;
use java::*;

/// Bounds a whole run so a hang fails the test instead of stalling CI; not a
/// latency check (a run takes about a second).
const GUARD: Duration = Duration::from_secs(180);

/// The checks of one Java `InteropClient` run (README "Checks").
const JAVA_CHECKS: usize = 28;

/// A v1 and a v2 Rust client against one Java server, over both transports.
fn rust_clients_against_java_server(sv: Version) {
    let server = JavaServer::start(sv);
    let peer = PeerServer::java(&server);
    let rt = runtime();
    let mut summary = Vec::new();
    let mut failures = Vec::new();
    for cv in Version::ALL {
        for wire in [Wire::Socket, Wire::Http] {
            let checks = rt
                .block_on(async { tokio::time::timeout(GUARD, rust_client_checks(&peer, wire, cv)).await })
                .unwrap_or_else(|_| {
                    panic!(
                        "Rust client {cv} -> Java server {sv} over {wire}: no result within {GUARD:?}; \
                         Java log {}:\n{}",
                        server.log.display(),
                        log_tail(&server.log, 40)
                    )
                });
            summary.push(format!(
                "{}: {} passed, {} failed",
                checks.label,
                checks.passed(),
                checks.failures().len()
            ));
            assert!(checks.passed() > 0, "{}: no check ran", checks.label);
            failures.extend(checks.failures());
        }
    }
    println!("{}", summary.join("\n"));
    assert!(
        failures.is_empty(),
        "{} failed checks:\n{}\n\nJava server log {} (tail):\n{}",
        failures.len(),
        failures.join("\n"),
        server.log.display(),
        log_tail(&server.log, 40)
    );
    drop(rt);
    drop(server);
}

#[test]
fn rust_client_to_java_server_v1() {
    rust_clients_against_java_server(Version::V1);
}

#[test]
fn rust_client_to_java_server_v2() {
    rust_clients_against_java_server(Version::V2);
}

// ------------------------------------------------ Java client, Rust server

/// The Java client of each version against a Rust server of `sv`, over both
/// transports; every run must pass all of its checks.
fn java_clients_against_rust_server(sv: Version) {
    let rt = runtime();
    let (socket_port, http_port) = serve_rust(&rt, sv);
    let mut summary = Vec::new();
    let mut failures = Vec::new();
    for cv in Version::ALL {
        for (transport, port) in [("netty", socket_port), ("http", http_port)] {
            let run = run_java_client(transport, port, cv, sv);
            println!("== {}\n{}", run.label, run.stdout.trim_end());
            summary.push(format!(
                "{}: {} passed, {} failed",
                run.label, run.passed, run.failed
            ));
            if !run.success || run.failed != 0 || run.passed != JAVA_CHECKS {
                let stderr_tail: Vec<&str> = run.stderr.lines().rev().take(30).collect();
                failures.push(format!(
                    "{} (exit {}; expected {JAVA_CHECKS} passed, 0 failed):\n{}\n-- stderr (tail):\n{}",
                    run.label,
                    if run.success { "ok" } else { "failure" },
                    run.stdout
                        .lines()
                        .filter(|l| !l.starts_with("PASS "))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    stderr_tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
        }
    }
    println!("{}", summary.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    drop(rt);
}

#[test]
fn java_client_to_rust_server_v1() {
    java_clients_against_rust_server(Version::V1);
}

#[test]
fn java_client_to_rust_server_v2() {
    java_clients_against_rust_server(Version::V2);
}

// ------------------------------------------------------------- simple.avpr

/// Avro's own `simple.avpr`: Java `SimpleClient` → the Rust simple server,
/// then a Rust client → Java `InteropServer --proto simple`; both transports
/// each way.
#[test]
fn simple_avpr_both_directions() {
    let rt = runtime();
    let (socket_port, http_port, acks) = serve_simple(&rt);
    let mut failures = Vec::new();
    for (transport, port) in [("netty", socket_port), ("http", http_port)] {
        let run = run_java_simple_client(transport, port);
        println!("== {}\n{}", run.label, run.stdout.trim_end());
        if !run.success || run.failed != 0 || run.passed != SIMPLE_CHECKS {
            failures.push(format!(
                "{} (expected {SIMPLE_CHECKS} passed, 0 failed):\n{}\n-- stderr:\n{}",
                run.label, run.stdout, run.stderr
            ));
        }
    }
    // Java's requestor sends a one-way call without waiting: poll briefly.
    for _ in 0..250 {
        if acks.load(std::sync::atomic::Ordering::SeqCst) >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        acks.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the Rust server should have seen one one-way ack per Java run"
    );

    let server = JavaServer::start_simple();
    for wire in [Wire::Socket, Wire::Http] {
        let label = format!("Rust simple client -> Java simple server over {wire}");
        let result = rt.block_on(async {
            tokio::time::timeout(GUARD, async {
                let client = match wire {
                    Wire::Socket => avro_rpc::Client::new(
                        simple_protocol(),
                        avro_rpc::transport::socket::SocketTransport::connect((
                            "127.0.0.1",
                            server.netty_port,
                        ))
                        .await
                        .map_err(|e| format!("connect: {e}"))?,
                    ),
                    Wire::Http => avro_rpc::Client::new(
                        simple_protocol(),
                        avro_rpc::transport::http::HttpTransport::new(&format!(
                            "http://127.0.0.1:{}/",
                            server.http_port
                        ))
                        .map_err(|e| e.to_string())?,
                    ),
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
    let log = server.log.clone();
    drop(server);
    drop(rt);
    assert!(
        failures.is_empty(),
        "{}\n\nJava simple server log (tail):\n{}",
        failures.join("\n\n"),
        log_tail(&log, 40)
    );
}
