//! The `ReviewChanged` Kafka event (`protocols/review_changed.avsc`) in Avro
//! single-object encoding: `C3 01`, the schema's 8-byte little-endian
//! CRC-64-AVRO fingerprint, then the datum. The fingerprint names the writer
//! schema, so readers resolve it against their own as the schema evolves.

use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::types::Value;
use uuid::Uuid;

use crate::model::Op;

/// The writer schema, the repository's contract file.
pub const SCHEMA_JSON: &str = include_str!("../../protocols/review_changed.avsc");

static SCHEMA: LazyLock<Schema> = LazyLock::new(|| {
    // The file is compiled in and checked by the unit tests: a parse failure
    // is a build defect, not input.
    Schema::parse_str(SCHEMA_JSON).expect("protocols/review_changed.avsc is a valid schema")
});

/// The parsed writer schema.
pub fn schema() -> &'static Schema {
    &SCHEMA
}

/// One change of a review: ids only, never review data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewChanged {
    /// Unique per change, stable across redeliveries.
    pub event_id: Uuid,
    /// The review.
    pub review_id: Uuid,
    /// Its author.
    pub user_id: i64,
    /// The version this change created.
    pub version: i64,
    /// What the change did.
    pub op: Op,
    /// When review-svc accepted it (µs since the epoch).
    pub changed_at_us: i64,
}

/// Encoding or decoding failed.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Avro rejected the datum or the bytes.
    #[error("avro: {0}")]
    Avro(#[from] Box<apache_avro::Error>),
    /// The bytes decoded but are not a `ReviewChanged`.
    #[error("not a ReviewChanged: {0}")]
    Shape(String),
}

impl From<apache_avro::Error> for EventError {
    fn from(e: apache_avro::Error) -> EventError {
        EventError::Avro(Box::new(e))
    }
}

impl ReviewChanged {
    /// The Kafka record key: all changes of a review land in one partition,
    /// in order.
    pub fn key(&self) -> String {
        self.review_id.to_string()
    }

    /// Single-object encoding of the event.
    pub fn encode(&self) -> Result<Vec<u8>, EventError> {
        let value = Value::Record(vec![
            ("event_id".into(), Value::Uuid(self.event_id)),
            ("review_id".into(), Value::Uuid(self.review_id)),
            ("user_id".into(), Value::Long(self.user_id)),
            ("version".into(), Value::Long(self.version)),
            (
                "op".into(),
                Value::Enum(self.op.avro_index(), self.op.as_str().into()),
            ),
            (
                "changed_at".into(),
                Value::TimestampMicros(self.changed_at_us),
            ),
        ]);
        let mut writer = apache_avro::GenericSingleObjectWriter::new_with_capacity(schema(), 64)?;
        let mut out = Vec::with_capacity(64);
        writer.write_value(value, &mut out)?;
        Ok(out)
    }

    /// Decodes a payload written with this schema (readers of other schema
    /// versions resolve by fingerprint instead).
    pub fn decode(bytes: &[u8]) -> Result<ReviewChanged, EventError> {
        let reader = apache_avro::GenericSingleObjectReader::new(schema().clone())?;
        let value = reader.read_value(&mut &bytes[..])?;
        let Value::Record(fields) = value else {
            return Err(EventError::Shape("not a record".into()));
        };
        let field = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v)
                .ok_or_else(|| EventError::Shape(format!("missing {name}")))
        };
        let uuid = |name: &str| match field(name)? {
            Value::Uuid(u) => Ok(*u),
            other => Err(EventError::Shape(format!("{name}: {other:?}"))),
        };
        let long = |name: &str| match field(name)? {
            Value::Long(v) | Value::TimestampMicros(v) => Ok(*v),
            other => Err(EventError::Shape(format!("{name}: {other:?}"))),
        };
        let op = match field("op")? {
            Value::Enum(_, symbol) => Op::parse(symbol),
            _ => None,
        }
        .ok_or_else(|| EventError::Shape("op".into()))?;
        Ok(ReviewChanged {
            event_id: uuid("event_id")?,
            review_id: uuid("review_id")?,
            user_id: long("user_id")?,
            version: long("version")?,
            op,
            changed_at_us: long("changed_at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::rabin::Rabin;

    fn sample() -> ReviewChanged {
        ReviewChanged {
            event_id: Uuid::new_v4(),
            review_id: Uuid::new_v4(),
            user_id: 42,
            version: 7,
            op: Op::Update,
            changed_at_us: 1_700_000_000_000_123,
        }
    }

    #[test]
    fn round_trips() {
        let e = sample();
        let bytes = e.encode().expect("encodes");
        assert_eq!(ReviewChanged::decode(&bytes).expect("decodes"), e);
    }

    #[test]
    fn payload_is_single_object_encoded() {
        let bytes = sample().encode().expect("encodes");
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        let fingerprint = schema().fingerprint::<Rabin>();
        assert_eq!(&bytes[2..10], &fingerprint.bytes[..]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"\xC3\x01",
            b"\xC3\x01\0\0\0\0\0\0\0\0\xff",
            b"hello world!",
        ] {
            assert!(ReviewChanged::decode(bad).is_err());
        }
    }
}
