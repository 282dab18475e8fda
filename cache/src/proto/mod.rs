//! The wire protocols: encoding [`Op`]s into request bytes and parsing the
//! replies, bounded and without panics on any input.
//!
//! Both backends share this model: one reply per op, in order, so many ops
//! can be pipelined on one connection and matched up by position.

pub(crate) mod memcached;
pub(crate) mod redis;

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::config::Backend;
use crate::error::Result;

/// One storage operation against one zone. Keys are full (namespaced) keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    /// Store only if the key is absent (memcached `add`, Redis `SET NX PX`).
    Add {
        /// Full key.
        key: &'a str,
        /// Value bytes.
        value: &'a [u8],
        /// Time to live, rounded up to the backend's resolution.
        ttl: Duration,
    },
    /// Store unconditionally (memcached `set`, Redis `SET PX`).
    Set {
        /// Full key.
        key: &'a str,
        /// Value bytes.
        value: &'a [u8],
        /// Time to live, rounded up to the backend's resolution.
        ttl: Duration,
    },
    /// Read a value.
    Get {
        /// Full key.
        key: &'a str,
    },
    /// Remove a key.
    Delete {
        /// Full key.
        key: &'a str,
    },
}

/// The reply to one [`Op`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `Add`/`Set` stored the value.
    Stored,
    /// `Add` found the key present and stored nothing.
    NotStored,
    /// `Get` result: the value, or `None` on a miss.
    Value(Option<Bytes>),
    /// `Delete` removed the key (`true`) or found nothing (`false`).
    Deleted(bool),
    /// The server answered this op with an error line; the stream is still in sync.
    ServerError(String),
}

/// Which reply shape the parser must expect next. memcached replies are not
/// self-describing (a `get` reply spans several lines), so the parser needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    Store,
    Get,
    Delete,
}

impl Op<'_> {
    pub(crate) fn expect(&self) -> Expect {
        match self {
            Op::Add { .. } | Op::Set { .. } => Expect::Store,
            Op::Get { .. } => Expect::Get,
            Op::Delete { .. } => Expect::Delete,
        }
    }
}

/// Append the request bytes of `op` in `backend`'s protocol.
pub(crate) fn encode(backend: Backend, op: &Op<'_>, buf: &mut BytesMut) {
    match backend {
        Backend::Memcached => memcached::encode(op, buf),
        Backend::Redis => redis::encode(op, buf),
    }
}

/// Parse one reply from the front of `buf`, consuming it. `Ok(None)` means
/// more bytes are needed; an `Err` (kind `Protocol`) means the stream cannot be
/// trusted any more and the connection must be dropped.
pub(crate) fn parse(
    backend: Backend,
    buf: &mut BytesMut,
    expect: Expect,
    max_value: usize,
) -> Result<Option<Reply>> {
    match backend {
        Backend::Memcached => memcached::parse(buf, expect, max_value),
        Backend::Redis => redis::parse(buf, expect, max_value),
    }
}

/// Longest reply line (status, error text, `VALUE` header) we accept.
pub(crate) const MAX_LINE: usize = 4096;

/// The first line of `buf` without its `\r\n`, and the offset just past it.
/// Errors if no line end shows up within [`MAX_LINE`] bytes.
pub(crate) fn line(buf: &[u8]) -> Result<Option<(&[u8], usize)>> {
    let window = &buf[..buf.len().min(MAX_LINE + 2)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some((&window[..i], i + 2))),
        None if buf.len() > MAX_LINE + 1 => Err(crate::error::Error::new(
            crate::error::ErrorKind::Protocol,
            format!("reply line longer than {MAX_LINE} bytes"),
        )),
        None => Ok(None),
    }
}

/// Append the decimal digits of `n`.
pub(crate) fn push_num(buf: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Parse an ASCII decimal, rejecting anything else (signs, spaces, overflow).
pub(crate) fn parse_num(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Random and mutated replies: the parsers return a reply, "need more"
    /// or an error — never panic, never consume more than they were given.
    #[test]
    fn parsers_survive_random_bytes() {
        let seeds: [&[u8]; 6] = [
            b"VALUE ns:k 0 3\r\nabc\r\nEND\r\n",
            b"STORED\r\n",
            b"$3\r\nabc\r\n",
            b"+OK\r\n",
            b":1\r\n",
            b"NOT_FOUND\r\n",
        ];
        let mut rng = rand::rng();
        for round in 0..20_000 {
            let mut input = seeds[round % seeds.len()].to_vec();
            for _ in 0..rng.random_range(0..4) {
                let i = rng.random_range(0..input.len());
                input[i] = rng.random();
            }
            if round % 7 == 0 {
                input = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
            }
            for backend in [Backend::Memcached, Backend::Redis] {
                for expect in [Expect::Store, Expect::Get, Expect::Delete] {
                    let mut buf = BytesMut::from(&input[..]);
                    let before = buf.len();
                    if let Ok(Some(_)) = parse(backend, &mut buf, expect, 16) {
                        assert!(buf.len() < before);
                    }
                }
            }
        }
    }
}
