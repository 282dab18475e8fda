//! `EnrichedReview` (`protocols/review_enriched.avsc`): the latest version of
//! a review with its movie and user, published by the enricher to
//! `reviews.enriched`, keyed by `user_id`; what the recommender consumes.

use std::sync::LazyLock;

use apache_avro::types::Value;
use uuid::Uuid;

use crate::codec::{self, CodecError, Record, SingleObjectCodec};

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

/// A user's subscription tier (an unknown symbol reads `Free`, the schema default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Tier {
    /// The default.
    #[default]
    Free,
    /// Paying.
    Standard,
    /// Paying more.
    Premium,
}

impl Tier {
    /// The schema symbol.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "FREE",
            Tier::Standard => "STANDARD",
            Tier::Premium => "PREMIUM",
        }
    }

    fn index(self) -> u32 {
        match self {
            Tier::Free => 0,
            Tier::Standard => 1,
            Tier::Premium => 2,
        }
    }

    /// Parses a symbol; an unknown one is `Free`, as the schema's enum default says.
    pub fn parse(s: &str) -> Tier {
        match s {
            "STANDARD" => Tier::Standard,
            "PREMIUM" => Tier::Premium,
            _ => Tier::Free,
        }
    }
}

/// One enriched review change. See the schema file for each field's contract.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrichedReview {
    /// `event_id` of the triggering `reviews.changed` event (dedupe key).
    pub event_id: Uuid,
    /// The review.
    pub review_id: Uuid,
    /// The latest version when fetched (≥ the triggering change's version).
    pub version: i64,
    /// The latest version is a tombstone: the recommender drops the like.
    pub deleted: bool,
    /// Stars of the latest version; `None` on a tombstone.
    pub rating: Option<f32>,
    /// Author, also the record key.
    pub user_id: i64,
    /// Reviewed movie.
    pub movie_id: i64,
    /// When the latest version was accepted (µs since the epoch).
    pub changed_at_us: i64,
    /// Movie title.
    pub movie_title: String,
    /// Movie release year.
    pub movie_year: i32,
    /// Movie genres, most specific first.
    pub movie_genres: Vec<String>,
    /// Movie popularity (expected share of all reviews).
    pub movie_popularity: f64,
    /// Author's country (ISO 3166-1 alpha-2).
    pub user_country: String,
    /// Author's zone.
    pub user_zone: String,
    /// Author's preferred genres.
    pub user_preferred_genres: Vec<String>,
    /// Author's tier.
    pub user_tier: Tier,
    /// When the enricher built the record (µs since the epoch).
    pub enriched_at_us: i64,
}

impl EnrichedReview {
    /// The Kafka record key: one user's reviews in one partition, in order.
    pub fn key(&self) -> String {
        self.user_id.to_string()
    }

    /// Single-object encoding.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec().encode(Value::Record(vec![
            ("event_id".into(), Value::Uuid(self.event_id)),
            ("review_id".into(), Value::Uuid(self.review_id)),
            ("version".into(), Value::Long(self.version)),
            ("deleted".into(), Value::Boolean(self.deleted)),
            ("rating".into(), codec::optional_float(self.rating)),
            ("user_id".into(), Value::Long(self.user_id)),
            ("movie_id".into(), Value::Long(self.movie_id)),
            (
                "changed_at".into(),
                Value::TimestampMicros(self.changed_at_us),
            ),
            (
                "movie_title".into(),
                Value::String(self.movie_title.clone()),
            ),
            ("movie_year".into(), Value::Int(self.movie_year)),
            ("movie_genres".into(), codec::strings(&self.movie_genres)),
            (
                "movie_popularity".into(),
                Value::Double(self.movie_popularity),
            ),
            (
                "user_country".into(),
                Value::String(self.user_country.clone()),
            ),
            ("user_zone".into(), Value::String(self.user_zone.clone())),
            (
                "user_preferred_genres".into(),
                codec::strings(&self.user_preferred_genres),
            ),
            (
                "user_tier".into(),
                Value::Enum(self.user_tier.index(), self.user_tier.as_str().into()),
            ),
            (
                "enriched_at".into(),
                Value::TimestampMicros(self.enriched_at_us),
            ),
        ]))
    }

    /// Decodes a payload of any known writer schema.
    pub fn decode(bytes: &[u8]) -> Result<EnrichedReview, CodecError> {
        Self::from_value(codec().decode(bytes)?)
    }

    /// The typed event from a value already resolved to the current schema.
    pub fn from_value(value: Value) -> Result<EnrichedReview, CodecError> {
        let r = Record::new(value)?;
        Ok(EnrichedReview {
            event_id: r.uuid("event_id")?,
            review_id: r.uuid("review_id")?,
            version: r.long("version")?,
            deleted: r.boolean("deleted")?,
            rating: r.optional_float("rating")?,
            user_id: r.long("user_id")?,
            movie_id: r.long("movie_id")?,
            changed_at_us: r.long("changed_at")?,
            movie_title: r.string("movie_title")?,
            movie_year: r.int("movie_year")?,
            movie_genres: r.strings("movie_genres")?,
            movie_popularity: r.double("movie_popularity")?,
            user_country: r.string("user_country")?,
            user_zone: r.string("user_zone")?,
            user_preferred_genres: r.strings("user_preferred_genres")?,
            user_tier: Tier::parse(r.symbol("user_tier")?),
            enriched_at_us: r.long("enriched_at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EnrichedReview {
        EnrichedReview {
            event_id: Uuid::new_v4(),
            review_id: Uuid::new_v4(),
            version: 3,
            deleted: false,
            rating: Some(4.5),
            user_id: 17,
            movie_id: 99,
            changed_at_us: 1_700_000_000_000_000,
            movie_title: "Heat".into(),
            movie_year: 1995,
            movie_genres: vec!["Crime".into(), "Thriller".into()],
            movie_popularity: 0.0012,
            user_country: "FR".into(),
            user_zone: "eu-west".into(),
            user_preferred_genres: vec!["Crime".into()],
            user_tier: Tier::Premium,
            enriched_at_us: 1_700_000_000_500_000,
        }
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
