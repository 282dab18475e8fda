//! What the end-to-end tests check once a run has settled: the recommender's
//! `review_states` against what the load generator saw acknowledged, and
//! reconciliation polled until it agrees.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
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

/// One row of the recommender's `review_states`.
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
    SessionBuilder::new()
        .known_nodes(nodes)
        .build()
        .await
        .map_err(|e| unreachable("Cassandra", &nodes.join(","), e))
}

/// Every row of the run's `review_states`.
pub async fn review_states(
    session: &Session,
    p: &Pipeline,
) -> anyhow::Result<HashMap<Uuid, ReviewState>> {
    let ks = &p.names().recommender_keyspace;
    let mut rows = session
        .query_iter(
            format!("SELECT review_id, version, deleted FROM {ks}.review_states"),
            &[],
        )
        .await
        .with_context(|| format!("reading {ks}.review_states"))?
        .rows_stream::<(Uuid, Option<i64>, Option<bool>)>()?;
    let mut out = HashMap::new();
    while let Some((id, version, deleted)) = rows.try_next().await? {
        out.insert(
            id,
            ReviewState {
                version: version.unwrap_or_default(),
                deleted: deleted.unwrap_or_default(),
            },
        );
    }
    Ok(out)
}

/// The acknowledged reviews `review_states` does not reflect (missing, at an
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
    /// missing from `review_states`, so reconcile was not run yet).
    pub reconciled: Option<Reconciled>,
    /// Acknowledged reviews `review_states` did not reflect at the end.
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
                "{} acknowledged reviews not reflected in review_states, e.g. {:?}\n",
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
/// missing from `review_states`) before it gives up: consumers in a debug
/// build on a shared 2-core box drain a backlog slowly, but steadily.
pub const STALL: Duration = Duration::from_secs(120);

/// Polls until every acknowledged review is reflected in `review_states`
/// and reconciliation reports zero differences, every few seconds, until
/// `deadline` or [`STALL`] without progress; returns where it ended either
/// way (the caller asserts [`Settled::ok`] after printing its summary).
pub async fn settle(
    p: &Pipeline,
    acked: &HashMap<Uuid, Acked>,
    deadline: Duration,
) -> anyhow::Result<Settled> {
    let session = cql_session(p).await?;
    let started = Instant::now();
    let mut said = Instant::now();
    let (mut fewest, mut progressed) = (usize::MAX, Instant::now());
    loop {
        let states = review_states(&session, p).await?;
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
