//! The datum codec boundary: how Avro values become bytes and back.
//!
//! Everything above this module (handshake, call format, transports) deals in
//! schemas and [`Value`]s through the [`Codec`] trait, as tonic does with its
//! `Codec`, so a faster encoder can replace [`AvroCodec`] without touching
//! the RPC machinery. Decoding is always bounded by [`Limits`]: a bounded
//! pre-pass walks the writer schema over the bytes before any value is built,
//! so hostile lengths, counts or nesting fail cleanly instead of allocating.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Once};

use apache_avro::schema::{Name, ResolvedSchema, Schema};
use apache_avro::types::Value;
use serde_json::Value as Json;

use crate::error::{Error, Kind, Result};
// `Limits` was defined here first; it is part of this module's API.
pub use crate::limits::{DEFAULT_FRAME_TIMEOUT, Limits};

/// Default cap on any single allocation apache-avro makes while decoding.
pub const DEFAULT_MAX_ALLOCATION_BYTES: usize = 16 * 1024 * 1024;

static ALLOCATION_CAP: Once = Once::new();

/// Sets apache-avro's process-wide decoding allocation cap. Only the first
/// call in a process has an effect (apache-avro stores it once); every codec
/// calls this with [`DEFAULT_MAX_ALLOCATION_BYTES`] when created, so call it
/// before building any codec to choose another value. Returns the cap in force.
pub fn set_max_allocation_bytes(bytes: usize) -> usize {
    ALLOCATION_CAP.call_once(|| {
        apache_avro::util::max_allocation_bytes(bytes);
    });
    apache_avro::util::max_allocation_bytes(bytes)
}

/// A standalone Avro schema plus the JSON it was parsed from, so codecs other
/// than apache-avro can build their own representation from the JSON.
#[derive(Clone)]
pub struct DatumSchema {
    schema: Arc<Schema>,
    json: Arc<str>,
    names: Arc<HashMap<Name, Schema>>,
}

impl fmt::Debug for DatumSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.json)
    }
}

impl DatumSchema {
    /// Parses a self-contained schema (every named type defined before use).
    pub fn from_json(json: &Json) -> Result<Self> {
        let schema = Schema::parse(json)
            .map_err(|e| Error::with_source(Kind::Protocol, format!("invalid schema {json}"), e))?;
        let names = ResolvedSchema::try_from(&schema)
            .map_err(|e| Error::with_source(Kind::Protocol, "unresolved name in schema", e))?
            .get_names()
            .iter()
            .map(|(n, s)| (n.clone(), (*s).clone()))
            .collect();
        Ok(DatumSchema {
            schema: Arc::new(schema),
            json: json.to_string().into(),
            names: Arc::new(names),
        })
    }

    /// The parsed schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The schema as JSON text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// Whether two schemas are the same text, which lets decoding skip
    /// resolution (the common case: both peers built from one `.avpr`).
    pub fn same_as(&self, other: &DatumSchema) -> bool {
        Arc::ptr_eq(&self.json, &other.json) || self.json == other.json
    }
}

/// Encodes and decodes single Avro datums.
pub trait Codec: Send + Sync + fmt::Debug + 'static {
    /// Appends the binary encoding of `value` (which must fit `schema`) to `out`.
    fn encode(&self, schema: &DatumSchema, value: &Value, out: &mut Vec<u8>) -> Result<()>;

    /// Decodes one datum written with `writer` from the front of `input`
    /// (advancing it) and resolves it to `reader`. Must never read beyond
    /// `limits`.
    fn decode(
        &self,
        writer: &DatumSchema,
        reader: &DatumSchema,
        input: &mut &[u8],
        limits: &Limits,
    ) -> Result<Value>;
}

/// The [`Codec`] backed by the `apache-avro` crate, with full schema
/// resolution (`from_avro_datum(writer, reader)`).
#[derive(Debug, Clone, Copy)]
pub struct AvroCodec;

impl AvroCodec {
    /// Creates the codec, making sure apache-avro's allocation cap is set.
    pub fn new() -> Self {
        set_max_allocation_bytes(DEFAULT_MAX_ALLOCATION_BYTES);
        AvroCodec
    }
}

impl Default for AvroCodec {
    fn default() -> Self {
        AvroCodec::new()
    }
}

impl Codec for AvroCodec {
    fn encode(&self, schema: &DatumSchema, value: &Value, out: &mut Vec<u8>) -> Result<()> {
        Encoder {
            names: &schema.names,
        }
        .encode(value, schema.schema(), out, 0)
    }

    fn decode(
        &self,
        writer: &DatumSchema,
        reader: &DatumSchema,
        input: &mut &[u8],
        limits: &Limits,
    ) -> Result<Value> {
        let mut probe = *input;
        check_datum(writer, &mut probe, limits)?;
        let reader_schema = if writer.same_as(reader) {
            None
        } else {
            Some(reader.schema())
        };
        let value = apache_avro::from_avro_datum(writer.schema(), input, reader_schema)
            .map_err(|e| Error::with_source(Kind::Decode, "datum does not decode", e))?;
        Ok(value)
    }
}

/// Schema-driven encoder for [`Value`]s. apache-avro only offers encoding by
/// value (forcing a clone per call) with an opaque validation error; this one
/// borrows and says which part of the value did not fit.
struct Encoder<'a> {
    names: &'a HashMap<Name, Schema>,
}

fn mismatch(schema: &Schema, value: &Value) -> Error {
    let kind = apache_avro::schema::SchemaKind::from(schema);
    Error::new(
        Kind::Encode,
        format!("value {value:?} does not fit schema {kind:?}"),
    )
}

impl Encoder<'_> {
    fn encode(
        &self,
        value: &Value,
        schema: &Schema,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<()> {
        use crate::binary::{write_bytes, write_long};
        if depth > 256 {
            return Err(Error::new(Kind::Encode, "value nested too deeply"));
        }
        match (schema, value) {
            (Schema::Null, Value::Null) => {}
            (Schema::Boolean, Value::Boolean(b)) => out.push(u8::from(*b)),
            (Schema::Int, Value::Int(i))
            | (Schema::Date, Value::Date(i) | Value::Int(i))
            | (Schema::TimeMillis, Value::TimeMillis(i) | Value::Int(i)) => {
                write_long(out, i64::from(*i))
            }
            (Schema::Long, Value::Int(i)) => write_long(out, i64::from(*i)),
            (Schema::Long, Value::Long(l))
            | (Schema::TimeMicros, Value::TimeMicros(l) | Value::Long(l))
            | (Schema::TimestampMillis, Value::TimestampMillis(l) | Value::Long(l))
            | (Schema::TimestampMicros, Value::TimestampMicros(l) | Value::Long(l))
            | (Schema::TimestampNanos, Value::TimestampNanos(l) | Value::Long(l))
            | (Schema::LocalTimestampMillis, Value::LocalTimestampMillis(l) | Value::Long(l))
            | (Schema::LocalTimestampMicros, Value::LocalTimestampMicros(l) | Value::Long(l))
            | (Schema::LocalTimestampNanos, Value::LocalTimestampNanos(l) | Value::Long(l)) => {
                write_long(out, *l)
            }
            (Schema::Float, Value::Float(f)) => out.extend_from_slice(&f.to_le_bytes()),
            (Schema::Double, Value::Double(d)) => out.extend_from_slice(&d.to_le_bytes()),
            (Schema::Double, Value::Float(f)) => {
                out.extend_from_slice(&f64::from(*f).to_le_bytes())
            }
            (Schema::Bytes, Value::Bytes(b)) => write_bytes(out, b),
            (Schema::String, Value::String(s)) => write_bytes(out, s.as_bytes()),
            (Schema::Uuid, Value::Uuid(u)) => {
                write_bytes(out, u.hyphenated().to_string().as_bytes())
            }
            (Schema::Fixed(f), Value::Fixed(n, b)) if *n == f.size && b.len() == f.size => {
                out.extend_from_slice(b)
            }
            (Schema::Fixed(f), Value::Bytes(b)) if b.len() == f.size => out.extend_from_slice(b),
            (Schema::Enum(e), Value::Enum(_, sym) | Value::String(sym)) => {
                let idx = e.symbols.iter().position(|s| s == sym).ok_or_else(|| {
                    Error::new(
                        Kind::Encode,
                        format!("{sym:?} is not a symbol of {}", e.name),
                    )
                })?;
                write_long(out, idx as i64);
            }
            (Schema::Union(u), Value::Union(i, v)) => {
                let branch = u
                    .variants()
                    .get(*i as usize)
                    .ok_or_else(|| Error::new(Kind::Encode, format!("union has no branch {i}")))?;
                write_long(out, i64::from(*i));
                self.encode(v, branch, out, depth + 1)?;
            }
            (Schema::Union(u), v) => {
                let (i, branch) = u
                    .variants()
                    .iter()
                    .enumerate()
                    .find(|(_, b)| v.validate(b))
                    .ok_or_else(|| mismatch(schema, value))?;
                write_long(out, i as i64);
                self.encode(v, branch, out, depth + 1)?;
            }
            (Schema::Record(r), Value::Record(fields)) => {
                for (pos, f) in r.fields.iter().enumerate() {
                    let v = match fields.get(pos) {
                        Some((name, v)) if *name == f.name => v,
                        _ => fields
                            .iter()
                            .find(|(n, _)| *n == f.name)
                            .map(|(_, v)| v)
                            .ok_or_else(|| {
                                Error::new(
                                    Kind::Encode,
                                    format!("record {} lacks field {}", r.name, f.name),
                                )
                            })?,
                    };
                    self.encode(v, &f.schema, out, depth + 1)?;
                }
            }
            (Schema::Array(a), Value::Array(items)) => {
                if !items.is_empty() {
                    write_long(out, items.len() as i64);
                    for item in items {
                        self.encode(item, &a.items, out, depth + 1)?;
                    }
                }
                write_long(out, 0);
            }
            (Schema::Map(m), Value::Map(entries)) => {
                if !entries.is_empty() {
                    write_long(out, entries.len() as i64);
                    for (k, v) in entries {
                        write_bytes(out, k.as_bytes());
                        self.encode(v, &m.types, out, depth + 1)?;
                    }
                }
                write_long(out, 0);
            }
            (Schema::Ref { name }, v) => {
                let target = self.names.get(name).ok_or_else(|| {
                    Error::new(Kind::Encode, format!("unresolved schema name {name:?}"))
                })?;
                self.encode(v, target, out, depth + 1)?;
            }
            // Rare logical types: let apache-avro encode them on their own schema.
            (Schema::Decimal(_) | Schema::BigDecimal | Schema::Duration, v) => {
                let bytes = apache_avro::to_avro_datum(schema, v.clone()).map_err(|e| {
                    Error::with_source(Kind::Encode, "logical value does not fit", e)
                })?;
                out.extend_from_slice(&bytes);
            }
            _ => return Err(mismatch(schema, value)),
        }
        Ok(())
    }
}

/// Walks `schema` over `input` without building values, enforcing `limits`.
/// On success `input` is advanced past exactly one datum.
pub fn check_datum(schema: &DatumSchema, input: &mut &[u8], limits: &Limits) -> Result<()> {
    Checker {
        names: &schema.names,
        limits,
    }
    .skip(schema.schema(), input, 0)
}

struct Checker<'a> {
    names: &'a HashMap<Name, Schema>,
    limits: &'a Limits,
}

impl Checker<'_> {
    fn skip(&self, schema: &Schema, input: &mut &[u8], depth: usize) -> Result<()> {
        if depth > self.limits.max_depth {
            return Err(Error::decode(format!(
                "nesting deeper than {}",
                self.limits.max_depth
            )));
        }
        match schema {
            Schema::Null => Ok(()),
            Schema::Boolean => match take(input, 1)? {
                [0] | [1] => Ok(()),
                _ => Err(Error::decode("boolean byte is neither 0 nor 1")),
            },
            Schema::Int | Schema::Date | Schema::TimeMillis => {
                let v = crate::binary::read_long(input)?;
                i32::try_from(v)
                    .map(|_| ())
                    .map_err(|_| Error::decode("int out of range"))
            }
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => crate::binary::read_long(input).map(|_| ()),
            Schema::Float => take(input, 4).map(|_| ()),
            Schema::Double => take(input, 8).map(|_| ()),
            Schema::Bytes | Schema::String | Schema::Uuid | Schema::BigDecimal => {
                let len = crate::binary::read_len(input, self.limits.max_bytes_len)?;
                take(input, len).map(|_| ())
            }
            Schema::Fixed(f) => take(input, f.size).map(|_| ()),
            Schema::Duration => take(input, 12).map(|_| ()),
            Schema::Decimal(d) => self.skip(&d.inner, input, depth + 1),
            Schema::Enum(e) => {
                let idx = crate::binary::read_long(input)?;
                if idx < 0 || idx as u64 >= e.symbols.len() as u64 {
                    return Err(Error::decode(format!("enum index {idx} out of range")));
                }
                Ok(())
            }
            Schema::Union(u) => {
                let idx = crate::binary::read_long(input)?;
                let branch = usize::try_from(idx)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| Error::decode(format!("union index {idx} out of range")))?;
                self.skip(branch, input, depth + 1)
            }
            Schema::Record(r) => {
                for f in &r.fields {
                    self.skip(&f.schema, input, depth + 1)?;
                }
                Ok(())
            }
            Schema::Array(a) => {
                self.blocks(input, depth, |c, input| c.skip(&a.items, input, depth + 1))
            }
            Schema::Map(m) => self.blocks(input, depth, |c, input| {
                let len = crate::binary::read_len(input, c.limits.max_bytes_len)?;
                take(input, len)?;
                c.skip(&m.types, input, depth + 1)
            }),
            Schema::Ref { name } => {
                let target = self
                    .names
                    .get(name)
                    .ok_or_else(|| Error::decode(format!("unresolved schema name {name:?}")))?;
                self.skip(target, input, depth + 1)
            }
        }
    }

    fn blocks(
        &self,
        input: &mut &[u8],
        _depth: usize,
        mut item: impl FnMut(&Self, &mut &[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut total: usize = 0;
        loop {
            let count = crate::binary::read_long(input)?;
            if count == 0 {
                return Ok(());
            }
            let count = if count < 0 {
                // Negative count: a block byte size follows (lets readers skip).
                crate::binary::read_long(input)?;
                count
                    .checked_neg()
                    .ok_or_else(|| Error::decode("block count overflow"))?
            } else {
                count
            };
            total = usize::try_from(count)
                .ok()
                .and_then(|c| total.checked_add(c))
                .filter(|t| *t <= self.limits.max_collection_len)
                .ok_or_else(|| {
                    Error::decode(format!(
                        "collection longer than {} items",
                        self.limits.max_collection_len
                    ))
                })?;
            for _ in 0..count {
                item(self, input)?;
            }
        }
    }
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if input.len() < n {
        return Err(Error::decode(format!(
            "truncated: need {n} bytes, {} left",
            input.len()
        )));
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

/// Converts a serde value into an Avro [`Value`] that fits `schema`
/// (generated code uses this for parameters and responses).
pub fn to_avro_value<T: serde::Serialize>(schema: &DatumSchema, value: &T) -> Result<Value> {
    apache_avro::to_value(value)
        .and_then(|v| v.resolve(schema.schema()))
        .map_err(|e| Error::with_source(Kind::Encode, "value does not fit schema", e))
}

/// Converts a decoded Avro [`Value`] into a serde type.
pub fn from_avro_value<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T> {
    apache_avro::from_value(value)
        .map_err(|e| Error::with_source(Kind::Decode, "value does not fit the Rust type", e))
}

#[cfg(test)]
mod tests;
