//! What the tests do to a running pipeline: add, kill -9 and stop replicas;
//! kill -9, restart and stop a service; SIGKILL and restart the shared
//! Kafka broker through `dev/stack`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::http::{self, Metrics};
use super::process::{is_zombie, process_start_time, tail};
use super::{
    Pipeline, READY_DEADLINE, Replica, Running, Service, TAIL_LINES, free_addrs, repo_root,
};
use crate::POLL_DEADLINE;

impl Pipeline {
    /// Starts one more instance of a consumer (the enricher or the
    /// recommender) in the same group, or one more review-svc replica (the
    /// same keyspace and topic: its relay shares the change-log shards'
    /// leases), with its own ports, and waits for its `/readyz`. Returns its
    /// id for [`kill9_replica`](Self::kill9_replica),
    /// [`stop_replica`](Self::stop_replica) and
    /// [`replica_api`](Self::replica_api).
    pub async fn add_replica(&mut self, service: Service) -> anyhow::Result<usize> {
        anyhow::ensure!(
            matches!(
                service,
                Service::Enricher | Service::Recommender | Service::ReviewSvc
            ),
            "only the consumers and review-svc scale out, not {service}"
        );
        let mut args = self.serve_args(service);
        let admin = free_addrs(1)?[0];
        set_flag(&mut args, "--admin-addr", &admin.to_string())?;
        let mut api = None;
        if service == Service::ReviewSvc {
            let ports = free_addrs(3)?;
            set_flag(&mut args, "--listen", &ports[0].to_string())?;
            set_flag(&mut args, "--rpc-addr", &ports[1].to_string())?;
            set_flag(&mut args, "--rpc-http-addr", &ports[2].to_string())?;
            api = Some(ports[0]);
        }
        let id = self.replicas.len();
        let label = format!("{}-replica{id}", service.name());
        let (mut cmd, log) = self.command(service.name(), &label, &args)?;
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {label} {args:?}"))?;
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{label} exited ({status}) before it was ready; its log:\n{}",
                    tail(&log, TAIL_LINES)
                );
            }
            if let Ok((200, _)) = http::get(admin, "/readyz").await {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("{label} not ready within {READY_DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.replicas.push(Replica {
            service,
            admin,
            api,
            running: Some(Running { child, log }),
        });
        Ok(id)
    }

    /// A review-svc replica's API base URL (`http://127.0.0.1:port`).
    pub fn replica_api(&self, id: usize) -> Option<String> {
        let api = self.replicas.get(id)?.api?;
        Some(format!("http://{api}"))
    }

    /// The sum of `name` (with `labels`) on replica `id`'s `/metrics` now.
    pub async fn replica_metric(
        &self,
        id: usize,
        name: &str,
        labels: &[(&str, &str)],
    ) -> anyhow::Result<f64> {
        Ok(self.scrape_replica(id).await?.sum(name, labels))
    }

    /// Replica `id`'s `/metrics` now.
    pub(super) async fn scrape_replica(&self, id: usize) -> anyhow::Result<Metrics> {
        let r = self.replicas.get(id).context("no such replica")?;
        let (status, body) = http::get(r.admin, "/metrics").await?;
        anyhow::ensure!(status == 200, "replica {id} /metrics answered {status}");
        Metrics::parse(&body)
    }

    /// SIGKILLs replica `id` (its `/metrics` scraped just before, counted in
    /// [`metric_total`](Self::metric_total)).
    pub async fn kill9_replica(&mut self, id: usize) -> anyhow::Result<()> {
        let page = self.scrape_replica(id).await;
        let r = self.replicas.get_mut(id).context("no such replica")?;
        let mut running = r.running.take().context("replica not running")?;
        if let Ok(m) = page {
            self.earlier_lives.entry(r.service).or_default().push(m);
        }
        running.child.kill().context("SIGKILL replica")?;
        running.child.wait()?;
        Ok(())
    }

    /// SIGTERMs replica `id` and waits for its exit status (a graceful
    /// leave: its partitions are revoked and drained).
    pub async fn stop_replica(&mut self, id: usize) -> anyhow::Result<std::process::ExitStatus> {
        let page = self.scrape_replica(id).await;
        let r = self.replicas.get_mut(id).context("no such replica")?;
        let mut running = r.running.take().context("replica not running")?;
        let service = r.service;
        let status = Command::new("kill")
            .args(["-TERM", &running.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM replica {id} failed");
        let deadline = Instant::now() + POLL_DEADLINE;
        let exit = loop {
            if let Some(status) = running.child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = running.child.kill();
                let _ = running.child.wait();
                bail!("replica {id} did not exit within {POLL_DEADLINE:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // Its final counts: the page before the stop is a lower bound.
        if let Ok(m) = page {
            self.earlier_lives.entry(service).or_default().push(m);
        }
        Ok(exit)
    }

    /// Running replicas of `service`.
    pub fn replicas_running(&self, service: Service) -> usize {
        self.replicas
            .iter()
            .filter(|r| r.service == service && r.running.is_some())
            .count()
    }

    /// How often `service` exited during start-up and was started again.
    pub fn early_exits(&self, service: Service) -> u32 {
        self.early_exits.get(&service).copied().unwrap_or(0)
    }

    /// SIGKILLs `service` (a crash: no drain, no offsets committed, claims
    /// left in flight) and reaps it. Its `/metrics` is scraped just before,
    /// so [`metric_total`](Self::metric_total) still counts that life.
    pub async fn kill9(&mut self, service: Service) -> anyhow::Result<()> {
        if let Ok(m) = self.scrape(service).await {
            self.earlier_lives.entry(service).or_default().push(m);
        }
        let mut r = self
            .running
            .remove(&service)
            .with_context(|| format!("{service} is not running"))?;
        r.child
            .kill()
            .with_context(|| format!("SIGKILL {service}"))?;
        r.child.wait()?;
        Ok(())
    }

    /// [`kill9`](Self::kill9), then [`start_service`](Self::start_service).
    pub async fn kill9_and_restart(&mut self, service: Service) -> anyhow::Result<()> {
        self.kill9(service).await?;
        self.start_service(service).await
    }

    /// Sends SIGTERM and waits for the exit status (a graceful stop).
    pub async fn stop(&mut self, service: Service) -> anyhow::Result<std::process::ExitStatus> {
        let mut r = self
            .running
            .remove(&service)
            .with_context(|| format!("{service} is not running"))?;
        let status = Command::new("kill")
            .args(["-TERM", &r.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM {service} failed");
        let deadline = Instant::now() + POLL_DEADLINE;
        loop {
            if let Some(status) = r.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = r.child.kill();
                let _ = r.child.wait();
                bail!("{service} did not exit within {POLL_DEADLINE:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILLs the shared stack's Kafka broker (the pid `dev/stack` recorded
    /// under `$CINEREC_STACK_DIR/run/kafka.pid`) and starts it again with
    /// `dev/stack up kafka`, which returns once the broker answers a metadata
    /// request. Returns how long the broker was away.
    ///
    /// Every test on this machine shares the broker: put a test that calls
    /// this alone in its own test binary.
    pub async fn restart_kafka(&self) -> anyhow::Result<Duration> {
        let root = repo_root()?;
        let stack_dir = std::env::var_os("CINEREC_STACK_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".stack"));
        let pid_file = stack_dir.join("run").join("kafka.pid");
        let recorded = std::fs::read_to_string(&pid_file)
            .with_context(|| format!("reading {} (is the stack up?)", pid_file.display()))?;
        let mut fields = recorded.split_whitespace();
        let pid: u32 = fields
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("no pid in {}", pid_file.display()))?;
        let started = fields.next().unwrap_or_default().to_owned();
        // The same check as dev/stack's: a recycled pid is never ours.
        anyhow::ensure!(
            process_start_time(pid).as_deref() == Some(started.as_str()),
            "kafka pid {pid} recorded in {} is not running",
            pid_file.display()
        );
        let went = Instant::now();
        let status = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -KILL {pid} (kafka) failed");
        // Wait until it is gone (the port is free) before starting again.
        let deadline = Instant::now() + POLL_DEADLINE;
        while process_start_time(pid).as_deref() == Some(started.as_str()) && !is_zombie(pid) {
            anyhow::ensure!(
                Instant::now() < deadline,
                "kafka pid {pid} survived SIGKILL"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Another user of the stack (a developer's `dev/stack up`, another
        // test) may start the broker at the same moment; then this `up` finds
        // the port taken before the new pid is recorded, and the next one
        // finds the broker recorded and waits for it.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let up = tokio::process::Command::new(root.join("dev/stack"))
                .args(["up", "kafka"])
                .stdin(Stdio::null())
                .output()
                .await
                .context("running dev/stack up kafka")?;
            if up.status.success() {
                break;
            }
            anyhow::ensure!(
                attempts < 5,
                "dev/stack up kafka failed ({}): {}",
                up.status,
                String::from_utf8_lossy(&up.stderr)
            );
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        Ok(went.elapsed())
    }
}

/// Sets the value after `flag` in `args` (which must contain it).
fn set_flag(args: &mut [String], flag: &str, value: &str) -> anyhow::Result<()> {
    let at = args
        .iter()
        .position(|a| a == flag)
        .with_context(|| format!("serve args without {flag}"))?;
    let slot = args
        .get_mut(at + 1)
        .with_context(|| format!("{flag} without a value"))?;
    *slot = value.to_owned();
    Ok(())
}
