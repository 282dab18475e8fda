//! `EnrichedReview` (`protocols/review_enriched.avsc`): the latest version of
//! a review with its movie and user, published by the enricher to
//! `reviews.enriched`, keyed by `user_id`; what the recommender consumes.

use std::sync::LazyLock;

use crate::codec::{CodecError, SingleObjectCodec};

/// The contract file, compiled in.
pub const SCHEMA_JSON: &str = include_str!("../../protocols/review_enriched.avsc");

static CODEC: LazyLock<SingleObjectCodec> = LazyLock::new(|| {
    // Compiled in and parsed by the unit tests: a failure is a build defect.
    SingleObjectCodec::parse(SCHEMA_JSON, &[])
        .expect("protocols/review_enriched.avsc is a valid schema")
});

/// The codec of `reviews.enriched` payloads (reader = the current schema).
pub fn codec() -> &'static SingleObjectCodec {
    &CODEC
}

pub use crate::generated::{EnrichedReview, Tier};

impl EnrichedReview {
    /// The Kafka record key: one user's reviews in one partition, in order.
    pub fn key(&self) -> String {
        self.user_id.to_string()
    }

    /// Single-object encoding.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec().encode(self.to_value())
    }

    /// Decodes a payload of any known writer schema.
    pub fn decode(bytes: &[u8]) -> Result<EnrichedReview, CodecError> {
        Ok(Self::from_value(codec().decode(bytes)?)?)
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::types::Value;
    use uuid::Uuid;

    use super::*;
    use crate::codec::{self, Record};

    fn sample() -> EnrichedReview {
        crate::golden_wire::enriched_review()
    }

    #[test]
    fn round_trips_live_and_tombstone() {
        let live = sample();
        let bytes = live.encode().expect("encodes");
        assert_eq!(EnrichedReview::decode(&bytes).expect("decodes"), live);
        let tombstone = EnrichedReview {
            deleted: true,
            rating: None,
            user_tier: Tier::Free,
            movie_genres: vec![],
            ..sample()
        };
        let bytes = tombstone.encode().expect("encodes");
        assert_eq!(EnrichedReview::decode(&bytes).expect("decodes"), tombstone);
    }

    #[test]
    fn payload_names_the_contract_schema() {
        let bytes = sample().encode().expect("encodes");
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        let schema = apache_avro::Schema::parse_str(SCHEMA_JSON).expect("schema");
        assert_eq!(&bytes[2..10], &codec::Fingerprint::of(&schema).0[..]);
    }

    /// user.avpr's generated code (de)serializes `Tier` with serde through
    /// apache-avro: its serde form is the symbol, which the schema resolves
    /// to the same enum value as `to_value`.
    #[test]
    fn tier_serde_is_the_avro_enum() {
        let schema = apache_avro::Schema::parse_str(
            r#"{"type":"enum","name":"Tier","symbols":["FREE","STANDARD","PREMIUM"]}"#,
        )
        .expect("schema");
        for tier in Tier::ALL {
            let value = apache_avro::to_value(tier).expect("serializes");
            assert_eq!(value, Value::String(tier.as_str().into()));
            assert_eq!(value.resolve(&schema).expect("resolves"), tier.to_value());
            let back: Tier = apache_avro::from_value(&tier.to_value()).expect("reads");
            assert_eq!(back, tier);
        }
    }

    #[test]
    fn garbage_and_other_events_are_errors() {
        assert!(EnrichedReview::decode(b"\xC3\x01garbage!").is_err());
        let changed = crate::ReviewChanged {
            event_id: Uuid::new_v4(),
            review_id: Uuid::new_v4(),
            user_id: 1,
            version: 1,
            op: crate::ChangeOp::Create,
            changed_at_us: 1,
        };
        let bytes = changed.encode().expect("encodes");
        assert!(matches!(
            EnrichedReview::decode(&bytes),
            Err(CodecError::UnknownSchema(_))
        ));
    }

    #[test]
    fn a_reader_with_an_added_defaulted_field_reads_a_current_payload() {
        // The next schema version: one more field, with a default.
        let mut next: serde_json::Value = serde_json::from_str(SCHEMA_JSON).expect("json");
        let fields = next["fields"].as_array_mut().expect("fields");
        fields.push(serde_json::json!(
            {"name": "movie_runtime_minutes", "type": "int", "default": -1, "doc": "added later"}
        ));
        let next = next.to_string();
        let reader = SingleObjectCodec::parse(&next, &[SCHEMA_JSON]).expect("v2 schema");
        let event = sample();
        let bytes = event.encode().expect("encodes");
        let value = reader.decode(&bytes).expect("resolves");
        let record = Record::new(value.clone()).expect("record");
        assert_eq!(record.int("movie_runtime_minutes").expect("defaulted"), -1);
        // The typed reader of today reads it too (the extra field is ignored).
        assert_eq!(EnrichedReview::from_value(value).expect("typed"), event);
        // And the other way: today's codec does not know the newer writer.
        let newer = SingleObjectCodec::parse(&next, &[]).expect("v2");
        assert_ne!(newer.fingerprint(), codec().fingerprint());
    }
}
