//! Circuit breaking: stop sending to a peer that keeps failing.
//!
//! [`CircuitBreaker`] watches the outcome of each call:
//!
//! - **closed** (normal): calls go through; `failure_threshold` consecutive
//!   *failures* open the circuit. A failure is an [`Error`] of kind
//!   [`Kind::Transport`] or [`Kind::Timeout`] — the peer could not be reached
//!   or did not answer in time. Any reply, including a declared or system
//!   error from the server, is an answer and counts as a success (it resets
//!   the count); other local errors (encoding, unknown message) count as
//!   neither.
//! - **open**: calls fail at once with [`Kind::CircuitOpen`], without
//!   reaching the inner service, for `cool_down`.
//! - **half-open** (after the cool-down): exactly one call, the probe, goes
//!   through; the others keep failing fast. A successful probe closes the
//!   circuit; a failed one opens it for another cool-down; a probe that ends
//!   neither way (dropped, or a local error) lets the next call probe.
//!
//! Clones share one circuit (one per peer: put the breaker around the
//! client of one endpoint, inside a balancer). Admission is decided in
//! `poll_ready`, so a call that will be refused holds no readiness (e.g. a
//! concurrency permit) of the inner service; a refusal decided earlier is
//! decided again at the next `poll_ready`, so a cool-down that ended in
//! between lets the call probe. Time is `tokio::time`, so tests can pause it.
//!
//! **Inside a balancer.** When the inner service reports its load
//! ([`tower::load::Load`], e.g. `tower::load::PendingRequests`), so does the
//! breaker, as a [`BreakerLoad`]: the inner load while the circuit lets calls
//! through, and [`BreakerLoad::Refusing`] — above every load — while it is
//! open or another call is probing. `tower::balance::p2c` compares the loads
//! of two endpoints and picks the lower, so it sends calls to endpoints whose
//! circuit is closed, and the probe of one whose cool-down ended, instead of
//! letting them be refused.
//!
//! Where it goes in a stack, and why, is in the crate README ("Layers and
//! how to stack them").

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::error::{Error, Kind};

/// Whether an error means the peer failed (as opposed to an answer, or a
/// mistake on our side).
fn is_peer_failure(e: &Error) -> bool {
    matches!(e.kind(), Kind::Transport | Kind::Timeout)
}

/// The circuit's state, shared by all clones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Calls flow; `failures` consecutive peer failures so far.
    Closed { failures: u32 },
    /// Calls are refused until `until`.
    Open { until: Instant },
    /// One probe may go; `probing` while it is in flight.
    HalfOpen { probing: bool },
}

/// What the circuit looks like from outside, for health reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Calls go through.
    Closed,
    /// Calls fail fast with [`Kind::CircuitOpen`].
    Open,
    /// A probe may go (or is in flight); other calls fail fast.
    HalfOpen,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    failure_threshold: u32,
    cool_down: Duration,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn status(&self) -> Status {
        match *self.lock() {
            State::Closed { .. } => Status::Closed,
            State::Open { until } if Instant::now() < until => Status::Open,
            State::Open { .. } | State::HalfOpen { .. } => Status::HalfOpen,
        }
    }

    /// Decides whether the next call may go, moving open → half-open when
    /// the cool-down has passed.
    fn admit(&self) -> Admission {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Admission::Go,
            State::Open { until } if Instant::now() < until => Admission::Refuse,
            State::Open { .. } | State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                tracing::info!("avro-rpc circuit half-open: probing the peer with one call");
                Admission::Probe
            }
            State::HalfOpen { probing: true } => Admission::Refuse,
        }
    }

    fn record(&self, probe: bool, outcome: Outcome) {
        let mut state = self.lock();
        let next = match (outcome, *state) {
            (Outcome::Success, State::Closed { failures: 0 }) => return,
            (Outcome::Success, _) => {
                if probe {
                    tracing::info!("avro-rpc circuit closed: the probe succeeded");
                }
                State::Closed { failures: 0 }
            }
            (Outcome::Failure, State::Closed { failures }) => {
                let failures = failures.saturating_add(1);
                if failures >= self.failure_threshold {
                    tracing::warn!(
                        failures,
                        cool_down_ms = self.cool_down.as_millis() as u64,
                        "avro-rpc circuit opened: consecutive transport failures or timeouts"
                    );
                    State::Open {
                        until: Instant::now() + self.cool_down,
                    }
                } else {
                    State::Closed { failures }
                }
            }
            (Outcome::Failure, State::HalfOpen { .. }) if probe => {
                tracing::warn!(
                    cool_down_ms = self.cool_down.as_millis() as u64,
                    "avro-rpc circuit re-opened: the probe failed"
                );
                State::Open {
                    until: Instant::now() + self.cool_down,
                }
            }
            // A call admitted before the circuit opened, failing late: the
            // circuit is already open (or probing); nothing to add.
            (Outcome::Failure, other) => other,
            (Outcome::Neither, State::HalfOpen { probing: true }) if probe => {
                State::HalfOpen { probing: false }
            }
            (Outcome::Neither, other) => other,
        };
        *state = next;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Go,
    Probe,
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
    Neither,
}

/// Fails calls fast while its peer is failing; see the [module docs](self).
#[derive(Debug)]
pub struct CircuitBreaker<S> {
    inner: S,
    shared: Arc<Shared>,
    /// Decided by `poll_ready`, consumed by `call`.
    admission: Option<Admission>,
}

impl<S: Clone> Clone for CircuitBreaker<S> {
    fn clone(&self) -> Self {
        CircuitBreaker {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            admission: None,
        }
    }
}

impl<S> Drop for CircuitBreaker<S> {
    fn drop(&mut self) {
        // Made ready as the probe but never called: free the half-open slot.
        if self.admission == Some(Admission::Probe) {
            self.shared.record(true, Outcome::Neither);
        }
    }
}

impl<S> CircuitBreaker<S> {
    /// Opens after `failure_threshold` (at least 1) consecutive failures,
    /// for `cool_down`.
    pub fn new(inner: S, failure_threshold: u32, cool_down: Duration) -> Self {
        CircuitBreaker {
            inner,
            shared: Arc::new(Shared {
                state: Mutex::new(State::Closed { failures: 0 }),
                failure_threshold: failure_threshold.max(1),
                cool_down,
            }),
            admission: None,
        }
    }

    /// Whether a call admitted now would be refused: open and cooling down,
    /// or half-open with another call probing.
    fn refusing(&self) -> bool {
        match *self.shared.lock() {
            State::Closed { .. } | State::HalfOpen { probing: false } => false,
            State::Open { until } => Instant::now() < until,
            State::HalfOpen { probing: true } => true,
        }
    }

    /// The circuit's current state (shared by all clones).
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// A handle that reports this circuit's state after the breaker has gone
    /// into a stack (a balancer, a buffer) where it can no longer be reached:
    /// for `/readyz` or a gauge.
    pub fn monitor(&self) -> Monitor {
        Monitor {
            shared: self.shared.clone(),
        }
    }
}

/// Reports a circuit's state; see [`CircuitBreaker::monitor`].
#[derive(Debug, Clone)]
pub struct Monitor {
    shared: Arc<Shared>,
}

impl Monitor {
    /// The circuit's current state.
    pub fn status(&self) -> Status {
        self.shared.status()
    }
}

/// Applies [`CircuitBreaker`].
#[derive(Debug, Clone, Copy)]
pub struct CircuitBreakerLayer {
    failure_threshold: u32,
    cool_down: Duration,
}

impl CircuitBreakerLayer {
    /// Opens after `failure_threshold` consecutive transport failures or
    /// timeouts; probes again after `cool_down`.
    pub fn new(failure_threshold: u32, cool_down: Duration) -> Self {
        CircuitBreakerLayer {
            failure_threshold,
            cool_down,
        }
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;
    fn layer(&self, inner: S) -> CircuitBreaker<S> {
        CircuitBreaker::new(inner, self.failure_threshold, self.cool_down)
    }
}

impl<S, Req> Service<Req> for CircuitBreaker<S>
where
    S: Service<Req, Error = Error>,
{
    type Response = S::Response;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let admission = match self.admission {
            // A refusal holds nothing: decide again (the cool-down may have
            // ended since; a balancer polls a ready service again before it
            // calls it).
            Some(a) if a != Admission::Refuse => a,
            _ => {
                let a = self.shared.admit();
                self.admission = Some(a);
                a
            }
        };
        match admission {
            // Ready to refuse: the call fails fast without the inner service.
            Admission::Refuse => Poll::Ready(Ok(())),
            Admission::Go | Admission::Probe => match self.inner.poll_ready(cx) {
                Poll::Ready(Err(e)) => {
                    // The inner service broke before the call: that is the
                    // peer failing too, and a probe must not stay in flight.
                    self.admission = None;
                    let outcome = if is_peer_failure(&e) {
                        Outcome::Failure
                    } else {
                        Outcome::Neither
                    };
                    self.shared.record(admission == Admission::Probe, outcome);
                    Poll::Ready(Err(e))
                }
                other => other,
            },
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let admission = self
            .admission
            .take()
            .expect("CircuitBreaker::call without poll_ready");
        match admission {
            Admission::Refuse => ResponseFuture {
                inner: None,
                refused: true,
                guard: None,
            },
            Admission::Go | Admission::Probe => ResponseFuture {
                inner: Some(self.inner.call(req)),
                refused: false,
                guard: Some(Guard {
                    shared: self.shared.clone(),
                    probe: admission == Admission::Probe,
                    done: false,
                }),
            },
        }
    }
}

/// The load a [`CircuitBreaker`] reports (see the [module docs](self)):
/// ordered `Available(_)` (by the inner load) below `Refusing`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub enum BreakerLoad<M> {
    /// Calls go through (closed, or this service holds the probe, or the
    /// cool-down is over): the inner service's load.
    Available(M),
    /// A call would be refused: open and cooling down, or another call is
    /// probing.
    Refusing,
}

impl<S: tower::load::Load> tower::load::Load for CircuitBreaker<S> {
    type Metric = BreakerLoad<S::Metric>;

    fn load(&self) -> Self::Metric {
        // The probe's holder must be picked, or the circuit stays half-open.
        if self.admission == Some(Admission::Probe) || !self.refusing() {
            BreakerLoad::Available(self.inner.load())
        } else {
            BreakerLoad::Refusing
        }
    }
}

/// Records a call's outcome; a probe dropped before it finished frees the
/// half-open slot for the next call.
#[derive(Debug)]
struct Guard {
    shared: Arc<Shared>,
    probe: bool,
    /// Set once the outcome is recorded; otherwise `drop` records `Neither`.
    done: bool,
}

impl Guard {
    fn finish(mut self, outcome: Outcome) {
        self.shared.record(self.probe, outcome);
        self.done = true;
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.done {
            self.shared.record(self.probe, Outcome::Neither);
        }
    }
}

pin_project! {
    /// Response future of [`CircuitBreaker`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        refused: bool,
        guard: Option<Guard>,
    }
}

impl<F, T> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, Error>>,
{
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            debug_assert!(*this.refused);
            return Poll::Ready(Err(Error::new(
                Kind::CircuitOpen,
                "the peer is failing; call refused without being sent",
            )));
        };
        let result = std::task::ready!(inner.poll(cx));
        if let Some(guard) = this.guard.take() {
            guard.finish(match &result {
                Ok(_) => Outcome::Success,
                Err(e) if is_peer_failure(e) => Outcome::Failure,
                Err(_) => Outcome::Neither,
            });
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests;
