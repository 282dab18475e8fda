//! The recommender *binary* is SIGKILLed mid-stream, restarted on the same
//! keyspace, group and cache namespace: the tables end equal to the batch
//! recomputation; a SIGTERM then stops it with exit status 0.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::bail;
use cinerec_tests::POLL_DEADLINE;
use common::World;
use tokio::process::{Child, Command};

fn spawn(config: &recommender::Config, admin: &str) -> anyhow::Result<Child> {
    Ok(Command::new(env!("CARGO_BIN_EXE_recommender"))
        .arg("run")
        .args(["--brokers", &config.kafka.brokers])
        .args(["--group", &config.kafka.group])
        .args(["--source-topic", &config.kafka.source_topic])
        .args(["--cache-urls", &config.cache.cache_urls])
        .args(["--cache-namespace", &config.cache.cache_namespace])
        .args([
            "--in-flight-ttl-ms",
            &config.cache.in_flight_ttl_ms.to_string(),
        ])
        .args(["--cql-nodes", &config.cql.cql_nodes.join(",")])
        .args(["--keyspace", &config.cql.keyspace])
        .args(["--batch-size", "5", "--batch-linger-ms", "1"])
        .args(["--refresh-interval-ms", "200"])
        .args(["--admin-addr", admin, "--log", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?)
}

/// A loopback address with a port free a moment ago.
fn free_port() -> anyhow::Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.to_string())
}

/// (status line, body) of an HTTP/1.0 GET.
async fn get(addr: &str, path: &str) -> anyhow::Result<(String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    let status = out.lines().next().unwrap_or_default().to_owned();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Ok((status, body))
}

#[tokio::test]
async fn sigkill_mid_stream_then_restart_ends_equal_to_batch() -> anyhow::Result<()> {
    let world = World::start("rec_kill9", 3).await?;
    let mut events = common::history(9, 200, 25, 30);
    for ev in &events {
        world.publish(ev).await?;
    }
    let config = world.config();
    let mut first = spawn(&config, "127.0.0.1:0")?;
    let deadline = Instant::now() + POLL_DEADLINE;
    // Kill once part of the stream is checkpointed.
    loop {
        if world.checkpointed().await.is_ok_and(|n| n >= 20) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the first recommender checkpointed nothing within {POLL_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.start_kill()?; // SIGKILL
    first.wait().await?;

    let admin = free_port()?;
    let mut second = spawn(&config, &admin)?;
    // One event after the restart, so the second applies at least one (the
    // first may have applied all the others before it died).
    let late = common::event(uuid::Uuid::new_v4(), 1, 1, Some(5.0), 1);
    world.publish(&late).await?;
    events.push(late);
    world.wait_matches(&events).await?;
    // Ready (model rebuilt, Kafka and Cassandra reachable), and the
    // end-to-end latency histogram is exported.
    let (status, _) = get(&admin, "/readyz").await?;
    assert!(status.contains(" 200"), "{status}");
    let (_, metrics) = get(&admin, "/metrics").await?;
    assert!(
        metrics.contains("recommender_event_latency_seconds_bucket"),
        "{metrics}"
    );

    let pid = second.id().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    assert!(status.success());
    let deadline = Instant::now() + POLL_DEADLINE;
    loop {
        if let Some(status) = second.try_wait()? {
            assert!(status.success(), "graceful stop: {status}");
            break;
        }
        if Instant::now() > deadline {
            bail!("no exit within {POLL_DEADLINE:?} of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
