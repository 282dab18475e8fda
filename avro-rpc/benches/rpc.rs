//! Throughput and latency of a small call (≈100 B each way) through the
//! generated typed client and server, over the socket transport and over
//! HTTP, on loopback TCP, at 1, 16 and 256 calls in flight.
//!
//! `cargo bench -p avro-rpc --bench rpc` (add `-- --quick` for a short run,
//! `-- --only socket` for one transport's rows).
//! Prints one line per transport × concurrency: calls/s, p50, p99, and the
//! process's peak RSS at the end. The server runs on its own single-threaded
//! tokio runtime (one worker thread) and the clients on another, so calls/s
//! is what one server core sustains (when the server is the bottleneck) —
//! the unit of the DESIGN.md §7 target. The same call is also made over
//! tonic (gRPC, prost) in the same run, as the baseline, and — with the same
//! Rust client over the socket transport — against Apache Avro's Java
//! `NettyServer` (`interop/java`, `BenchServer`), when `java` and `mvn` are
//! available (otherwise that row says why it was skipped).

use std::sync::Arc;
use std::time::{Duration, Instant};

use avro_rpc::codegen::HandlerError;
use avro_rpc::transport::http::{HttpTransport, serve_http};
use avro_rpc::transport::socket::{SocketTransport, serve_socket};
use std::convert::Infallible;

mod greeter {
    avro_rpc::include_protocol!("greeter");
}
use greeter::*;

struct Bench;

impl Greeter for Bench {
    async fn hello(&self, name: String) -> Result<String, HandlerError<Infallible>> {
        Ok(name)
    }
    async fn echo(&self, greeting: Greeting) -> Result<Greeting, HandlerError<Infallible>> {
        Ok(greeting)
    }
    async fn add(&self, a: i32, b: i64) -> Result<i64, HandlerError<Infallible>> {
        Ok(i64::from(a).wrapping_add(b))
    }
    async fn refuse(&self, _code: i32) -> Result<(), HandlerError<RefuseError>> {
        Ok(())
    }
    async fn wait(&self, key: String) -> Result<String, HandlerError<Infallible>> {
        Ok(key)
    }
    async fn notify(&self, _event: String) -> Result<(), HandlerError<Infallible>> {
        Ok(())
    }
}

/// Handshake, allocator, connection pools: outside the measured window.
async fn warm_up(client: &AnyClient) {
    for _ in 0..200 {
        client.hello("warm-up".into()).await;
    }
}

/// Runs `total` calls with `in_flight` concurrent workers; returns calls/s and sorted latencies.
async fn run(client: &AnyClient, in_flight: usize, total: usize) -> (f64, Vec<Duration>) {
    let payload: String = "x".repeat(96);
    let per_worker = total / in_flight;
    let start = Instant::now();
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let client = client.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_worker);
                for _ in 0..per_worker {
                    let t = Instant::now();
                    let r = client.hello(payload.clone()).await;
                    lat.push(t.elapsed());
                    debug_assert_eq!(r.len(), 96);
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    let elapsed = start.elapsed();
    all.sort();
    (all.len() as f64 / elapsed.as_secs_f64(), all)
}

fn pct(lat: &[Duration], p: f64) -> Duration {
    let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
    lat[i]
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The gRPC baseline's message: one string, like `hello`'s parameter and answer.
#[derive(Clone, PartialEq, prost::Message)]
struct HelloMsg {
    #[prost(string, tag = "1")]
    name: String,
}

/// The gRPC baseline's handler: returns the message, as `Bench::hello` does.
#[derive(Clone)]
struct TonicHello;

impl tonic::server::UnaryService<HelloMsg> for TonicHello {
    type Response = HelloMsg;
    type Future = std::future::Ready<Result<tonic::Response<HelloMsg>, tonic::Status>>;
    fn call(&mut self, request: tonic::Request<HelloMsg>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(request.into_inner())))
    }
}

/// The service tonic-build would generate for `service Greeter { rpc Hello }`,
/// written out so the bench needs no protoc.
#[derive(Clone)]
struct TonicGreeter;

impl tonic::server::NamedService for TonicGreeter {
    const NAME: &'static str = "bench.Greeter";
}

impl tower::Service<http::Request<tonic::body::Body>> for TonicGreeter {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            let mut grpc =
                tonic::server::Grpc::new(tonic::codec::ProstCodec::<HelloMsg, HelloMsg>::default());
            Ok(grpc.unary(TonicHello, request).await)
        })
    }
}

/// A client making the same call as `GreeterClient::hello`, over gRPC.
#[derive(Clone)]
struct TonicClient {
    grpc: tonic::client::Grpc<tonic::transport::Channel>,
}

impl TonicClient {
    async fn hello(&self, name: String) -> Result<String, tonic::Status> {
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let reply: tonic::Response<HelloMsg> = grpc
            .unary(
                tonic::Request::new(HelloMsg { name }),
                http::uri::PathAndQuery::from_static("/bench.Greeter/Hello"),
                tonic::codec::ProstCodec::default(),
            )
            .await?;
        Ok(reply.into_inner().name)
    }
}

/// The calls each transport makes: the Avro typed client or the gRPC baseline.
#[derive(Clone)]
enum AnyClient {
    Avro(GreeterClient),
    Grpc(TonicClient),
}

impl AnyClient {
    async fn hello(&self, name: String) -> String {
        match self {
            AnyClient::Avro(c) => c.hello(name).await.expect("avro call"),
            AnyClient::Grpc(c) => c.hello(name).await.expect("grpc call"),
        }
    }
}

/// Name of the server runtime's threads, to find their CPU time in /proc.
const SERVER_THREAD: &str = "avro-srv";

/// CPU seconds (user + system) used so far by the server runtime's threads,
/// from /proc (Linux; clock ticks assumed 100 Hz, the x86-64 default).
fn server_cpu_secs() -> Option<f64> {
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if !comm.trim_end().starts_with(SERVER_THREAD) {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // After the parenthesised command name, utime and stime are the
        // 12th and 13th fields (fields 14 and 15 of the whole line).
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        ticks += fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    }
    Some(ticks as f64 / 100.0)
}

/// CPU seconds (user + system) used so far by process `pid` (all threads:
/// for the JVM that includes the JIT compiler and the GC).
fn process_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Whose CPU time a row divides its calls by.
#[derive(Clone, Copy)]
enum ServerCpu {
    /// The Rust/tonic server runtime's threads in this process.
    Local,
    /// Another process (the Java server).
    Process(u32),
}

impl ServerCpu {
    fn secs(self) -> Option<f64> {
        match self {
            ServerCpu::Local => server_cpu_secs(),
            ServerCpu::Process(pid) => process_cpu_secs(pid),
        }
    }
}

/// Apache Avro's Java `NettyServer` (`BenchServer` of the interop harness),
/// killed when dropped. JVM defaults (no heap cap, default GC, all cores):
/// as it would run in production.
struct JavaNetty {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl Drop for JavaNetty {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_java_netty() -> Result<JavaNetty, String> {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(dir.join("interop/run-java.sh"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run interop/run-java.sh: {e}"))?;
    match out.status.code() {
        Some(0) => {}
        Some(127) => return Err("java or mvn is not on PATH".into()),
        _ => return Err(format!("interop/run-java.sh failed ({})", out.status)),
    }
    let cp = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut child = Command::new("java")
        .args(["-cp", &cp, "org.cinerec.interop.BenchServer", "--proto"])
        .arg(dir.join("tests/protocols/greeter.avpr"))
        .args(["--max-seconds", "1800"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot spawn java: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    let _ = std::io::BufReader::new(stdout).read_line(&mut line);
    let port = line
        .trim()
        .strip_prefix("READY netty=")
        .and_then(|p| p.parse::<u16>().ok());
    let server = JavaNetty {
        child,
        addr: ([127, 0, 0, 1], port.unwrap_or(0)).into(),
    };
    if port.is_none() {
        return Err(format!(
            "BenchServer printed {line:?}, not READY netty=<port>"
        ));
    }
    Ok(server)
}

/// Starts both servers on a runtime with one worker thread of its own.
fn start_servers() -> (
    std::net::SocketAddr,
    std::net::SocketAddr,
    std::net::SocketAddr,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(SERVER_THREAD)
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let socket_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addrs = (
                socket_listener.local_addr().expect("addr"),
                http_listener.local_addr().expect("addr"),
                grpc_listener.local_addr().expect("addr"),
            );
            let incoming = futures::stream::unfold(grpc_listener, |l| async move {
                let conn = l.accept().await.map(|(stream, _)| {
                    let _ = stream.set_nodelay(true);
                    stream
                });
                Some((conn, l))
            });
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(TonicGreeter)
                    .serve_with_incoming(incoming),
            );
            let responder = Arc::new(GreeterServer::new(Bench).responder().expect("protocol"));
            tokio::spawn(serve_socket(socket_listener, responder.clone()));
            tokio::spawn(serve_http(http_listener, responder));
            tx.send(addrs).expect("main thread waits");
            std::future::pending::<()>().await
        })
    });
    rx.recv().expect("servers started")
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `--only socket` (or http, tonic, java-netty): one transport's rows, e.g.
    // under a profiler.
    let only: Option<String> = {
        let args: Vec<String> = std::env::args().collect();
        args.iter()
            .position(|a| a == "--only")
            .and_then(|i| args.get(i + 1).cloned())
    };
    let (socket_addr, http_addr, grpc_addr) = start_servers();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime");
    rt.block_on(async {
        let socket = AnyClient::Avro(
            GreeterClient::new(
                SocketTransport::connect(socket_addr)
                    .await
                    .expect("connect"),
            )
            .expect("protocol"),
        );
        let http = AnyClient::Avro(
            GreeterClient::new(HttpTransport::new(&format!("http://{http_addr}/")).expect("uri"))
                .expect("protocol"),
        );
        // One HTTP/2 connection, multiplexed: the gRPC analogue of the socket transport.
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}"))
            .expect("uri")
            .tcp_nodelay(true)
            .connect()
            .await
            .expect("connect");
        let grpc = AnyClient::Grpc(TonicClient {
            grpc: tonic::client::Grpc::new(channel),
        });

        // The Java Avro NettyServer, called by the same Rust socket client.
        let want_java = only.as_deref().is_none_or(|o| o == "java-netty");
        let java = if !want_java {
            None
        } else {
            match start_java_netty() {
                Ok(server) => match SocketTransport::connect(server.addr).await {
                    Ok(t) => Some((
                        server.child.id(),
                        AnyClient::Avro(GreeterClient::new(t).expect("protocol")),
                        server,
                    )),
                    Err(e) => {
                        println!("java-netty: skipped, cannot connect: {e}");
                        None
                    }
                },
                Err(e) => {
                    println!("java-netty: skipped, {e}");
                    None
                }
            }
        };

        println!("transport  in-flight      calls/s    p50(us)    p99(us)  calls/server-CPU-s");
        let mut rows = vec![
            ("socket", &socket, ServerCpu::Local),
            ("http", &http, ServerCpu::Local),
            ("tonic", &grpc, ServerCpu::Local),
        ];
        if let Some((pid, client, _)) = &java {
            rows.push(("java-netty", client, ServerCpu::Process(*pid)));
        }
        rows.retain(|(name, _, _)| only.as_deref().is_none_or(|o| o == *name));
        for (name, client, cpu) in rows {
            if let ServerCpu::Process(_) = cpu {
                // The JIT compiles the hot path only after many calls.
                for _ in 0..if quick { 10 } else { 100 } {
                    warm_up(client).await;
                }
            }
            for in_flight in [1usize, 16, 256] {
                let total = match (quick, in_flight) {
                    (true, 1) => 2_000,
                    (true, _) => 10_240,
                    (false, 1) => 20_000,
                    (false, _) => 102_400,
                };
                warm_up(client).await;
                let cpu_before = cpu.secs();
                let (rate, lat) = run(client, in_flight, total).await;
                // Calls per second of server CPU: the per-server-core rate,
                // whether or not the server was the bottleneck.
                let per_core = match (cpu_before, cpu.secs()) {
                    (Some(a), Some(b)) if b > a => format!("{:.0}", lat.len() as f64 / (b - a)),
                    _ => "n/a".into(),
                };
                println!(
                    "{name:<9} {in_flight:>10} {rate:>12.0} {:>10} {:>10} {per_core:>19}",
                    pct(&lat, 0.50).as_micros(),
                    pct(&lat, 0.99).as_micros()
                );
            }
        }
        if let Some(kib) = peak_rss_kib() {
            println!(
                "peak RSS: {} MiB (this process; the JVM not included)",
                kib / 1024
            );
        }
        drop(java);
    });
}
