//! W3C Trace Context (`traceparent`) propagation in call metadata, without
//! an OpenTelemetry dependency.
//!
//! - [`TraceParent`]: the header value (version `00`: trace id, parent span
//!   id, flags), parsed strictly per the W3C recommendation and formatted
//!   back.
//! - The *current* context of a task is a tokio task-local: set it with
//!   [`scope`] (e.g. around a request your service is handling), read it with
//!   [`current`].
//! - [`injector`] is a client [`TraceLayer`](super::TraceLayer) injector: it
//!   writes `traceparent` = a child of the current context (same trace id
//!   and flags, a new span id) or, with no current context, a new sampled
//!   root.
//! - [`extractor`] is a server [`TraceHandlerLayer`](super::TraceHandlerLayer)
//!   extractor: it records the incoming trace id on the server span
//!   (`trace_id`). [`W3cContextLayer`] wraps a handler so it runs with the
//!   incoming context's child as its current context: calls the handler
//!   makes through an `injector()` client continue the same trace.
//!
//! Malformed or absent `traceparent` values are ignored (a peer's bad
//! metadata never fails a call); `tracestate` is not interpreted.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Extractor, Injector};
use crate::Metadata;

/// The metadata key, as in HTTP.
pub const TRACEPARENT: &str = "traceparent";

/// A W3C `traceparent` (version 00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// 16 bytes, never all zero.
    pub trace_id: u128,
    /// The sender's span id, 8 bytes, never zero.
    pub parent_id: u64,
    /// Trace flags; bit 0 is `sampled`.
    pub flags: u8,
}

impl TraceParent {
    /// A new trace: random ids, sampled.
    pub fn root() -> Self {
        let hi = random_nonzero();
        let lo = random_nonzero();
        TraceParent {
            trace_id: (u128::from(hi) << 64) | u128::from(lo),
            parent_id: random_nonzero(),
            flags: 0x01,
        }
    }

    /// The context a child span sends on: same trace and flags, a new span id.
    pub fn child(&self) -> Self {
        TraceParent {
            parent_id: random_nonzero(),
            ..*self
        }
    }

    /// Whether the `sampled` flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & 0x01 != 0
    }

    /// Parses a header value. Version `00` must be exactly
    /// `00-<32 hex>-<16 hex>-<2 hex>`; a higher version (not `ff`) may carry
    /// more `-`-separated data after those fields, which is ignored. Hex must
    /// be lowercase; all-zero ids are invalid.
    pub fn parse(value: &[u8]) -> Option<Self> {
        let s = std::str::from_utf8(value).ok()?;
        let mut parts = s.splitn(5, '-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let parent = parts.next()?;
        let flags = parts.next()?;
        let rest = parts.next();
        if version.len() != 2 || !is_lower_hex(version) || version == "ff" {
            return None;
        }
        if version == "00" && rest.is_some() {
            return None;
        }
        if trace.len() != 32 || parent.len() != 16 || flags.len() != 2 {
            return None;
        }
        if !is_lower_hex(trace) || !is_lower_hex(parent) || !is_lower_hex(flags) {
            return None;
        }
        let tp = TraceParent {
            trace_id: u128::from_str_radix(trace, 16).ok()?,
            parent_id: u64::from_str_radix(parent, 16).ok()?,
            flags: u8::from_str_radix(flags, 16).ok()?,
        };
        (tp.trace_id != 0 && tp.parent_id != 0).then_some(tp)
    }

    /// Reads `traceparent` from call metadata.
    pub fn from_metadata(metadata: &Metadata) -> Option<Self> {
        Self::parse(metadata.get(TRACEPARENT)?)
    }

    /// Writes this context as `traceparent` into call metadata.
    pub fn inject(&self, metadata: &mut Metadata) {
        metadata.insert(TRACEPARENT.into(), self.to_string().into());
    }
}

impl fmt::Display for TraceParent {
    /// The version-00 header value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Random non-zero u64s: SipHash with the process's random keys over a
/// counter (ids need to be unique and unpredictable enough, not secret).
fn random_nonzero() -> u64 {
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let keys = KEYS.get_or_init(Default::default);
    loop {
        let mut h = keys.build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let v = h.finish();
        if v != 0 {
            return v;
        }
    }
}

tokio::task_local! {
    static CURRENT: Option<TraceParent>;
}

/// The current task's trace context, if one was set with [`scope`] (or by
/// [`W3cContextLayer`] for a handler).
pub fn current() -> Option<TraceParent> {
    CURRENT.try_with(|c| *c).ok().flatten()
}

/// Runs `fut` with `context` as its current trace context.
pub fn scope<F: Future>(
    context: Option<TraceParent>,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<Option<TraceParent>, F> {
    CURRENT.scope(context, fut)
}

/// A client injector: `traceparent` = a child of [`current`], or a new root.
pub fn injector() -> Injector {
    Arc::new(|metadata: &mut Metadata| {
        let context = current().map_or_else(TraceParent::root, |c| c.child());
        context.inject(metadata);
    })
}

/// A server extractor: records the incoming trace id on the server span
/// (field `trace_id`, lowercase hex).
pub fn extractor() -> Extractor {
    Arc::new(|metadata: &Metadata, span: &tracing::Span| {
        if let Some(tp) = TraceParent::from_metadata(metadata) {
            span.record(
                "trace_id",
                tracing::field::display(format_args!("{:032x}", tp.trace_id)),
            );
        }
    })
}

/// Runs a handler with the incoming call's trace context (a child of its
/// `traceparent`: this server's span) as the task's current context. It is
/// current while the handler's future is polled (an `async fn` body), not
/// during the handler's synchronous `call`.
#[cfg(feature = "server")]
#[derive(Debug, Clone)]
pub struct W3cContext<S> {
    inner: S,
}

#[cfg(feature = "server")]
/// Applies [`W3cContext`] to a handler (inside `TraceHandlerLayer`).
#[derive(Debug, Clone, Copy, Default)]
pub struct W3cContextLayer;

#[cfg(feature = "server")]
impl W3cContextLayer {
    /// The layer.
    pub fn new() -> Self {
        W3cContextLayer
    }
}

#[cfg(feature = "server")]
impl<S> tower::Layer<S> for W3cContextLayer {
    type Service = W3cContext<S>;
    fn layer(&self, inner: S) -> W3cContext<S> {
        W3cContext { inner }
    }
}

#[cfg(feature = "server")]
/// Response future of [`W3cContext`]: the handler's future in the context's scope.
pub type ResponseFuture<F> = tokio::task::futures::TaskLocalFuture<Option<TraceParent>, F>;

#[cfg(feature = "server")]
impl<S> tower::Service<crate::server::Request> for W3cContext<S>
where
    S: tower::Service<crate::server::Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: crate::server::Request) -> Self::Future {
        let context = TraceParent::from_metadata(&request.metadata).map(|c| c.child());
        scope(context, self.inner.call(request))
    }
}

#[cfg(test)]
mod tests;
