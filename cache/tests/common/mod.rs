//! Shared helpers of the real-server tests: server URLs from the environment
//! (defaults = the fixed ports of `dev/stack`), a random namespace per test so
//! tests run in parallel, and extra servers a test starts and kills itself.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cinerec_cache::{Backend, Cache, CacheConfig, Claim, ZoneAddr};

/// Per-operation timeout of outage tests: short, so they stay quick, yet
/// far above a healthy loopback round trip even on a loaded machine.
pub const OP_TIMEOUT: Duration = Duration::from_millis(500);
/// Per-operation timeout where no zone is meant to fail: generous, so a busy
/// CI machine running a debug build never turns a slow reply into "degraded".
pub const STACK_OP_TIMEOUT: Duration = Duration::from_secs(5);
/// Retry interval of failed zones in tests.
pub const RETRY: Duration = Duration::from_millis(100);
/// Hang detector for outage tests: an operation against a dead or frozen zone
/// must come back after about one `OP_TIMEOUT`; this bound is twenty times
/// that so a loaded machine never trips it, while a real hang (waiting on the
/// dead server) always does. It is not a speed assertion.
pub const HANG_GUARD: Duration = Duration::from_secs(10);
/// Upper bound on polling for a TTL to run out or a zone to heal.
pub const POLL_LIMIT: Duration = Duration::from_secs(20);

fn env_url(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// Redis zone a (`CINEREC_REDIS_URL`).
pub fn redis_url() -> String {
    env_url("CINEREC_REDIS_URL", "redis://127.0.0.1:16379")
}
/// Redis zone b (`CINEREC_REDIS2_URL`).
pub fn redis2_url() -> String {
    env_url("CINEREC_REDIS2_URL", "redis://127.0.0.1:16380")
}
/// memcached zone a (`CINEREC_MEMCACHED_URL`).
pub fn memcached_url() -> String {
    env_url("CINEREC_MEMCACHED_URL", "memcached://127.0.0.1:11311")
}
/// memcached zone b (`CINEREC_MEMCACHED2_URL`).
pub fn memcached2_url() -> String {
    env_url("CINEREC_MEMCACHED2_URL", "memcached://127.0.0.1:11312")
}

/// Zone a and zone b URLs of `backend`.
pub fn urls(backend: Backend) -> (String, String) {
    match backend {
        Backend::Memcached => (memcached_url(), memcached2_url()),
        Backend::Redis => (redis_url(), redis2_url()),
    }
}

/// Fail the test loudly unless a server listens at `url`: a missing server
/// must never look like a passing test.
pub fn require(url: &str) {
    let addr = ZoneAddr::parse(url).unwrap_or_else(|e| panic!("bad cache url {url:?}: {e}"));
    let reachable = addr
        .socket_addr()
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map(|sa| TcpStream::connect_timeout(&sa, Duration::from_secs(2)));
    match reachable {
        Some(Ok(_)) => {}
        Some(Err(e)) => panic!(
            "cache server {url} is unreachable ({e}): start the local stack with `dev/stack up` \
             (or point the CINEREC_*_URL variables at running servers)"
        ),
        None => {
            panic!("cache server {url} does not resolve: start the local stack with `dev/stack up`")
        }
    }
}

/// A namespace no other test run uses.
pub fn namespace(test: &str) -> String {
    format!("t{}-{:016x}", test, rand::random::<u64>())
}

/// A cache over the stack servers at `urls`, each checked with [`require`].
pub fn stack_cache(ns: &str, urls: &[&str]) -> Cache {
    for u in urls {
        require(u);
    }
    build(ns, urls, STACK_OP_TIMEOUT)
}

/// A cache over `urls` as given (some may be down on purpose), with the
/// tests' short timeouts.
pub fn cache(ns: &str, urls: &[&str]) -> Cache {
    build(ns, urls, OP_TIMEOUT)
}

fn build(ns: &str, urls: &[&str], op_timeout: Duration) -> Cache {
    let config = CacheConfig::new(ns, &urls.join(","))
        .unwrap_or_else(|e| panic!("config {urls:?}: {e}"))
        .op_timeout(op_timeout)
        .retry_interval(RETRY);
    Cache::new(&config).unwrap_or_else(|e| panic!("cache {urls:?}: {e}"))
}

/// Claim until the answer is not `InFlight` (the marker expired), polling.
pub async fn claim_when_free(cache: &Cache, key: &str, ttl: Duration) -> Claim {
    let start = Instant::now();
    loop {
        match cache.claim(key, ttl).await {
            Ok(Claim::InFlight) if start.elapsed() < POLL_LIMIT => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(c) => return c,
            Err(e) => panic!("claim {key}: {e}"),
        }
    }
}

/// A loopback port held bound but not listening, so connecting to it is
/// refused for as long as the value lives and no other test can take it.
#[derive(Debug)]
pub struct DeadPort {
    _socket: tokio::net::TcpSocket,
    port: u16,
}

impl DeadPort {
    /// Reserve a port.
    pub fn new() -> DeadPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let port = socket.local_addr().expect("local addr").port();
        DeadPort {
            _socket: socket,
            port,
        }
    }

    /// `<backend>://127.0.0.1:<port>`.
    pub fn url(&self, backend: Backend) -> String {
        format!("{backend}://127.0.0.1:{}", self.port)
    }
}

/// A loopback port nothing listens on right now (bound, then released), for
/// a server the test starts itself.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A memcached or redis-server process of the test's own, on a loopback port,
/// killed when dropped.
#[derive(Debug)]
pub struct OwnServer {
    backend: Backend,
    port: u16,
    child: Option<Child>,
}

impl OwnServer {
    /// Start a server of `backend` on a free port and wait until it accepts.
    pub fn start(backend: Backend) -> OwnServer {
        let mut s = OwnServer {
            backend,
            port: free_port(),
            child: None,
        };
        s.restart();
        s
    }

    /// `memcached://127.0.0.1:PORT` or `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.backend, self.port)
    }

    /// (Re)start the process on the same port and wait until it accepts.
    pub fn restart(&mut self) {
        let port = self.port.to_string();
        let mut cmd = match self.backend {
            Backend::Memcached => {
                let mut c = Command::new("memcached");
                c.args([
                    "-l",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "0",
                    "-m",
                    "64",
                    "-u",
                    "root",
                ]);
                c
            }
            Backend::Redis => {
                let mut c = Command::new("redis-server");
                c.args([
                    "--port",
                    &port,
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ]);
                c
            }
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} (is it installed?): {e}", self.backend));
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < POLL_LIMIT,
                "own {} on port {} did not start",
                self.backend,
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL the process (a crash: connections reset, port closed).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("server running")
            .id()
            .to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .map(|s| s.success());
        assert!(matches!(ok, Ok(true)), "kill {sig} {pid} failed");
    }

    /// SIGSTOP: the port still accepts connections but nothing answers.
    ///
    /// kill(2) returns before the stop has happened: the kernel wakes one
    /// thread to start the group stop, and a worker woken by socket data in
    /// the meantime may still answer. So wait until every thread of the
    /// process shows state `T` in /proc before the caller relies on it.
    pub fn freeze(&self) {
        self.signal("-STOP");
        let pid = self.child.as_ref().expect("server running").id();
        let start = Instant::now();
        while !all_threads_stopped(pid) {
            assert!(
                start.elapsed() < POLL_LIMIT,
                "own {} (pid {pid}) did not stop after SIGSTOP",
                self.backend
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGCONT after [`freeze`](Self::freeze).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether every thread of `pid` is stopped (state `T` in its stat line).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            return false;
        };
        // "tid (comm) S ...": the state follows the last ')'.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if state != Some("T") {
            return false;
        }
        any = true;
    }
    any
}
