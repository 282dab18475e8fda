//! What the end-to-end tests check once a run has settled: the recommender's
//! durable state (its changelog topic of review states) against what the
//! load generator saw acknowledged, and reconciliation polled until it agrees.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use scylla::client::session::Session;
use uuid::Uuid;

use super::{Pipeline, Reconciled};
use crate::unreachable;

/// The latest version of one review its writer saw acknowledged (the load
/// generator's report says; the harness itself does not depend on loadgen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    /// Its version.
    pub version: i64,
    /// Whether that version is a tombstone.
    pub deleted: bool,
}

/// The latest state of one review in the recommender's changelog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewState {
    /// The applied version.
    pub version: i64,
    /// Whether it is a tombstone.
    pub deleted: bool,
}

/// A session to the stack's Cassandra.
pub async fn cql_session(p: &Pipeline) -> anyhow::Result<Session> {
    let nodes = &p.stack().cql_nodes;
    cinerec_service_kit::cql::connect(nodes, None)
        .await
        .map_err(|e| unreachable("Cassandra", &e.nodes, e.source))
}

/// The latest state of every review in the run's recommender changelog
/// (every partition read from the beginning to its end now).
pub async fn review_states(p: &Pipeline) -> anyhow::Result<HashMap<Uuid, ReviewState>> {
    use rdkafka::Message as _;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let brokers = &p.stack().kafka_brokers;
    let topic = p.names().recommender_changelog();
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-proof-{}", Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()?;
    let md = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .with_context(|| format!("metadata of {topic}"))?;
    let partitions = md.topics().first().map_or(0, |t| t.partitions().len());
    let mut tpl = rdkafka::TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in 0..i32::try_from(partitions)? {
        tpl.add_partition_offset(&topic, p, rdkafka::Offset::Beginning)?;
        let (low, high) = consumer.fetch_watermarks(&topic, p, Duration::from_secs(10))?;
        if high > low {
            ends.insert(p, high);
        }
    }
    consumer.assign(&tpl)?;
    let mut out: HashMap<Uuid, ReviewState> = HashMap::new();
    while !ends.is_empty() {
        let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .with_context(|| format!("reading {topic}"))??;
        if ends
            .get(&m.partition())
            .is_some_and(|end| m.offset() + 1 >= *end)
        {
            ends.remove(&m.partition());
        }
        let Some(Ok(ev)) = m.payload().map(cinerec_events::EnrichedReview::decode) else {
            anyhow::bail!(
                "{topic}: record at {} of partition {} does not decode",
                m.offset(),
                m.partition()
            );
        };
        let state = ReviewState {
            version: ev.version,
            deleted: ev.deleted || ev.rating.is_none(),
        };
        if out
            .get(&ev.review_id)
            .is_none_or(|have| have.version < state.version)
        {
            out.insert(ev.review_id, state);
        }
    }
    Ok(out)
}

/// The acknowledged reviews `changelog does not reflect (missing, at an
/// older version, or at the same version with another tombstone flag), as
/// `(review id, acknowledged, found)`.
pub fn unreflected(
    acked: &HashMap<Uuid, Acked>,
    states: &HashMap<Uuid, ReviewState>,
) -> Vec<(Uuid, Acked, Option<ReviewState>)> {
    let mut out: Vec<_> = acked
        .iter()
        .filter_map(|(id, a)| {
            let s = states.get(id).copied();
            let ok = s.is_some_and(|s| {
                s.version > a.version || (s.version == a.version && s.deleted == a.deleted)
            });
            (!ok).then_some((*id, *a, s))
        })
        .collect();
    out.sort_by_key(|(id, _, _)| *id);
    out
}

/// Polls `check` every `every` until it returns `Some`, or `deadline` passes
/// (then the last `None`'s description is the error).
pub async fn poll<T, F, Fut>(deadline: Duration, every: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Result<T, String>>>,
{
    let until = Instant::now() + deadline;
    loop {
        match check().await? {
            Ok(t) => return Ok(t),
            Err(why) if Instant::now() > until => {
                anyhow::bail!("not reached within {deadline:?}: {why}")
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// Where a run ended up after [`settle`].
#[derive(Debug, Clone)]
pub struct Settled {
    /// The last reconciliation (`None` when acknowledged reviews were still
    /// missing from the recommender's changelog, so reconcile was not run yet).
    pub reconciled: Option<Reconciled>,
    /// Acknowledged reviews the changelog did not reflect at the end.
    pub unreflected: Vec<(Uuid, Acked, Option<ReviewState>)>,
    /// How long it polled.
    pub took: Duration,
}

impl Settled {
    /// Zero differences and every acknowledged review reflected.
    pub fn ok(&self) -> bool {
        self.unreflected.is_empty() && self.reconciled.as_ref().is_some_and(|r| r.agrees)
    }

    /// What is wrong, for an assertion message ("" when [`ok`](Self::ok)).
    pub fn problems(&self) -> String {
        let mut out = String::new();
        if !self.unreflected.is_empty() {
            out.push_str(&format!(
                "{} acknowledged reviews not reflected in the recommender's changelog, e.g. {:?}\n",
                self.unreflected.len(),
                &self.unreflected[..self.unreflected.len().min(5)]
            ));
        }
        match &self.reconciled {
            Some(r) if !r.agrees => {
                out.push_str(&format!("reconcile finds differences:\n{}", r.report))
            }
            Some(_) => {}
            None => out.push_str("reconcile never ran\n"),
        }
        out
    }
}

/// How long [`settle`] goes on without progress (fewer acknowledged reviews
/// missing from the recommender's changelog) before it gives up: consumers in a debug
/// build on a shared 2-core box drain a backlog slowly, but steadily.
pub const STALL: Duration = Duration::from_secs(120);

/// Polls until every acknowledged review is reflected in the recommender's changelog
/// and reconciliation reports zero differences, every few seconds, until
/// `deadline` or [`STALL`] without progress; returns where it ended either
/// way (the caller asserts [`Settled::ok`] after printing its summary).
pub async fn settle(
    p: &Pipeline,
    acked: &HashMap<Uuid, Acked>,
    deadline: Duration,
) -> anyhow::Result<Settled> {
    let started = Instant::now();
    let mut said = Instant::now();
    let (mut fewest, mut progressed) = (usize::MAX, Instant::now());
    loop {
        // A read that fails (the broker just restarted, a partition has no
        // leader yet) is "not yet", polled again like any other.
        let states = match review_states(p).await {
            Ok(states) => states,
            Err(e) if started.elapsed() < deadline => {
                eprintln!("settling: reading the changelog failed ({e:#}); retrying");
                tokio::time::sleep(Duration::from_secs(3)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let unreflected = unreflected(acked, &states);
        let reconciled = if unreflected.is_empty() {
            Some(p.reconcile().await?)
        } else {
            None
        };
        let settled = Settled {
            reconciled,
            unreflected,
            took: started.elapsed(),
        };
        if settled.unreflected.len() < fewest {
            fewest = settled.unreflected.len();
            progressed = Instant::now();
        }
        if settled.ok() || started.elapsed() > deadline || progressed.elapsed() > STALL {
            return Ok(settled);
        }
        if said.elapsed() > Duration::from_secs(30) {
            said = Instant::now();
            let first = settled.problems();
            eprintln!(
                "settling for {:?}: {}",
                started.elapsed(),
                first.lines().next().unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}
