//! The store trait — one zone that executes a pipelined batch of [`Op`]s — and
//! its network implementation for memcached and Redis servers.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::future::BoxFuture;

use crate::config::{CacheConfig, ZoneAddr};
use crate::conn::Conn;
use crate::error::{Error, ErrorKind, Result};
use crate::proto::{self, Op, Reply};

/// One replica (zone) of a cache.
///
/// `execute` sends all `ops` as one pipelined batch and returns exactly one
/// [`Reply`] per op, in order; an `Err` means the whole batch failed (the zone
/// is unreachable, timed out, or garbled the stream). Implementations must
/// bound the time they take: the cache relies on a failing zone answering
/// within its timeout so that one outage never stalls the caller.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Name for logs and errors, e.g. `memcached://127.0.0.1:11311`.
    fn name(&self) -> &str;

    /// Execute `ops` as one pipelined batch.
    fn execute<'a>(&'a self, ops: &'a [Op<'a>]) -> BoxFuture<'a, Result<Vec<Reply>>>;
}

/// Connection state of a [`NetStore`].
#[derive(Debug)]
enum State {
    /// Never connected, or the connection broke and no attempt failed since.
    Idle,
    /// Connected.
    Up(Arc<Conn>),
    /// The last attempt failed: fail fast until `until`, then try again.
    Down { until: Instant },
}

/// A memcached or Redis server reached over one pipelined TCP connection,
/// with a per-operation timeout and a retry interval after failures.
#[derive(Debug)]
pub struct NetStore {
    addr: ZoneAddr,
    name: String,
    socket: String,
    op_timeout: Duration,
    retry_interval: Duration,
    max_value: usize,
    queue_depth: usize,
    state: Mutex<State>,
    /// Serialises connection attempts so that a burst of callers opens one
    /// connection, not one each.
    connecting: tokio::sync::Mutex<()>,
}

impl NetStore {
    /// A store for `addr` with the timing limits of `config`. Connects lazily.
    pub fn new(addr: ZoneAddr, config: &CacheConfig) -> Self {
        NetStore {
            name: addr.to_string(),
            socket: addr.socket_addr(),
            addr,
            op_timeout: config.op_timeout,
            retry_interval: config.retry_interval,
            max_value: config.max_value_size,
            queue_depth: config.queue_depth,
            state: Mutex::new(State::Idle),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave `State` half-written
        // (every write is a single assignment), so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live connection, or why there is none right now.
    fn current(&self) -> Option<Result<Arc<Conn>>> {
        match &*self.state() {
            State::Up(c) if !c.is_broken() => Some(Ok(c.clone())),
            State::Down { until } if Instant::now() < *until => Some(Err(Error::new(
                ErrorKind::Unavailable,
                format!("{} is marked down after a recent failure", self.name),
            ))),
            _ => None,
        }
    }

    async fn conn(&self) -> Result<Arc<Conn>> {
        if let Some(c) = self.current() {
            return c;
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(c) = self.current() {
            return c;
        }
        let was_down = matches!(*self.state(), State::Down { .. });
        let conn = Arc::new(
            Conn::connect(
                &self.socket,
                self.addr.backend,
                self.max_value,
                self.queue_depth,
            )
            .await?,
        );
        *self.state() = State::Up(conn.clone());
        if was_down {
            tracing::info!(zone = %self.name, "cache zone reachable again");
        }
        Ok(conn)
    }

    fn mark_down(&self, error: &Error) {
        let mut st = self.state();
        if !matches!(*st, State::Down { .. }) {
            tracing::warn!(zone = %self.name, %error, retry_in = ?self.retry_interval, "cache zone down");
        }
        *st = State::Down {
            until: Instant::now() + self.retry_interval,
        };
    }

    async fn run(&self, bytes: BytesMut, expects: Vec<proto::Expect>) -> Result<Vec<Reply>> {
        let attempt = async { self.conn().await?.call(bytes, expects).await };
        let result = match tokio::time::timeout(self.op_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("{} did not answer within {:?}", self.name, self.op_timeout),
            )),
        };
        if let Err(e) = &result {
            // A timed-out request may still be answered later, so the
            // connection is out of step with its callers: drop it.
            if e.is_zone_failure() && e.kind() != ErrorKind::Unavailable {
                self.mark_down(e);
            }
        }
        result
    }
}

impl Store for NetStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn execute<'a>(&'a self, ops: &'a [Op<'a>]) -> BoxFuture<'a, Result<Vec<Reply>>> {
        let mut bytes = BytesMut::with_capacity(ops.len() * 48);
        let mut expects = Vec::with_capacity(ops.len());
        for op in ops {
            proto::encode(self.addr.backend, op, &mut bytes);
            expects.push(op.expect());
        }
        Box::pin(self.run(bytes, expects))
    }
}
