//! Interop with the Python reference implementation from PyPI (`avro`
//! 1.12.2, pinned in `interop/python/requirements.txt`): its HTTP client
//! (`avro.ipc.HTTPTransceiver` + `avro.ipc.Requestor`) → the Rust server.
//! Python's `avro` has no IPC server and no socket transport to test against
//! (`interop/python/README.md`).
//!
//! - `interop_client.py` v1 and v2 → the Rust Interop server v1 and v2 over
//!   HTTP: every run must end `27 passed, 0 failed` (the checks of Java's
//!   `InteropClient`, `interop/README.md`), schema resolution included.
//! - `interop_client.py --proto simple` → the Rust server of Avro's
//!   `simple.avpr`: 6 checks, and the server must have counted the one-way ack.
//!
//! Needs `python3` with `venv` and network access to PyPI on first use
//! (`interop/run-python.sh` builds `$HOME/.cache/cinerec/venv-avro-py`).
//! Without python these tests FAIL saying so; they never pass by skipping.
//! Python processes get a piped stdin and are killed when their guard drops.

mod java;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use java::checks::*;
use java::simple::*;
use java::*;

/// The checks of one `interop_client.py` run on the Interop protocol.
const PY_CHECKS: usize = 27;

/// The venv's python once `run-python.sh` installed the pinned `avro`.
fn venv_python() -> &'static PathBuf {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let py = PY.get_or_init(|| {
        let script = interop_dir().join("run-python.sh");
        let out = Command::new(&script)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => {}
            Some(127) => {
                return Err(format!(
                    "the Python interop tests need `python3` with the venv module on PATH, and \
                     it is missing (run-python.sh exited 127). Install Python 3 (CI does); \
                     these tests fail rather than skip.\n{stderr}"
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
        if !path.exists() {
            return Err(format!(
                "run-python.sh printed {path:?}, which does not exist"
            ));
        }
        Ok(path)
    });
    match py {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// Runs `interop_client.py ARGS`: (success, passed, failed, stdout, stderr).
fn run_py_client(args: &[&str]) -> (bool, usize, usize, String, String) {
    let mut child = Command::new(venv_python())
        .arg(interop_dir().join("python").join("interop_client.py"))
        .args(args)
        .args(["--max-seconds", "120"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn the venv's python: {e}"));
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
    let status = guard.wait().expect("wait for interop_client.py");
    let stderr = err_reader.join().unwrap_or_default();
    let (passed, failed) = parse_tally(&stdout);
    (status.success(), passed, failed, stdout, stderr)
}

fn not_passes(stdout: &str) -> String {
    stdout
        .lines()
        .filter(|l| !l.starts_with("PASS "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Python clients v1 and v2 against a Rust server of `sv` over HTTP.
fn python_clients_against_rust_server(sv: Version) {
    let rt = runtime();
    let (_socket_port, http_port) = serve_rust(&rt, sv);
    let port = http_port.to_string();
    let mut failures = Vec::new();
    for cv in Version::ALL {
        let label = format!("Python avro client {cv} -> Rust server {sv} over HTTP");
        let (ok, passed, failed, stdout, stderr) = run_py_client(&[
            "--port",
            &port,
            "--proto",
            cv.arg(),
            "--server-proto",
            sv.arg(),
        ]);
        println!("== {label}\n{}", stdout.trim_end());
        if !ok || failed != 0 || passed != PY_CHECKS {
            failures.push(format!(
                "{label} (expected {PY_CHECKS} passed, 0 failed):\n{}\n-- stderr:\n{stderr}",
                not_passes(&stdout)
            ));
        }
    }
    drop(rt);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn python_client_to_rust_server_v1() {
    python_clients_against_rust_server(Version::V1);
}

#[test]
fn python_client_to_rust_server_v2() {
    python_clients_against_rust_server(Version::V2);
}

#[test]
fn python_client_simple_avpr() {
    let rt = runtime();
    let (_socket_port, http_port, acks) = serve_simple(&rt);
    let (ok, passed, failed, stdout, stderr) =
        run_py_client(&["--port", &http_port.to_string(), "--proto", "simple"]);
    println!("== Python avro simple client -> Rust simple server over HTTP\n{stdout}");
    assert!(
        ok && failed == 0 && passed == SIMPLE_CHECKS,
        "Python simple client (expected {SIMPLE_CHECKS} passed, 0 failed):\n{}\n-- stderr:\n{stderr}",
        not_passes(&stdout)
    );
    assert_eq!(
        acks.load(Ordering::SeqCst),
        1,
        "the one-way ack should reach the Rust server once"
    );
    drop(rt);
}
