//! The whole pipeline as real child processes, for the end-to-end tests:
//! movie-svc, user-svc, review-svc, the enricher and the recommender, started
//! from the workspace's built binaries against the shared local stack.
//!
//! Every run is apart from every other (tests in parallel, a developer's
//! `dev/run`): its own Kafka topics, consumer groups, Cassandra keyspaces,
//! PostgreSQL schemas and cache namespaces ([`RunNames`]), and free loopback
//! ports for every listener ([`ServiceAddrs`]). A service can be SIGKILLed
//! and started again with the same configuration, and the shared Kafka broker
//! can be SIGKILLed and restarted through `dev/stack`. Dropping the
//! [`Pipeline`] SIGKILLs every child it started, also when a test panics.
//!
//! Each child's stderr (its log) goes to a file under
//! `<target>/pipeline-logs/<run>/`; [`Pipeline::log_tails`] prints the ends of
//! them, and `Drop` does so when the test is panicking.

mod args;
mod control;
pub mod http;
mod names;
mod process;
pub mod proof;

use std::collections::HashMap;
use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub use http::{Metrics, Sample};
pub use names::RunNames;
pub use process::OwnMemcached;

use self::args::strings;
use self::process::{tail, wait_exit_ok};
use crate::Stack;

/// Token issuer the run's review-svc accepts.
pub const JWT_ISSUER: &str = "cinerec-pipeline";
/// Token audience the run's review-svc accepts.
pub const JWT_AUDIENCE: &str = "review-svc";
/// Partitions of the run's topics.
pub const PARTITIONS: i32 = 6;
/// How long a (re)started service or the broker may take to become ready.
/// Generous: two cores shared by two JVMs and a build.
pub const READY_DEADLINE: Duration = Duration::from_secs(120);
/// Lines of each log printed by [`Pipeline::log_tails`].
const TAIL_LINES: usize = 25;

/// The five services of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// movie-svc: MovieService over Avro RPC.
    MovieSvc,
    /// user-svc: UserService over Avro RPC.
    UserSvc,
    /// review-svc: the HTTP API, ReviewService over Avro RPC, the CDC relay.
    ReviewSvc,
    /// The enricher: reviews.changed → reviews.enriched.
    Enricher,
    /// The recommender: reviews.enriched → Cassandra.
    Recommender,
}

impl Service {
    /// All five, in start order.
    pub const ALL: [Service; 5] = [
        Service::MovieSvc,
        Service::UserSvc,
        Service::ReviewSvc,
        Service::Enricher,
        Service::Recommender,
    ];

    /// The binary's (and the service's `OTEL_SERVICE_NAME`) name.
    pub fn name(self) -> &'static str {
        match self {
            Service::MovieSvc => "movie-svc",
            Service::UserSvc => "user-svc",
            Service::ReviewSvc => "review-svc",
            Service::Enricher => "enricher",
            Service::Recommender => "recommender",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a run is made of.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Prefix of the run's names (topics, keyspaces, …): the test's name.
    pub prefix: String,
    /// Movies seeded into movie-svc (ids `1..=movies`).
    pub movies: u64,
    /// Users seeded into user-svc (ids `1..=users`).
    pub users: u64,
    /// Seed of the synthetic world (give loadgen the same).
    pub world_seed: u64,
    /// Cache zones of the enricher and the recommender (local first), as
    /// `memcached://h:p` / `redis://h:p`; `None`: the stack's two memcached.
    pub cache_urls: Option<Vec<String>>,
    /// Whether to start the recommender (the last stage).
    pub recommender: bool,
    /// Log filter of every child (`CINEREC_LOG`).
    pub log: String,
    /// Extra environment of every child (e.g. `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub env: Vec<(String, String)>,
    /// Extra arguments per service, appended to its `serve`/`run` arguments.
    pub extra_args: HashMap<Service, Vec<String>>,
    /// How often a service that exits before it is ready is started again
    /// (as an orchestrator would) before the start fails.
    pub restarts_on_early_exit: u32,
}

impl PipelineConfig {
    /// A small world: 1 000 movies, 5 000 users, the stack's memcached, all
    /// five services, `info` logs, up to 2 restarts of a service that exits during start-up.
    pub fn new(prefix: &str) -> PipelineConfig {
        PipelineConfig {
            prefix: prefix.to_owned(),
            movies: 1_000,
            users: 5_000,
            world_seed: 1,
            cache_urls: None,
            recommender: true,
            log: "info".to_owned(),
            env: Vec::new(),
            extra_args: HashMap::new(),
            restarts_on_early_exit: 2,
        }
    }
}

/// The listeners of one service (fixed for the run, so a restart binds the
/// same ones and its clients find it again).
#[derive(Debug, Clone, Copy)]
pub struct ServiceAddrs {
    /// /healthz, /readyz, /metrics.
    pub admin: SocketAddr,
    /// review-svc's public HTTP API.
    pub api: Option<SocketAddr>,
    /// Avro RPC, socket transport (movie-svc, user-svc, review-svc).
    pub rpc: Option<SocketAddr>,
    /// Avro RPC, HTTP transport (movie-svc, user-svc, review-svc).
    pub rpc_http: Option<SocketAddr>,
}

/// What `recommender reconcile` said.
#[derive(Debug, Clone)]
pub struct Reconciled {
    /// Zero differences (exit 0).
    pub agrees: bool,
    /// Its report (counts and the first differences).
    pub report: String,
}

/// One running child and what it left behind.
#[derive(Debug)]
struct Running {
    child: Child,
    log: PathBuf,
}

/// An extra instance of a consumer or of review-svc, beside the one
/// [`Pipeline::start_service`] runs: the same group, cache namespace and
/// keyspace, its own admin port (and review-svc's own API and RPC ports).
#[derive(Debug)]
struct Replica {
    service: Service,
    admin: SocketAddr,
    api: Option<SocketAddr>,
    running: Option<Running>,
}

/// The five services of one run, as child processes.
#[derive(Debug)]
pub struct Pipeline {
    stack: Stack,
    config: PipelineConfig,
    names: RunNames,
    bin_dir: PathBuf,
    log_dir: PathBuf,
    addrs: HashMap<Service, ServiceAddrs>,
    running: HashMap<Service, Running>,
    /// Every log file of the run, in start order (earlier lives included).
    logs: Vec<(String, PathBuf)>,
    /// How often each service was started.
    starts: HashMap<Service, u32>,
    /// How often each service exited during start-up (and was started again).
    early_exits: HashMap<Service, u32>,
    /// The last `/metrics` page of each earlier life of a service (scraped
    /// just before it was SIGKILLed), so counters can be summed over lives
    /// (and over replicas).
    earlier_lives: HashMap<Service, Vec<Metrics>>,
    /// Extra instances, by id (the index; a stopped one keeps its slot).
    replicas: Vec<Replica>,
}

/// The directory holding the workspace's binaries: the test executable lives
/// in `<target>/<profile>/deps/`, the binaries one level up.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    let deps = exe.parent().context("test executable has no directory")?;
    let dir = if deps.ends_with("deps") {
        deps.parent().context("deps has no parent")?
    } else {
        deps
    };
    Ok(dir.to_owned())
}

/// Free loopback addresses, all distinct (held together, then released).
pub fn free_addrs(n: usize) -> anyhow::Result<Vec<SocketAddr>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("binding ephemeral loopback ports")?;
    listeners
        .iter()
        .map(|l| l.local_addr().context("local addr"))
        .collect()
}

impl Pipeline {
    /// Seeds the catalogues, creates the run's keyspaces and topics and starts
    /// every configured service, waiting for each one's `/readyz`.
    pub async fn start(config: PipelineConfig) -> anyhow::Result<Pipeline> {
        let bin_dir = bin_dir()?;
        let services: Vec<Service> = Service::ALL
            .into_iter()
            .filter(|s| config.recommender || *s != Service::Recommender)
            .collect();
        for s in &services {
            let path = bin_dir.join(s.name());
            anyhow::ensure!(
                path.is_file(),
                "{} is not built; run `cargo build --workspace --bins` (or `cargo test --workspace`, \
                 which builds them) first",
                path.display()
            );
        }
        let names = RunNames::new(&config.prefix);
        let log_dir = bin_dir.join("pipeline-logs").join(&names.run);
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
        let mut ports = free_addrs(12)?.into_iter();
        let mut next = || ports.next().context("not enough free ports");
        let mut addrs = HashMap::new();
        for s in Service::ALL {
            let (api, rpc, rpc_http) = match s {
                Service::ReviewSvc => (Some(next()?), Some(next()?), Some(next()?)),
                Service::MovieSvc | Service::UserSvc => (None, Some(next()?), Some(next()?)),
                Service::Enricher | Service::Recommender => (None, None, None),
            };
            addrs.insert(
                s,
                ServiceAddrs {
                    admin: next()?,
                    api,
                    rpc,
                    rpc_http,
                },
            );
        }
        let mut pipeline = Pipeline {
            stack: Stack::from_env(),
            config,
            names,
            bin_dir,
            log_dir,
            addrs,
            running: HashMap::new(),
            logs: Vec::new(),
            starts: HashMap::new(),
            early_exits: HashMap::new(),
            earlier_lives: HashMap::new(),
            replicas: Vec::new(),
        };
        eprintln!(
            "pipeline {}: logs in {}",
            pipeline.names.run,
            pipeline.log_dir.display()
        );
        if let Err(e) = pipeline.prepare_and_start(&services).await {
            eprint!("{}", pipeline.log_tails());
            return Err(e);
        }
        Ok(pipeline)
    }

    async fn prepare_and_start(&mut self, services: &[Service]) -> anyhow::Result<()> {
        // The catalogues and review-svc's keyspace and topic, side by side.
        let seeds = [
            self.one_shot(Service::MovieSvc, self.seed_args(Service::MovieSvc))?,
            self.one_shot(Service::UserSvc, self.seed_args(Service::UserSvc))?,
            self.one_shot(Service::ReviewSvc, self.migrate_args())?,
        ];
        for (what, child, log) in seeds {
            wait_exit_ok(&what, child, &log).await?;
        }
        for s in services {
            self.start_service(*s).await?;
        }
        Ok(())
    }

    /// The run's names.
    pub fn names(&self) -> &RunNames {
        &self.names
    }

    /// The stack the run uses.
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// The configuration the run was started with.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// A service's listeners.
    pub fn addrs(&self, service: Service) -> ServiceAddrs {
        self.addrs[&service]
    }

    /// review-svc's API base URL (`http://127.0.0.1:port`).
    pub fn review_api(&self) -> String {
        match self.addrs[&Service::ReviewSvc].api {
            Some(a) => format!("http://{a}"),
            None => unreachable!("review-svc always has an API address"),
        }
    }

    /// The directory of the run's logs.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// Whether `service` is running (started and not killed).
    pub fn is_running(&self, service: Service) -> bool {
        self.running.contains_key(&service)
    }

    /// The process id of a running service.
    pub fn pid(&self, service: Service) -> Option<u32> {
        self.running.get(&service).map(|r| r.child.id())
    }

    /// Starts `service` (again) with its fixed configuration and waits until
    /// its `/readyz` answers 200.
    pub async fn start_service(&mut self, service: Service) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.running.contains_key(&service),
            "{service} is already running"
        );
        let args = self.serve_args(service);
        let mut exits = 0;
        loop {
            let (mut cmd, log) = self.command(service.name(), service.name(), &args)?;
            let child = cmd
                .spawn()
                .with_context(|| format!("starting {service} {args:?}"))?;
            *self.starts.entry(service).or_insert(0) += 1;
            self.running.insert(service, Running { child, log });
            match self.wait_ready(service).await {
                Ok(()) => return Ok(()),
                // Exited during start-up: an orchestrator would start it
                // again, so the harness does too, a bounded number of times
                // (said on stderr and counted in `early_exits`).
                Err(e)
                    if !self.is_running(service) && exits < self.config.restarts_on_early_exit =>
                {
                    exits += 1;
                    *self.early_exits.entry(service).or_insert(0) += 1;
                    eprintln!("{service} exited during start-up, starting it again: {e:#}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Polls `service`'s `/readyz` until it answers 200; fails early if the
    /// process exits.
    pub async fn wait_ready(&mut self, service: Service) -> anyhow::Result<()> {
        let admin = self.addrs[&service].admin;
        let deadline = Instant::now() + READY_DEADLINE;
        let mut last;
        loop {
            if let Some(r) = self.running.get_mut(&service) {
                if let Some(status) = r.child.try_wait()? {
                    let log = r.log.clone();
                    self.running.remove(&service);
                    bail!(
                        "{service} exited ({status}) before it was ready; its log ({}):\n{}",
                        log.display(),
                        tail(&log, TAIL_LINES)
                    );
                }
            } else {
                bail!("{service} is not running");
            }
            match http::get(admin, "/readyz").await {
                Ok((200, _)) => return Ok(()),
                Ok((status, body)) => last = format!("{status} {}", body.trim()),
                Err(e) => last = format!("{e:#}"),
            }
            if Instant::now() > deadline {
                bail!("{service} not ready within {READY_DEADLINE:?}: {last}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Scrapes `service`'s `/metrics` now.
    pub async fn scrape(&self, service: Service) -> anyhow::Result<Metrics> {
        let admin = self.addrs[&service].admin;
        let (status, body) = http::get(admin, "/metrics").await?;
        anyhow::ensure!(status == 200, "{service} /metrics answered {status}");
        Metrics::parse(&body)
    }

    /// The sum of a counter over every life and replica of `service`: the
    /// pages scraped before each SIGKILL or stop plus the running processes' now. (Counts between
    /// the last scrape and a kill are lost, so this is a lower bound.)
    pub async fn metric_total(
        &self,
        service: Service,
        name: &str,
        labels: &[(&str, &str)],
    ) -> anyhow::Result<f64> {
        let mut total: f64 = self
            .earlier_lives
            .get(&service)
            .map(|lives| lives.iter().map(|m| m.sum(name, labels)).sum())
            .unwrap_or(0.0);
        if self.is_running(service) {
            total += self.scrape(service).await?.sum(name, labels);
        }
        for (id, r) in self.replicas.iter().enumerate() {
            if r.service == service && r.running.is_some() {
                total += self.scrape_replica(id).await?.sum(name, labels);
            }
        }
        Ok(total)
    }

    /// How often `service` was started.
    pub fn starts(&self, service: Service) -> u32 {
        self.starts.get(&service).copied().unwrap_or(0)
    }

    /// Runs `recommender reconcile` over the run's keyspaces: the batch
    /// recomputation from review-svc's reviews against the recommender's
    /// tables.
    pub async fn reconcile(&self) -> anyhow::Result<Reconciled> {
        let out = tokio::process::Command::new(self.bin_dir.join(Service::Recommender.name()))
            .args(strings([
                "reconcile",
                "--cql-nodes",
                &self.stack.cql_nodes.join(","),
                "--review-keyspace",
                &self.names.review_keyspace,
                "--keyspace",
                &self.names.recommender_keyspace,
                "--brokers",
                &self.stack.kafka_brokers,
                "--changelog-topic",
                &self.names.recommender_changelog(),
            ]))
            .env("CINEREC_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .await
            .context("running recommender reconcile")?;
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        match out.status.code() {
            Some(0) => Ok(Reconciled {
                agrees: true,
                report,
            }),
            Some(1) => Ok(Reconciled {
                agrees: false,
                report,
            }),
            _ => bail!(
                "recommender reconcile failed ({}): {report}{stderr}",
                out.status
            ),
        }
    }

    /// Stops every service and deletes what the run created on the shared
    /// stack: its Kafka topics, Cassandra keyspaces and PostgreSQL schemas
    /// (tests call this when they passed; a failed run keeps its data for a
    /// look). The logs stay.
    pub async fn cleanup(mut self) -> anyhow::Result<()> {
        for (_, mut r) in self.running.drain() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
        for mut r in self.replicas.drain(..).filter_map(|r| r.running) {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
        let n = &self.names;
        let changelog = n.recommender_changelog();
        let topics = [
            n.changes_topic.as_str(),
            n.enriched_topic.as_str(),
            n.changes_dlq.as_str(),
            n.enriched_dlq.as_str(),
            &changelog,
        ];
        // A topic nobody created (no DLQ record) is not an error.
        cinerec_service_kit::kafka::delete_topics(&self.stack.kafka_brokers, &topics)
            .await
            .context("deleting the run's topics")?;
        let session = proof::cql_session(&self).await?;
        for ks in [&n.review_keyspace, &n.recommender_keyspace] {
            session
                .query_unpaged(format!("DROP KEYSPACE IF EXISTS {ks}"), &[])
                .await
                .with_context(|| format!("dropping keyspace {ks}"))?;
        }
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.stack.database_url)
            .await
            .with_context(|| format!("connecting {}", self.stack.database_url))?;
        for schema in [&n.movie_schema, &n.user_schema] {
            sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(&pool)
                .await
                .with_context(|| format!("dropping schema {schema}"))?;
        }
        Ok(())
    }

    /// The last lines of every log of the run, for a failure message.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for (label, path) in &self.logs {
            out.push_str(&format!("----- {label}: {} -----\n", path.display()));
            out.push_str(&tail(path, TAIL_LINES));
        }
        out
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        for (_, mut r) in self.running.drain() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
        for mut r in self.replicas.drain(..).filter_map(|r| r.running) {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
        if std::thread::panicking() {
            eprint!("{}", self.log_tails());
        }
    }
}

/// The repository root (this crate's parent directory).
pub fn repo_root() -> anyhow::Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .context("tests/ has no parent")
}
