//! The crate's error type: a [`Kind`] to branch on and, where there is one, the
//! underlying cause as `source()`.

use std::fmt;

/// Boxed cause carried by [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, coarse enough to branch on (retry, report, give up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// The `.avpr` text is not a valid protocol (bad JSON, unresolved name,
    /// a one-way message with a response, ...).
    Protocol,
    /// Bytes from the peer do not decode: truncated, malformed, or beyond a
    /// configured [`Limits`](crate::Limits) bound.
    Decode,
    /// A local value does not fit its schema.
    Encode,
    /// The handshake could not complete (the peer never accepted our protocol).
    Handshake,
    /// The message name is not part of the relevant protocol.
    UnknownMessage,
    /// The connection or HTTP exchange failed.
    Transport,
    /// The deadline carried with the call passed.
    Timeout,
    /// The peer answered with a system error (the `string` branch of the
    /// error union), e.g. an unknown message or a handler failure.
    Remote,
    /// Refused without being sent: the circuit breaker for this peer is open
    /// after repeated transport failures or timeouts
    /// ([`CircuitBreaker`](crate::layer::circuit_breaker::CircuitBreaker)).
    CircuitOpen,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Protocol => "invalid protocol",
            Kind::Decode => "decode error",
            Kind::Encode => "encode error",
            Kind::Handshake => "handshake failed",
            Kind::UnknownMessage => "unknown message",
            Kind::Transport => "transport error",
            Kind::Timeout => "deadline exceeded",
            Kind::Remote => "remote system error",
            Kind::CircuitOpen => "circuit open",
        })
    }
}

/// Error of every fallible operation in this crate.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    kind: Kind,
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl Error {
    /// An error without an underlying cause.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An error caused by `source`.
    pub fn with_source(
        kind: Kind,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The category, for callers that branch on it.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The human-readable detail (without the kind prefix).
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn decode(message: impl Into<String>) -> Self {
        Error::new(Kind::Decode, message)
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Error::new(Kind::Protocol, message)
    }
}

/// Recovers our error from a boxed one (as tower's `Buffer` or `Reconnect`
/// return), wrapping anything else as a transport failure.
pub fn from_box(e: BoxError) -> Error {
    match e.downcast::<Error>() {
        Ok(e) => *e,
        Err(e) => Error::with_source(Kind::Transport, "service failed", e),
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
