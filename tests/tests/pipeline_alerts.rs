//! Issue 17 point 2: the alert rules of `dev/prometheus/rules.yml`, loaded
//! unchanged into a real Prometheus, fire when the pipeline is in trouble.
//!
//! The test runs the whole pipeline, `stream-lag` (the consumer groups' lag
//! measured from the broker) and its own Prometheus (Debian's `prometheus`
//! binary, a free loopback port, a temporary data directory, a generated
//! config scraping exactly this run's admin ports every second and reading
//! the repository's `rules.yml` as it is, `for:` durations included). Then:
//!
//! 1. after a small load, every recording rule has a series (a guard against
//!    rules over metric names or label values the services do not export),
//!    the enricher's group lag is 0 and no alert of the run is pending;
//! 2. the enricher is stopped and 1 500 reviews are written: `ServiceDown`
//!    fires for the enricher, and `ConsumerLagHigh` fires for its group —
//!    the lag comes from `stream-lag`, so a consumer that is not running
//!    still has a lag that grows (its own gauge went with it);
//! 3. the enricher is started again: it drains the backlog and
//!    `ConsumerLagHigh` resolves.
//!
//! Everything is read through Prometheus's HTTP API (`/api/v1/alerts`,
//! `/api/v1/query`), as an operator's tooling would.

mod pipeline_common;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use cinerec_tests::pipeline::proof::poll;
use cinerec_tests::pipeline::{
    Pipeline, PipelineConfig, READY_DEADLINE, Service, bin_dir, free_addrs, http, repo_root,
};
use pipeline_common::{Load, start_load, with_logs};
use serde_json::Value;

/// What `ConsumerLagHigh` needs: more than its threshold (1 000) records.
const BACKLOG: u64 = 1_500;
/// Longest wait for an alert to fire or resolve: its `for:` (30 s) plus
/// scrapes, rule evaluations and a loaded machine.
const ALERT_DEADLINE: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_enricher_fires_consumer_lag_high_and_service_down() -> anyhow::Result<()> {
    let mut p = Pipeline::start(PipelineConfig::new("alerts")).await?;
    let result = run(&mut p).await;
    with_logs(&p, result)?;
    p.cleanup().await
}

async fn run(p: &mut Pipeline) -> anyhow::Result<()> {
    let names = p.names().clone();
    let lag = StreamLag::start(
        p,
        &[
            (&names.enricher_group, &names.changes_topic),
            (&names.recommender_group, &names.enriched_topic),
        ],
    )
    .await?;
    let mut targets: Vec<(&str, SocketAddr)> = Service::ALL
        .iter()
        .map(|s| (s.name(), p.addrs(*s).admin))
        .collect();
    targets.push(("stream-lag", lag.admin));
    let prom = Prometheus::start(&p.log_dir().join("prometheus"), &targets).await?;
    let result = phases(p, &prom, &names.enricher_group).await;
    if result.is_err() {
        eprintln!("----- prometheus: {} -----", prom.log.display());
        eprint!("{}", tail(&prom.log, 25));
        eprintln!("----- stream-lag: {} -----", lag.log.display());
        eprint!("{}", tail(&lag.log, 25));
    }
    result
}

async fn phases(p: &mut Pipeline, prom: &Prometheus, group: &str) -> anyhow::Result<()> {
    // 1. A healthy run: every recording rule has a series, no alert of the
    // run is pending or firing, and the enricher's group lag is 0.
    let report = start_load(
        p,
        Load {
            ops: 200,
            rate: 100.0,
            duplicate_share: 0.0,
            edit_share: 0.05,
            delete_share: 0.0,
            seed: 17,
        },
    )?
    .await?;
    anyhow::ensure!(report.failed == 0, "{} operations failed", report.failed);
    let series = every_recording_rule_has_a_series(prom, group).await?;
    eprintln!("recording rules with series: {series:?}");
    poll(ALERT_DEADLINE, Duration::from_secs(1), || async {
        let lag = prom
            .value(&format!("cinerec:group_lag:sum{{group=\"{group}\"}}"))
            .await?;
        Ok(match lag {
            Some(v) if v <= 0.0 => Ok(()),
            other => Err(format!("enricher group lag {other:?}, waiting for 0")),
        })
    })
    .await?;
    let active = prom.alerts().await?;
    anyhow::ensure!(
        active.is_empty(),
        "alerts active in a healthy run: {active:?}"
    );

    // 2. The enricher stops; reviews keep coming.
    p.stop(Service::Enricher).await?;
    let report = start_load(
        p,
        Load {
            ops: BACKLOG,
            rate: 300.0,
            duplicate_share: 0.0,
            edit_share: 0.0,
            delete_share: 0.0,
            seed: 18,
        },
    )?
    .await?;
    anyhow::ensure!(report.failed == 0, "{} operations failed", report.failed);
    let fired = poll(ALERT_DEADLINE, Duration::from_secs(2), || async {
        let alerts = prom.alerts().await?;
        let lag = alerts
            .iter()
            .find(|a| a.name() == "ConsumerLagHigh" && a.label("group") == Some(group));
        let down = alerts
            .iter()
            .find(|a| a.name() == "ServiceDown" && a.label("job") == Some("enricher"));
        Ok(match (lag, down) {
            (Some(l), Some(d)) if l.state == "firing" && d.state == "firing" => {
                Ok((l.clone(), d.clone()))
            }
            _ => Err(format!(
                "ConsumerLagHigh {:?}, ServiceDown {:?}",
                lag.map(|a| &a.state),
                down.map(|a| &a.state)
            )),
        })
    })
    .await?;
    eprintln!("fired: {:?}\nfired: {:?}", fired.0, fired.1);
    let value: f64 = fired.0.value.parse().context("ConsumerLagHigh value")?;
    anyhow::ensure!(value > 1_000.0, "ConsumerLagHigh fired at {value}");
    // Only the enricher's group is behind: the recommender, which runs and
    // has nothing new to read, is not.
    let others: Vec<_> = prom
        .alerts()
        .await?
        .into_iter()
        .filter(|a| a.name() == "ConsumerLagHigh" && a.label("group") != Some(group))
        .collect();
    anyhow::ensure!(others.is_empty(), "other groups lag: {others:?}");
    screenshot(prom)?;

    // 3. The enricher comes back, drains, and the lag alert resolves.
    p.start_service(Service::Enricher).await?;
    poll(ALERT_DEADLINE, Duration::from_secs(2), || async {
        let alerts = prom.alerts().await?;
        Ok(
            match alerts
                .iter()
                .find(|a| a.name() == "ConsumerLagHigh" && a.label("group") == Some(group))
            {
                None => Ok(()),
                Some(a) => Err(format!("ConsumerLagHigh still {} at {}", a.state, a.value)),
            },
        )
    })
    .await?;
    Ok(())
}

/// Polls until each recording rule of `rules.yml` has at least one series
/// for this run (a rate needs two scrapes in its window, so not at once).
/// The DLQ and degraded-claim rates exist at 0: their counters are
/// registered at 0.
async fn every_recording_rule_has_a_series(
    prom: &Prometheus,
    group: &str,
) -> anyhow::Result<Vec<String>> {
    let rules = std::fs::read_to_string(rules_path()?)?;
    let recorded: Vec<String> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: "))
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(!recorded.is_empty(), "no recording rule in rules.yml");
    // Where this run's series must show, per rule (the rest: any series).
    let selector = |rule: &str| -> String {
        match rule {
            "cinerec:group_lag:sum" => format!("{rule}{{group=\"{group}\"}}"),
            "cinerec:rpc_error_ratio:rate1m" => format!("{rule}{{job=\"movie-svc\"}}"),
            "cinerec:http_error_ratio:rate1m" => format!("{rule}{{job=\"review-svc\"}}"),
            "cinerec:consumer_lag:sum_by_operator"
            | "cinerec:dlq_events:rate1m"
            | "cinerec:batch_seconds:p99_1m" => format!("{rule}{{operator=\"enricher\"}}"),
            "cinerec:cache_degraded_claims:rate1m" => format!("{rule}{{job=\"enricher\"}}"),
            _ => rule.to_owned(),
        }
    };
    poll(ALERT_DEADLINE, Duration::from_secs(2), || async {
        let mut missing = Vec::new();
        for rule in &recorded {
            let s = selector(rule);
            if prom.query(&s).await?.is_empty() {
                missing.push(s);
            }
        }
        Ok(if missing.is_empty() {
            Ok(recorded.iter().map(|r| selector(r)).collect())
        } else {
            Err(format!("no series yet for {missing:?}"))
        })
    })
    .await
}

/// With `CINEREC_SCREENSHOT_DIR` set (README's pictures), pictures the alerts
/// page with both alerts firing through `dev/prometheus-screenshot`.
fn screenshot(prom: &Prometheus) -> anyhow::Result<()> {
    let Some(dir) = std::env::var_os("CINEREC_SCREENSHOT_DIR") else {
        return Ok(());
    };
    let out = PathBuf::from(dir).join("prometheus.png");
    let status = Command::new(repo_root()?.join("dev/prometheus-screenshot"))
        .arg(format!("http://{}", prom.addr))
        .arg(&out)
        .status()
        .context("running dev/prometheus-screenshot")?;
    anyhow::ensure!(status.success(), "dev/prometheus-screenshot failed");
    Ok(())
}

fn rules_path() -> anyhow::Result<PathBuf> {
    Ok(repo_root()?.join("dev/prometheus/rules.yml"))
}

/// `stream-lag` for the run's groups on a free admin port; killed when dropped.
struct StreamLag {
    child: Child,
    admin: SocketAddr,
    log: PathBuf,
}

impl StreamLag {
    async fn start(p: &Pipeline, groups: &[(&String, &String)]) -> anyhow::Result<StreamLag> {
        let bin = bin_dir()?.join("stream-lag");
        anyhow::ensure!(
            bin.is_file(),
            "{} is not built; run `cargo build -p cinerec-stream --bins` first",
            bin.display()
        );
        let admin = *free_addrs(1)?.first().context("no free port")?;
        let log = p.log_dir().join("stream-lag.log");
        let file = File::create(&log)?;
        let mut cmd = Command::new(bin);
        cmd.args(["--admin-addr", &admin.to_string()])
            .args(["--brokers", &p.stack().kafka_brokers]);
        for (g, t) in groups {
            cmd.args(["--group", &format!("{g}={t}")]);
        }
        let child = cmd
            .env("CINEREC_LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("starting stream-lag")?;
        let lag = StreamLag { child, admin, log };
        wait_http_ok(admin, "/readyz", "stream-lag").await?;
        Ok(lag)
    }
}

impl Drop for StreamLag {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One alert of `/api/v1/alerts`.
#[derive(Debug, Clone)]
struct Alert {
    labels: BTreeMap<String, String>,
    state: String,
    value: String,
}

impl Alert {
    fn name(&self) -> &str {
        self.label("alertname").unwrap_or_default()
    }
    fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// A Prometheus of the test's own; killed when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Prometheus {
    /// Writes a config scraping `targets` (job name, admin address) every
    /// second with the repository's rules, starts Prometheus on a free port
    /// and waits until it is ready.
    async fn start(dir: &Path, targets: &[(&str, SocketAddr)]) -> anyhow::Result<Prometheus> {
        std::fs::create_dir_all(dir.join("data"))?;
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {:?}\nscrape_configs:\n",
            rules_path()?.display().to_string()
        );
        for (job, addr) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs: [{{targets: [\"{addr}\"]}}]\n"
            ));
        }
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let addr = *free_addrs(1)?.first().context("no free port")?;
        let log = dir.join("prometheus.log");
        let file = File::create(&log)?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context(
                "starting prometheus (dev/stack up installs it: apt-get install prometheus)",
            )?;
        let prom = Prometheus { child, addr, log };
        wait_http_ok(addr, "/-/ready", "prometheus").await?;
        Ok(prom)
    }

    /// `GET path` of the API; the `data` of a `success` answer.
    async fn api(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = http::get(self.addr, path).await?;
        let v: Value = serde_json::from_str(&body)
            .with_context(|| format!("{path} answered {status}: {body}"))?;
        anyhow::ensure!(
            status == 200 && v["status"] == "success",
            "{path} answered {status}: {body}"
        );
        Ok(v["data"].clone())
    }

    /// The pending and firing alerts.
    async fn alerts(&self) -> anyhow::Result<Vec<Alert>> {
        let data = self.api("/api/v1/alerts").await?;
        let alerts = data["alerts"]
            .as_array()
            .context("/api/v1/alerts: no alerts array")?;
        alerts
            .iter()
            .map(|a| {
                let labels = a["labels"]
                    .as_object()
                    .context("alert without labels")?
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                Ok(Alert {
                    labels,
                    state: a["state"].as_str().unwrap_or_default().to_owned(),
                    value: a["value"].as_str().unwrap_or_default().to_owned(),
                })
            })
            .collect()
    }

    /// The instant vector of `expr`.
    async fn query(&self, expr: &str) -> anyhow::Result<Vec<Value>> {
        let data = self
            .api(&format!("/api/v1/query?query={}", encode(expr)))
            .await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The value of `expr` when it has exactly one series.
    async fn value(&self, expr: &str) -> anyhow::Result<Option<f64>> {
        let result = self.query(expr).await?;
        match result.as_slice() {
            [one] => {
                let v = one["value"][1].as_str().context("sample without a value")?;
                Ok(Some(v.parse().with_context(|| format!("value {v:?}"))?))
            }
            _ => Ok(None),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `path` on `addr` until it answers 200.
async fn wait_http_ok(addr: SocketAddr, path: &str, what: &str) -> anyhow::Result<()> {
    poll(READY_DEADLINE, Duration::from_millis(200), || async {
        Ok(match http::get(addr, path).await {
            Ok((200, _)) => Ok(()),
            Ok((status, body)) => Err(format!("{what} {path}: {status} {body}")),
            Err(e) => Err(format!("{what} {path}: {e:#}")),
        })
    })
    .await
}

/// Percent-encodes a query parameter (everything but RFC 3986's unreserved).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The last `n` lines of a file ("" when unreadable).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
    out.push('\n');
    out
}
