//! The crate's error type: a [`ErrorKind`] to branch on, a message, and the
//! underlying cause as `source`.

use std::fmt;

/// Boxed underlying cause of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, coarse enough to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration (URL list, namespace, limits) is not usable.
    InvalidConfig,
    /// A key or namespace is empty, too long, or has bytes the memcached text
    /// protocol cannot carry (space, control characters).
    InvalidKey,
    /// A value is larger than the configured `max_value_size`.
    ValueTooLarge,
    /// Connecting, reading or writing the socket failed, or the server closed it.
    Io,
    /// The operation did not finish within the per-operation timeout.
    Timeout,
    /// The server sent bytes that do not parse as the expected reply
    /// (or exceed the parser's bounds). The connection is dropped.
    Protocol,
    /// The server understood the request and answered with an error
    /// (`SERVER_ERROR …`, `-ERR …`).
    Server,
    /// The zone is marked down after a recent failure and is not retried until
    /// its retry interval has passed; or no zone answered at all.
    Unavailable,
    /// A key used for claims holds a value that is not a claim marker.
    UnexpectedValue,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::InvalidConfig => "invalid config",
            ErrorKind::InvalidKey => "invalid key",
            ErrorKind::ValueTooLarge => "value too large",
            ErrorKind::Io => "i/o error",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::Server => "server error",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::UnexpectedValue => "unexpected value",
        };
        f.write_str(s)
    }
}

/// Error returned by this crate: a kind, a human message and an optional cause.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl Error {
    /// An error of `kind` with a message and no underlying cause.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An error of `kind` with a message and an underlying cause.
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the failure says something about the zone's health (network,
    /// timeout, garbled stream) rather than about the request.
    pub(crate) fn is_zone_failure(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Io | ErrorKind::Timeout | ErrorKind::Protocol | ErrorKind::Unavailable
        )
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
