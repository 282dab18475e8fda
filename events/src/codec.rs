//! A generic Avro single-object codec (Avro 1.12 specification, "Single
//! object encoding"): `C3 01`, the 8-byte little-endian CRC-64-AVRO
//! fingerprint of the writer schema's canonical form, then the binary datum.
//!
//! A codec knows one *reader* schema (what this build writes and wants to
//! read) and any number of older or newer *writer* schemas it accepts: a
//! payload names its writer by fingerprint, is decoded with it and resolved
//! to the reader schema (defaults fill added fields, removed fields are
//! dropped). Input is bounded (size limit, no trailing bytes) and every bad
//! byte gives a [`CodecError`], never a panic.

use std::fmt;

use apache_avro::Schema;
use apache_avro::rabin::Rabin;
use apache_avro::types::Value;
use uuid::Uuid;

/// The two marker bytes every single-object payload starts with.
pub const MAGIC: [u8; 2] = [0xC3, 0x01];
/// Header length: magic + fingerprint.
pub const HEADER_LEN: usize = 10;
/// Largest payload decoded by default (events are ids and a few strings:
/// anything near this is garbage or an attack, not an event).
pub const DEFAULT_MAX_PAYLOAD: usize = 1 << 20;
/// apache-avro's process-wide cap on one allocation while decoding, so an
/// absurd length prefix inside a payload cannot ask for gigabytes.
const MAX_ALLOCATION: usize = 16 << 20;

/// An 8-byte CRC-64-AVRO (Rabin) schema fingerprint, as written in payloads.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 8]);

impl Fingerprint {
    /// The fingerprint of `schema`'s parsing canonical form.
    pub fn of(schema: &Schema) -> Fingerprint {
        let fp = schema.fingerprint::<Rabin>();
        let mut bytes = [0u8; 8];
        // Rabin is 8 bytes by definition; copy defensively anyway.
        for (dst, src) in bytes.iter_mut().zip(fp.bytes.iter()) {
            *dst = *src;
        }
        Fingerprint(bytes)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Why encoding or decoding failed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The payload is larger than the codec accepts.
    #[error("payload of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Too short, or not starting with `C3 01`.
    #[error("not an Avro single-object payload ({0})")]
    NotSingleObject(&'static str),
    /// The fingerprint names no schema this codec knows.
    #[error("unknown writer schema fingerprint {0}")]
    UnknownSchema(Fingerprint),
    /// Bytes left over after the datum.
    #[error("{0} trailing bytes after the datum")]
    TrailingBytes(usize),
    /// Avro rejected the bytes, the value, or the schema resolution.
    #[error("avro: {0}")]
    Avro(#[source] Box<apache_avro::Error>),
    /// A schema text did not parse.
    #[error("schema: {0}")]
    Schema(#[source] Box<apache_avro::Error>),
    /// The datum decoded but is not the typed event expected.
    #[error("unexpected shape: {0}")]
    Shape(String),
}

/// Encodes with one schema, decodes from any known writer schema into it.
#[derive(Debug, Clone)]
pub struct SingleObjectCodec {
    reader: Schema,
    reader_fingerprint: Fingerprint,
    /// Every schema a payload may name, the reader's own included.
    writers: Vec<(Fingerprint, Schema)>,
    max_payload: usize,
}

impl SingleObjectCodec {
    /// A codec writing and reading `reader`, which is also a known writer.
    pub fn new(reader: Schema) -> SingleObjectCodec {
        // First call in the process wins; later calls are harmless no-ops.
        apache_avro::util::max_allocation_bytes(MAX_ALLOCATION);
        let fp = Fingerprint::of(&reader);
        SingleObjectCodec {
            writers: vec![(fp, reader.clone())],
            reader,
            reader_fingerprint: fp,
            max_payload: DEFAULT_MAX_PAYLOAD,
        }
    }

    /// Parses `reader` and the other accepted writer schemas.
    pub fn parse(reader: &str, other_writers: &[&str]) -> Result<SingleObjectCodec, CodecError> {
        let parse = |s: &str| Schema::parse_str(s).map_err(|e| CodecError::Schema(Box::new(e)));
        let mut codec = SingleObjectCodec::new(parse(reader)?);
        for w in other_writers {
            codec = codec.with_writer(parse(w)?);
        }
        Ok(codec)
    }

    /// Also accepts payloads written with `schema` (an older or newer version).
    pub fn with_writer(mut self, schema: Schema) -> SingleObjectCodec {
        let fp = Fingerprint::of(&schema);
        if !self.writers.iter().any(|(f, _)| *f == fp) {
            self.writers.push((fp, schema));
        }
        self
    }

    /// Replaces the payload size limit ([`DEFAULT_MAX_PAYLOAD`]).
    pub fn with_max_payload(mut self, max: usize) -> SingleObjectCodec {
        self.max_payload = max;
        self
    }

    /// The schema this codec writes and resolves to.
    pub fn schema(&self) -> &Schema {
        &self.reader
    }

    /// The fingerprint written in every payload this codec encodes.
    pub fn fingerprint(&self) -> Fingerprint {
        self.reader_fingerprint
    }

    /// Single-object encoding of `value`, which must match the reader schema.
    pub fn encode(&self, value: Value) -> Result<Vec<u8>, CodecError> {
        let datum = apache_avro::to_avro_datum(&self.reader, value)
            .map_err(|e| CodecError::Avro(Box::new(e)))?;
        let mut out = Vec::with_capacity(HEADER_LEN + datum.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.reader_fingerprint.0);
        out.extend_from_slice(&datum);
        Ok(out)
    }

    /// Decodes a payload written with any known schema, resolved to the
    /// reader schema.
    pub fn decode(&self, bytes: &[u8]) -> Result<Value, CodecError> {
        if bytes.len() > self.max_payload {
            return Err(CodecError::TooLarge {
                len: bytes.len(),
                max: self.max_payload,
            });
        }
        if bytes.len() < HEADER_LEN {
            return Err(CodecError::NotSingleObject("shorter than the header"));
        }
        if bytes[..2] != MAGIC {
            return Err(CodecError::NotSingleObject("no C3 01 marker"));
        }
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&bytes[2..HEADER_LEN]);
        let fp = Fingerprint(fp);
        let writer = self
            .writers
            .iter()
            .find(|(f, _)| *f == fp)
            .map(|(_, s)| s)
            .ok_or(CodecError::UnknownSchema(fp))?;
        let mut datum = &bytes[HEADER_LEN..];
        let reader = (fp != self.reader_fingerprint).then_some(&self.reader);
        let value = apache_avro::from_avro_datum(writer, &mut datum, reader)
            .map_err(|e| CodecError::Avro(Box::new(e)))?;
        if !datum.is_empty() {
            return Err(CodecError::TrailingBytes(datum.len()));
        }
        Ok(value)
    }
}

/// Typed access to the fields of a decoded record, with a [`CodecError::Shape`]
/// naming the field when it is missing or of another type.
#[derive(Debug)]
pub struct Record {
    fields: Vec<(String, Value)>,
}

impl Record {
    /// Views `value` as a record.
    pub fn new(value: Value) -> Result<Record, CodecError> {
        match value {
            Value::Record(fields) => Ok(Record { fields }),
            other => Err(CodecError::Shape(format!("not a record: {other:?}"))),
        }
    }

    fn get(&self, name: &str) -> Result<&Value, CodecError> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| CodecError::Shape(format!("missing field {name}")))
    }

    fn wrong(name: &str, v: &Value) -> CodecError {
        CodecError::Shape(format!("{name}: unexpected {v:?}"))
    }

    /// A `uuid` (or a string holding one).
    pub fn uuid(&self, name: &str) -> Result<Uuid, CodecError> {
        match self.get(name)? {
            Value::Uuid(u) => Ok(*u),
            Value::String(s) => {
                Uuid::parse_str(s).map_err(|e| CodecError::Shape(format!("{name}: {e}")))
            }
            v => Err(Self::wrong(name, v)),
        }
    }

    /// A `long` (timestamps included).
    pub fn long(&self, name: &str) -> Result<i64, CodecError> {
        match self.get(name)? {
            Value::Long(v)
            | Value::TimestampMicros(v)
            | Value::TimestampMillis(v)
            | Value::TimestampNanos(v) => Ok(*v),
            Value::Int(v) => Ok(i64::from(*v)),
            v => Err(Self::wrong(name, v)),
        }
    }

    /// An `int`.
    pub fn int(&self, name: &str) -> Result<i32, CodecError> {
        match self.get(name)? {
            Value::Int(v) => Ok(*v),
            v => Err(Self::wrong(name, v)),
        }
    }

    /// A `boolean`.
    pub fn boolean(&self, name: &str) -> Result<bool, CodecError> {
        match self.get(name)? {
            Value::Boolean(v) => Ok(*v),
            v => Err(Self::wrong(name, v)),
        }
    }

    /// A `double`.
    pub fn double(&self, name: &str) -> Result<f64, CodecError> {
        match self.get(name)? {
            Value::Double(v) => Ok(*v),
            Value::Float(v) => Ok(f64::from(*v)),
            v => Err(Self::wrong(name, v)),
        }
    }

    /// A `string`.
    pub fn string(&self, name: &str) -> Result<String, CodecError> {
        match self.get(name)? {
            Value::String(s) => Ok(s.clone()),
            v => Err(Self::wrong(name, v)),
        }
    }

    /// An `array` of `string`.
    pub fn strings(&self, name: &str) -> Result<Vec<String>, CodecError> {
        match self.get(name)? {
            Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.clone()),
                    v => Err(Self::wrong(name, v)),
                })
                .collect(),
            v => Err(Self::wrong(name, v)),
        }
    }

    /// A `["null", "float"]`.
    pub fn optional_float(&self, name: &str) -> Result<Option<f32>, CodecError> {
        let v = match self.get(name)? {
            Value::Union(_, inner) => inner.as_ref(),
            v => v,
        };
        match v {
            Value::Null => Ok(None),
            Value::Float(f) => Ok(Some(*f)),
            v => Err(Self::wrong(name, v)),
        }
    }

    /// An enum's symbol.
    pub fn symbol(&self, name: &str) -> Result<&str, CodecError> {
        match self.get(name)? {
            Value::Enum(_, s) => Ok(s.as_str()),
            v => Err(Self::wrong(name, v)),
        }
    }
}

impl From<crate::ValueError> for CodecError {
    fn from(e: crate::ValueError) -> CodecError {
        CodecError::Shape(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"T","namespace":"t","fields":[
        {"name":"a","type":"long"}]}"#;
    const V2: &str = r#"{"type":"record","name":"T","namespace":"t","fields":[
        {"name":"a","type":"long"},{"name":"b","type":"string","default":"dflt"}]}"#;

    #[test]
    fn header_is_magic_and_little_endian_fingerprint() {
        let codec = SingleObjectCodec::parse(V1, &[]).expect("schema");
        let bytes = codec
            .encode(Value::Record(vec![("a".into(), Value::Long(5))]))
            .expect("encodes");
        assert_eq!(&bytes[..2], &MAGIC);
        assert_eq!(&bytes[2..10], &codec.fingerprint().0);
        // The datum: zig-zag 5 = 10.
        assert_eq!(&bytes[10..], &[10]);
    }

    /// The specification's reference CRC-64-AVRO, bit by bit.
    fn crc64_avro(data: &[u8]) -> u64 {
        const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
        let mut table = [0u64; 256];
        for (i, slot) in table.iter_mut().enumerate() {
            let mut fp = i as u64;
            for _ in 0..8 {
                fp = (fp >> 1) ^ (EMPTY & (0u64.wrapping_sub(fp & 1)));
            }
            *slot = fp;
        }
        let mut fp = EMPTY;
        for b in data {
            fp = (fp >> 8) ^ table[((fp ^ u64::from(*b)) & 0xff) as usize];
        }
        fp
    }

    #[test]
    fn fingerprint_is_crc64_avro_of_the_canonical_form() {
        for text in [r#""int""#, r#""string""#, V1, V2] {
            let schema = Schema::parse_str(text).expect("schema");
            let expected = crc64_avro(schema.canonical_form().as_bytes());
            assert_eq!(u64::from_le_bytes(Fingerprint::of(&schema).0), expected);
        }
        // Java's SchemaNormalization.parsingFingerprint64 of "int".
        let int = Schema::parse_str(r#""int""#).expect("int");
        assert_eq!(
            u64::from_le_bytes(Fingerprint::of(&int).0),
            0x7275_d51a_3f39_5c8f
        );
    }

    #[test]
    fn a_newer_reader_fills_defaults_in_an_old_payload() {
        let old = SingleObjectCodec::parse(V1, &[]).expect("v1");
        let new = SingleObjectCodec::parse(V2, &[V1]).expect("v2");
        let bytes = old
            .encode(Value::Record(vec![("a".into(), Value::Long(7))]))
            .expect("encodes");
        let r = Record::new(new.decode(&bytes).expect("resolves")).expect("record");
        assert_eq!(r.long("a").expect("a"), 7);
        assert_eq!(r.string("b").expect("b"), "dflt");
    }

    #[test]
    fn an_older_reader_drops_fields_it_does_not_know() {
        let old = SingleObjectCodec::parse(V1, &[V2]).expect("v1");
        let new = SingleObjectCodec::parse(V2, &[]).expect("v2");
        let bytes = new
            .encode(Value::Record(vec![
                ("a".into(), Value::Long(9)),
                ("b".into(), Value::String("x".into())),
            ]))
            .expect("encodes");
        let r = Record::new(old.decode(&bytes).expect("resolves")).expect("record");
        assert_eq!(r.long("a").expect("a"), 9);
        assert!(r.string("b").is_err());
    }

    #[test]
    fn unknown_writers_and_garbage_are_errors() {
        let v1 = SingleObjectCodec::parse(V1, &[]).expect("v1");
        let v2 = SingleObjectCodec::parse(V2, &[]).expect("v2");
        let bytes = v2
            .encode(Value::Record(vec![
                ("a".into(), Value::Long(1)),
                ("b".into(), Value::String("x".into())),
            ]))
            .expect("encodes");
        assert!(matches!(
            v1.decode(&bytes),
            Err(CodecError::UnknownSchema(_))
        ));
        assert!(matches!(
            v1.decode(b""),
            Err(CodecError::NotSingleObject(_))
        ));
        assert!(matches!(
            v1.decode(b"hello world!"),
            Err(CodecError::NotSingleObject(_))
        ));
        let mut truncated = v1
            .encode(Value::Record(vec![("a".into(), Value::Long(1 << 40))]))
            .expect("encodes");
        truncated.truncate(truncated.len() - 1);
        assert!(matches!(v1.decode(&truncated), Err(CodecError::Avro(_))));
        let mut trailing = v1
            .encode(Value::Record(vec![("a".into(), Value::Long(1))]))
            .expect("encodes");
        trailing.push(0);
        assert!(matches!(
            v1.decode(&trailing),
            Err(CodecError::TrailingBytes(1))
        ));
        let small = v1.clone().with_max_payload(4);
        assert!(matches!(
            small.decode(&[0u8; 5]),
            Err(CodecError::TooLarge { len: 5, max: 4 })
        ));
    }

    #[test]
    fn a_value_not_matching_the_schema_is_an_error() {
        let v1 = SingleObjectCodec::parse(V1, &[]).expect("v1");
        assert!(v1.encode(Value::String("no".into())).is_err());
    }

    #[test]
    fn random_bytes_after_a_valid_header_never_panic() {
        let codec = SingleObjectCodec::parse(V2, &[]).expect("v2");
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        for len in 0..2_000 {
            let mut bytes = Vec::with_capacity(HEADER_LEN + len % 64);
            bytes.extend_from_slice(&MAGIC);
            bytes.extend_from_slice(&codec.fingerprint().0);
            for _ in 0..len % 64 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bytes.push(state as u8);
            }
            let _ = codec.decode(&bytes);
        }
    }
}
