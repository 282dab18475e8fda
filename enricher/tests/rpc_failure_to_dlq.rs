//! An event whose RPCs keep failing goes to `<source>.dlq` after the retry
//! budget (the enricher's `Outcome::Dead`), with its attempts and its
//! `traceparent` in headers. (Undecodable records and the DLQ mechanics are
//! the runtime's: `stream/tests/poison_to_dlq.rs`.)

mod common;

use common::World;
use enricher::pipeline::{HEADER_ATTEMPTS, HEADER_ERROR};

#[tokio::test]
async fn an_unreachable_review_service_sends_events_to_the_dlq_after_retries() -> anyhow::Result<()>
{
    let world = World::start("enr_rpcdown").await?;
    let ev = world.create(9, 10, 5.0).await?;
    world
        .publish(
            &ev,
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        )
        .await?;

    // A port nobody listens on: every getReviews attempt is refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut config = world.config();
    config.review_rpc = closed.local_addr()?.to_string();
    drop(closed);
    config.retry_attempts = 3;
    let (shutdown, handle, task) = world.spawn_enricher(config).await?;

    let dlq = world
        .read_until(&world.dlq_topic, |r| !r.is_empty())
        .await?;
    let r = &dlq[0];
    assert!(
        r.headers[HEADER_ERROR].contains("getReviews"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.headers[HEADER_ATTEMPTS], "3");
    assert_eq!(
        r.headers.get("traceparent").map(String::as_str),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );
    assert_eq!(r.payload.as_deref(), Some(&ev.encode()?[..]));
    world
        .wait_stats(&handle, "1 dead", |s| s.dlq == 1 && s.processed == 0)
        .await?;
    shutdown.trigger();
    task.await??;
    world.cleanup().await
}
