//! A consumer *process* on the runtime (`stream-echo`) is SIGKILLed while it
//! drains a backlog, restarted with the same group and cache namespace, and
//! finally stopped with SIGTERM: every event reaches the sink at least once
//! (nothing lost), none goes to the DLQ, and the graceful stop exits 0. The
//! shared flag names (`--brokers`, `--group`, `--source-topic`,
//! `--cache-urls`, `--cache-namespace`, `--in-flight-ttl-ms`,
//! `--batch-size`, `--batch-linger-ms`) are what it is started with.

mod common;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::bail;
use cinerec_tests::POLL_DEADLINE;
use common::{Received, World, create_topic};
use tokio::process::{Child, Command};

const EVENTS: usize = 60;

fn spawn(world: &World, sink: &str) -> anyhow::Result<Child> {
    let cache = world.cache();
    Ok(Command::new(env!("CARGO_BIN_EXE_stream-echo"))
        .args(["--brokers", &world.stack.kafka_brokers])
        .args(["--group", &world.group])
        .args(["--source-topic", &world.source_topic])
        .args(["--sink-topic", sink])
        .args(["--cache-urls", &cache.cache_urls])
        .args(["--cache-namespace", &cache.cache_namespace])
        .args(["--in-flight-ttl-ms", "3000"])
        .args(["--batch-size", "4", "--batch-linger-ms", "1"])
        .args(["--admin-addr", "127.0.0.1:0", "--log", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?)
}

fn keys(records: &[Received]) -> HashSet<String> {
    records
        .iter()
        .filter_map(|r| r.key.as_deref())
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

#[tokio::test]
async fn sigkill_and_restart_lose_nothing() -> anyhow::Result<()> {
    let world = World::start("stream_kill9").await?;
    let sink = format!("{}.out", world.source_topic);
    create_topic(&world.stack, &sink, 1).await?;
    let mut expected = HashSet::new();
    for i in 0..EVENTS {
        let id = format!("e{i}");
        world.event(&id, "payload").await?;
        expected.insert(id);
    }

    let mut first = spawn(&world, &sink)?;
    world.read_until(&sink, |r| keys(r).len() >= 8).await?;
    first.start_kill()?; // SIGKILL
    first.wait().await?;

    let mut second = spawn(&world, &sink)?;
    let records = world
        .read_until(&sink, |r| expected.is_subset(&keys(r)))
        .await?;
    assert!(records.len() >= EVENTS);

    // Graceful stop: SIGTERM, exit 0.
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
