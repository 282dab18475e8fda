//! The bytes on the wire: Avro varints, call metadata, the handshake records,
//! and both framings (the spec's zero-terminated buffer list used over HTTP,
//! and the Java Netty transport's `serial, count, buffers` frame).
//!
//! The handshake and metadata schemas are fixed by the spec, so they are
//! encoded by hand here: no schema lookup, and each length is checked against
//! the input left and the configured [`Limits`] before anything is allocated.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::binary::{read_bool, read_fixed};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::protocol::Md5Hash;

// The primitives were defined here before `binary` existed: still part of
// this module's API.
pub use crate::binary::{read_bytes, read_len, read_long, read_string, write_bytes, write_long};

/// Call and handshake metadata: the spec's `map<bytes>`. Ordered so encoded
/// calls are deterministic.
pub type Metadata = BTreeMap<String, Bytes>;

/// Appends a `map<bytes>`.
pub fn write_metadata(out: &mut Vec<u8>, meta: &Metadata) {
    if !meta.is_empty() {
        write_long(out, meta.len() as i64);
        for (k, v) in meta {
            write_bytes(out, k.as_bytes());
            write_bytes(out, v);
        }
    }
    write_long(out, 0);
}

/// Reads a `map<bytes>` of at most `limits.max_metadata_entries` entries.
pub fn read_metadata(input: &mut &[u8], limits: &Limits) -> Result<Metadata> {
    let mut meta = Metadata::new();
    let mut total = 0usize;
    loop {
        let mut count = read_long(input)?;
        if count == 0 {
            return Ok(meta);
        }
        if count < 0 {
            read_long(input)?; // block size in bytes, unused
            count = count
                .checked_neg()
                .ok_or_else(|| Error::decode("metadata count overflow"))?;
        }
        total = total.saturating_add(usize::try_from(count).unwrap_or(usize::MAX));
        if total > limits.max_metadata_entries {
            return Err(Error::decode(format!(
                "more than {} metadata entries",
                limits.max_metadata_entries
            )));
        }
        for _ in 0..count {
            let k = read_string(input, limits.max_bytes_len)?.to_string();
            let v = Bytes::copy_from_slice(read_bytes(input, limits.max_bytes_len)?);
            meta.insert(k, v);
        }
    }
}

fn write_optional_metadata(out: &mut Vec<u8>, meta: &Option<Metadata>) {
    match meta {
        None => write_long(out, 0),
        Some(m) => {
            write_long(out, 1);
            write_metadata(out, m);
        }
    }
}

fn read_optional_metadata(input: &mut &[u8], limits: &Limits) -> Result<Option<Metadata>> {
    match read_long(input)? {
        0 => Ok(None),
        1 => read_metadata(input, limits).map(Some),
        i => Err(Error::decode(format!("bad union index {i} for meta"))),
    }
}

fn read_optional_string(input: &mut &[u8], limits: &Limits) -> Result<Option<String>> {
    match read_long(input)? {
        0 => Ok(None),
        1 => read_string(input, limits.max_message_bytes).map(|s| Some(s.to_string())),
        i => Err(Error::decode(format!("bad union index {i} for a string"))),
    }
}

/// The spec's `org.apache.avro.ipc.HandshakeRequest` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// MD5 of the client's protocol text.
    pub client_hash: Md5Hash,
    /// The client's protocol text, sent only when the server may not know it.
    pub client_protocol: Option<String>,
    /// The hash the client believes the server's protocol has.
    pub server_hash: Md5Hash,
    /// Handshake metadata.
    pub meta: Option<Metadata>,
}

impl HandshakeRequest {
    /// Appends the binary encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.client_hash.0);
        match &self.client_protocol {
            None => write_long(out, 0),
            Some(p) => {
                write_long(out, 1);
                write_bytes(out, p.as_bytes());
            }
        }
        out.extend_from_slice(&self.server_hash.0);
        write_optional_metadata(out, &self.meta);
    }

    /// Reads one from the front of `input`.
    pub fn decode(input: &mut &[u8], limits: &Limits) -> Result<Self> {
        Ok(HandshakeRequest {
            client_hash: Md5Hash(read_fixed(input)?),
            client_protocol: read_optional_string(input, limits)?,
            server_hash: Md5Hash(read_fixed(input)?),
            meta: read_optional_metadata(input, limits)?,
        })
    }
}

/// The spec's `HandshakeMatch` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeMatch {
    /// The server knows the client's protocol and the client has the server's.
    Both,
    /// The server knows the client's protocol; the client had a wrong server hash.
    Client,
    /// The server does not know the client's protocol; the call was not processed.
    None,
}

/// The spec's `org.apache.avro.ipc.HandshakeResponse` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse {
    /// How far the protocols matched.
    pub match_: HandshakeMatch,
    /// The server's protocol text, when the client's server hash was wrong.
    pub server_protocol: Option<String>,
    /// The server's protocol hash, with `server_protocol`.
    pub server_hash: Option<Md5Hash>,
    /// Handshake metadata.
    pub meta: Option<Metadata>,
}

impl HandshakeResponse {
    /// Appends the binary encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        write_long(
            out,
            match self.match_ {
                HandshakeMatch::Both => 0,
                HandshakeMatch::Client => 1,
                HandshakeMatch::None => 2,
            },
        );
        match &self.server_protocol {
            None => write_long(out, 0),
            Some(p) => {
                write_long(out, 1);
                write_bytes(out, p.as_bytes());
            }
        }
        match &self.server_hash {
            None => write_long(out, 0),
            Some(h) => {
                write_long(out, 1);
                out.extend_from_slice(&h.0);
            }
        }
        write_optional_metadata(out, &self.meta);
    }

    /// Reads one from the front of `input`.
    pub fn decode(input: &mut &[u8], limits: &Limits) -> Result<Self> {
        let match_ = match read_long(input)? {
            0 => HandshakeMatch::Both,
            1 => HandshakeMatch::Client,
            2 => HandshakeMatch::None,
            i => return Err(Error::decode(format!("bad HandshakeMatch index {i}"))),
        };
        let server_protocol = read_optional_string(input, limits)?;
        let server_hash = match read_long(input)? {
            0 => None,
            1 => Some(Md5Hash(read_fixed(input)?)),
            i => return Err(Error::decode(format!("bad union index {i} for serverHash"))),
        };
        Ok(HandshakeResponse {
            match_,
            server_protocol,
            server_hash,
            meta: read_optional_metadata(input, limits)?,
        })
    }
}

/// Appends the call header: metadata and message name (parameters follow).
pub fn write_call_header(out: &mut Vec<u8>, meta: &Metadata, message: &str) {
    write_metadata(out, meta);
    write_bytes(out, message.as_bytes());
}

/// Reads the call header written by [`write_call_header`].
pub fn read_call_header<'a>(input: &mut &'a [u8], limits: &Limits) -> Result<(Metadata, &'a str)> {
    let meta = read_metadata(input, limits)?;
    let name = read_string(input, limits.max_bytes_len)?;
    Ok((meta, name))
}

/// Appends the response header: metadata and the error flag (the response or
/// error union follows).
pub fn write_response_header(out: &mut Vec<u8>, meta: &Metadata, is_error: bool) {
    write_metadata(out, meta);
    out.push(u8::from(is_error));
}

/// Reads the response header written by [`write_response_header`].
pub fn read_response_header(input: &mut &[u8], limits: &Limits) -> Result<(Metadata, bool)> {
    let meta = read_metadata(input, limits)?;
    Ok((meta, read_bool(input)?))
}

/// Frames `message` as the spec's buffer list: big-endian u32 length-prefixed
/// buffers ended by a zero-length buffer (the HTTP body format).
pub fn frame_buffers(message: &[u8], max_buffer: usize) -> Bytes {
    let chunk = max_buffer.max(1);
    let mut out = BytesMut::with_capacity(message.len() + 8 + 4 * (message.len() / chunk));
    for part in message.chunks(chunk) {
        out.put_u32(part.len() as u32);
        out.put_slice(part);
    }
    out.put_u32(0);
    out.freeze()
}

/// Joins a buffer list back into one message, enforcing `limits`. Bytes after
/// the terminating empty buffer are an error (they would be a second message
/// the transport has no way to answer), except more empty buffers, which the
/// Java client sends for a message without parameters.
pub fn unframe_buffers(mut body: &[u8], limits: &Limits) -> Result<Bytes> {
    let mut out = BytesMut::new();
    let mut buffers = 0usize;
    loop {
        if body.len() < 4 {
            return Err(Error::decode("truncated buffer length"));
        }
        let len = body.get_u32() as usize;
        if len == 0 {
            // Java's HttpTransceiver sends empty parameters (a message
            // without any) as an empty buffer before the terminator,
            // `[n][0][0]`, and its server stops at the first empty buffer.
            // Accept further empty buffers, but nothing else.
            if !body.len().is_multiple_of(4) || body.iter().any(|&b| b != 0) {
                return Err(Error::decode("data after the terminating empty buffer"));
            }
            return Ok(out.freeze());
        }
        buffers += 1;
        check_buffer(len, out.len(), buffers, limits)?;
        if body.len() < len {
            return Err(Error::decode("truncated buffer"));
        }
        out.extend_from_slice(&body[..len]);
        body.advance(len);
    }
}

fn check_buffer(len: usize, so_far: usize, buffers: usize, limits: &Limits) -> Result<()> {
    if buffers > limits.max_buffers {
        return Err(Error::decode(format!(
            "more than {} buffers",
            limits.max_buffers
        )));
    }
    if len > limits.max_buffer_bytes {
        return Err(Error::decode(format!(
            "buffer of {len} bytes exceeds limit {}",
            limits.max_buffer_bytes
        )));
    }
    if so_far.saturating_add(len) > limits.max_message_bytes {
        return Err(Error::decode(format!(
            "message exceeds limit {} bytes",
            limits.max_message_bytes
        )));
    }
    Ok(())
}

/// Appends one Netty-transport frame carrying `message` as a single buffer:
/// BE i32 serial, BE i32 buffer count, then BE i32 length + bytes per buffer.
pub fn write_netty_frame(out: &mut BytesMut, serial: i32, message: &[u8]) {
    out.reserve(12 + message.len());
    out.put_i32(serial);
    if message.is_empty() {
        out.put_i32(0);
    } else {
        out.put_i32(1);
        out.put_i32(message.len() as i32);
        out.put_slice(message);
    }
}

/// How many bytes the Netty frame at the front of `buf` occupies as far as
/// its header and the buffer lengths visible so far declare it (at least
/// `buf.len()` when those are all here; call after [`read_netty_frame`]
/// returned `Ok(None)`, so the declared lengths are within the limits).
pub fn netty_frame_declared(buf: &[u8]) -> usize {
    let mut peek: &[u8] = buf;
    if peek.len() < 8 {
        return 8;
    }
    peek.advance(4);
    let count = usize::try_from(peek.get_i32()).unwrap_or(0);
    let mut declared = 8usize;
    for _ in 0..count {
        if peek.len() < 4 {
            return declared + 4;
        }
        let len = usize::try_from(peek.get_i32()).unwrap_or(0);
        declared = declared.saturating_add(4 + len);
        if peek.len() < len {
            return declared;
        }
        peek.advance(len);
    }
    declared
}

/// Takes one complete Netty frame off the front of `buf`, if it has arrived.
/// Returns `Ok(None)` (consuming nothing) when more bytes are needed; header
/// fields are checked against `limits` as soon as they are visible, so an
/// oversized frame is refused before its body is awaited or allocated.
pub fn read_netty_frame(buf: &mut BytesMut, limits: &Limits) -> Result<Option<(i32, Bytes)>> {
    let mut peek: &[u8] = buf;
    if peek.len() < 8 {
        return Ok(None);
    }
    let serial = peek.get_i32();
    let count = peek.get_i32();
    let count = usize::try_from(count)
        .map_err(|_| Error::decode(format!("negative buffer count {count}")))?;
    if count > limits.max_buffers {
        return Err(Error::decode(format!(
            "more than {} buffers",
            limits.max_buffers
        )));
    }
    let mut total = 0usize;
    for i in 0..count {
        if peek.len() < 4 {
            return Ok(None);
        }
        let len = peek.get_i32();
        let len = usize::try_from(len)
            .map_err(|_| Error::decode(format!("negative buffer length {len}")))?;
        check_buffer(len, total, i + 1, limits)?;
        total += len;
        if peek.len() < len {
            return Ok(None);
        }
        peek.advance(len);
    }
    // The whole frame is here.
    buf.advance(8);
    if count == 1 {
        // The usual case (our peers and single-chunk Java messages): no copy.
        buf.advance(4);
        return Ok(Some((serial, buf.split_to(total).freeze())));
    }
    let mut message = BytesMut::with_capacity(total);
    for _ in 0..count {
        let len = buf.get_i32() as usize;
        message.extend_from_slice(&buf[..len]);
        buf.advance(len);
    }
    Ok(Some((serial, message.freeze())))
}

#[cfg(test)]
mod tests;
