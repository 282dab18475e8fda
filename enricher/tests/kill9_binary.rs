//! The enricher *binary* is SIGKILLed while it drains a backlog, restarted
//! with the same group and cache namespace, and finally stopped with SIGTERM:
//! every event is enriched at least once, and the graceful stop exits 0.

mod common;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::bail;
use cinerec_tests::POLL_DEADLINE;
use common::World;
use tokio::process::{Child, Command};

const REVIEWS: i64 = 60;

fn spawn(world: &World, config: &enricher::Config) -> anyhow::Result<Child> {
    Ok(Command::new(env!("CARGO_BIN_EXE_enricher"))
        .args(["--brokers", &config.brokers])
        .args(["--group", &config.group])
        .args(["--source-topic", &config.source_topic])
        .args(["--sink-topic", &config.sink_topic])
        .args(["--cache-urls", &config.cache_urls])
        .args(["--cache-namespace", &config.cache_namespace])
        .args(["--in-flight-ttl-ms", &config.in_flight_ttl_ms.to_string()])
        .args(["--review-rpc", &world.endpoints.review.to_string()])
        .args(["--movie-rpc", &world.endpoints.movie.to_string()])
        .args(["--user-rpc", &world.endpoints.user.to_string()])
        .args(["--batch-size", "4", "--batch-linger-ms", "1"])
        .args(["--admin-addr", "127.0.0.1:0", "--log", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?)
}

fn enriched_ids(records: &[common::Received]) -> HashSet<uuid::Uuid> {
    records
        .iter()
        .filter_map(|r| r.enriched().ok())
        .map(|e| e.event_id)
        .collect()
}

#[tokio::test]
async fn sigkill_and_restart_lose_nothing() -> anyhow::Result<()> {
    let world = World::start("enr_kill9").await?;
    let mut expected = HashSet::new();
    for i in 0..REVIEWS {
        let ev = world.create(1 + i % 25, 1 + i % 40, 3.0).await?;
        world.publish(&ev, None).await?;
        expected.insert(ev.event_id);
    }
    let config = world.config();
    // The sink topic must exist before the reader subscribes; the binary
    // creates it, so start it first.
    let mut first = spawn(&world, &config)?;
    world
        .read_until(&world.sink_topic, |r| enriched_ids(r).len() >= 8)
        .await?;
    first.start_kill()?; // SIGKILL
    first.wait().await?;

    let mut second = spawn(&world, &config)?;
    let records = world
        .read_until(&world.sink_topic, |r| expected.is_subset(&enriched_ids(r)))
        .await?;
    assert!(records.len() >= expected.len());

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
    world.cleanup().await
}
