//! [`Limits`]: the bounds on everything decoded from a peer, shared by the
//! datum codec (lengths, counts, nesting) and the wire format and transports
//! (messages, buffers, metadata, frames in progress). Its own module so both
//! layers depend on it without depending on each other.

/// Bounds applied to everything decoded from a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message (all buffers of a frame or HTTP body together).
    pub max_message_bytes: usize,
    /// Largest single buffer within a frame.
    pub max_buffer_bytes: usize,
    /// Most buffers in one frame / body.
    pub max_buffers: usize,
    /// Longest `string` or `bytes` value.
    pub max_bytes_len: usize,
    /// Most items in one array or map (all blocks together). Zero-size items
    /// (e.g. `null`) consume no input, so this is what bounds them.
    pub max_collection_len: usize,
    /// Deepest nesting of records/arrays/maps/unions.
    pub max_depth: usize,
    /// Most entries in call or handshake metadata.
    pub max_metadata_entries: usize,
    /// Most client protocols a server remembers (the handshake cache).
    pub max_cached_protocols: usize,
    /// Most calls a server runs at once for one socket connection; past it
    /// the server stops reading that connection (TCP pushes back on the
    /// client) instead of queueing without bound.
    pub max_in_flight_per_connection: usize,
    /// Longest a peer may take to deliver one message once it has started
    /// it: a socket frame from its first byte to its last, an HTTP request
    /// from its first header byte to the end of its body (and an idle HTTP
    /// keep-alive connection before its next request). Past it the
    /// connection is closed, so a peer that stalls mid-frame cannot hold the
    /// bytes it sent, nor the connection, forever. At the default message
    /// limit (16 MiB) the default (30 s) asks for ~0.5 MiB/s from a peer
    /// sending the largest message allowed.
    pub frame_timeout: std::time::Duration,
    /// Most memory one socket connection may hold for a frame it has not
    /// received completely (its read buffer beyond the first 64 KiB). The
    /// default fits the largest frame the other limits allow; lower it to
    /// refuse large frames on connections that should not send them.
    pub max_incomplete_bytes_per_connection: usize,
    /// Most memory all connections of one server (one [`Responder`](crate::Responder))
    /// may hold together for frames not received completely. A frame that
    /// would take more is refused and its connection closed, so many peers
    /// each sending part of a large frame cannot exhaust memory.
    pub max_incomplete_bytes_total: usize,
}

/// Default of [`Limits::frame_timeout`].
pub const DEFAULT_FRAME_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 16 * 1024 * 1024,
            max_buffer_bytes: 16 * 1024 * 1024,
            max_buffers: 16 * 1024,
            max_bytes_len: 8 * 1024 * 1024,
            max_collection_len: 1 << 20,
            max_depth: 64,
            max_metadata_entries: 256,
            max_cached_protocols: 1024,
            max_in_flight_per_connection: 1024,
            frame_timeout: DEFAULT_FRAME_TIMEOUT,
            // 16 MiB of message + 16 Ki buffer headers + frame header, rounded up.
            max_incomplete_bytes_per_connection: 17 * 1024 * 1024,
            // Four maximal frames in progress at once.
            max_incomplete_bytes_total: 64 * 1024 * 1024,
        }
    }
}
