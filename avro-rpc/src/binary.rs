//! Avro's binary primitives (the specification's "Binary Encoding"): zig-zag
//! varint `long`s, length-prefixed `bytes` and `string`, `boolean`, `fixed`.
//!
//! The bottom of the crate: the datum codec's bounded pre-pass and the wire
//! format (metadata, handshake, framing) both read and write through these,
//! and this module depends on nothing but [`Error`](crate::Error). Every
//! read checks the input left, and every length its caller's limit, before
//! it slices or allocates.

use crate::error::{Error, Result};

/// Appends the zig-zag varint encoding of `v`.
pub fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads a zig-zag varint (at most 10 bytes).
pub fn read_long(input: &mut &[u8]) -> Result<i64> {
    let mut n: u64 = 0;
    for i in 0..10 {
        let (&b, rest) = input
            .split_first()
            .ok_or_else(|| Error::decode("truncated varint"))?;
        *input = rest;
        if i == 9 && b > 1 {
            return Err(Error::decode("varint overflows 64 bits"));
        }
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((n >> 1) as i64) ^ -((n & 1) as i64));
        }
    }
    Err(Error::decode("varint longer than 10 bytes"))
}

/// Reads a length prefix that must be non-negative, at most `max`, and not
/// beyond the input left.
pub fn read_len(input: &mut &[u8], max: usize) -> Result<usize> {
    let len = read_long(input)?;
    let len = usize::try_from(len).map_err(|_| Error::decode(format!("negative length {len}")))?;
    if len > max {
        return Err(Error::decode(format!("length {len} exceeds limit {max}")));
    }
    if len > input.len() {
        return Err(Error::decode(format!(
            "length {len} runs past the end ({} bytes left)",
            input.len()
        )));
    }
    Ok(len)
}

/// Appends Avro `bytes` (or `string`).
pub fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

/// Reads Avro `bytes`.
pub fn read_bytes<'a>(input: &mut &'a [u8], max: usize) -> Result<&'a [u8]> {
    let len = read_len(input, max)?;
    let (head, tail) = input.split_at(len);
    *input = tail;
    Ok(head)
}

/// Reads an Avro `string`.
pub fn read_string<'a>(input: &mut &'a [u8], max: usize) -> Result<&'a str> {
    std::str::from_utf8(read_bytes(input, max)?).map_err(|_| Error::decode("string is not UTF-8"))
}

/// Reads an Avro `boolean` (one byte, 0 or 1).
pub fn read_bool(input: &mut &[u8]) -> Result<bool> {
    match read_fixed::<1>(input)? {
        [0] => Ok(false),
        [1] => Ok(true),
        _ => Err(Error::decode("boolean byte is neither 0 nor 1")),
    }
}

/// Reads Avro `fixed(N)`.
pub fn read_fixed<const N: usize>(input: &mut &[u8]) -> Result<[u8; N]> {
    if input.len() < N {
        return Err(Error::decode(format!("truncated fixed({N})")));
    }
    let (head, tail) = input.split_at(N);
    *input = tail;
    let mut out = [0; N];
    out.copy_from_slice(head);
    Ok(out)
}
