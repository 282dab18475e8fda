//! The real movie-svc binary: `seed` then `serve` against the stack's
//! PostgreSQL; the admin port answers /healthz, /readyz and /metrics; the Java
//! reference implementation (a non-Rust Avro client) calls getMovie over both
//! transports; SIGTERM stops it cleanly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use cinerec_tests::{Stack, unique_name};

const BIN: &str = env!("CARGO_BIN_EXE_movie-svc");

/// Kills the child if the test fails half-way.
struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("movie-svc sits in the repo root")
}

fn base_command(schema: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("CINEREC_DATABASE_URL", Stack::from_env().database_url)
        .env("MOVIE_SVC_DB_SCHEMA", schema)
        .env("CINEREC_LOG_FORMAT", "json")
        .env("CINEREC_LOG", "info");
    cmd
}

/// The Java harness's classpath (built on first use by run-java.sh).
fn java_classpath() -> String {
    let out = Command::new(repo_root().join("avro-rpc/interop/run-java.sh"))
        .arg("cp")
        .stderr(Stdio::inherit())
        .output()
        .expect("run-java.sh runs (needs java and mvn: installed by dev/stack)");
    assert!(out.status.success(), "building the Java harness failed");
    String::from_utf8(out.stdout)
        .expect("utf-8 classpath")
        .trim()
        .to_owned()
}

fn java_call(cp: &str, transport: &str, port: u16, message: &str, params: &str) -> (i32, String) {
    let out = Command::new("java")
        .args([
            "-Xmx128m",
            "-cp",
            cp,
            "org.cinerec.interop.CallOnce",
            "--transport",
            transport,
        ])
        .args([
            "--port",
            &port.to_string(),
            "--message",
            message,
            "--params",
            params,
        ])
        .arg("--proto")
        .arg(repo_root().join("protocols/movie.avpr"))
        .stdin(Stdio::null())
        .output()
        .expect("java runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("admin port");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (
        status,
        raw.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default(),
    )
}

#[test]
fn seed_serve_probe_call_from_java_and_stop_on_sigterm() {
    let schema = unique_name("movie_bin");
    let seeded = base_command(&schema)
        .args(["seed", "--movies", "500", "--seed", "4"])
        .status()
        .expect("seed runs");
    assert!(seeded.success(), "seed failed");

    let child = base_command(&schema)
        .args([
            "--admin-addr",
            "127.0.0.1:0",
            "serve",
            "--rpc-addr",
            "127.0.0.1:0",
        ])
        .args(["--rpc-http-addr", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut guard = Guard(child);
    let stderr = guard.0.stderr.take().expect("stderr piped");
    let mut lines = BufReader::new(stderr).lines();
    let serving = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(&line).ok()?;
            (v["fields"]["message"] == "serving" && v["fields"]["service"] == "movie-svc")
                .then_some(v["fields"].clone())
        })
        .expect("the serving line with the bound addresses");
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let addr = |k: &str| serving[k].as_str().expect("address field").to_owned();
    let (rpc, http, admin) = (addr("rpc"), addr("http"), addr("admin"));
    let port = |a: &str| {
        a.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    };

    assert_eq!(http_get(&admin, "/healthz").0, 200);
    let (status, body) = http_get(&admin, "/readyz");
    assert_eq!(status, 200, "{body}");

    let expected = cinerec_catalog::Catalog::new(4, 500, 1).movie(42);
    let cp = java_classpath();
    for (transport, p) in [("netty", port(&rpc)), ("http", port(&http))] {
        let (code, out) = java_call(&cp, transport, p, "getMovie", r#"{"id": 42}"#);
        assert_eq!(code, 0, "Java getMovie over {transport}: {out}");
        assert!(
            out.contains(&format!("\"title\": \"{}\"", expected.title)),
            "{out}"
        );
        let (code, out) = java_call(&cp, transport, p, "getMovie", r#"{"id": 501}"#);
        assert_eq!(code, 3, "NotFound is a declared error for Java too: {out}");
        assert!(out.contains("\"id\": 501"), "{out}");
    }

    let (_, metrics) = http_get(&admin, "/metrics");
    for family in [
        r#"cinerec_rpc_server_requests_total{service="movie-svc",message="getMovie",outcome="ok"} 2"#,
        r#"cinerec_rpc_server_requests_total{service="movie-svc",message="getMovie",outcome="declared_error"} 2"#,
        "cinerec_rpc_server_duration_seconds_bucket",
        "cinerec_read_through_total",
        "cinerec_db_pool_connections",
    ] {
        assert!(metrics.contains(family), "missing {family} in:\n{metrics}");
    }

    let pid = guard.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = guard.0.wait().expect("wait");
    assert!(status.success(), "SIGTERM is a clean stop, got {status}");
}
