//! The exact bytes of each event: a change to how the types are written
//! (hand mappings today, generated code tomorrow) must not change the wire.
//! The fixed events are also the samples of the modules' unit tests.
//! Each golden is the single-object header (`C3 01` + the schema's
//! CRC-64-AVRO fingerprint, little-endian) followed by the datum.

use uuid::Uuid;

use crate::{ChangeOp, EnrichedReview, ReviewChanged, Tier};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fixed `reviews.changed` event.
pub(crate) fn review_changed() -> ReviewChanged {
    ReviewChanged {
        event_id: Uuid::from_u128(0x0011_2233_4455_6677_8899_aabb_ccdd_eeff),
        review_id: Uuid::from_u128(0xfedc_ba98_7654_3210_0123_4567_89ab_cdef),
        user_id: 42,
        version: 7,
        op: ChangeOp::Update,
        changed_at_us: 1_700_000_000_000_123,
    }
}

/// A fixed live `reviews.enriched` event.
pub(crate) fn enriched_review() -> EnrichedReview {
    EnrichedReview {
        event_id: Uuid::from_u128(0x0011_2233_4455_6677_8899_aabb_ccdd_eeff),
        review_id: Uuid::from_u128(0xfedc_ba98_7654_3210_0123_4567_89ab_cdef),
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

/// `ReviewChanged` fingerprint `9a3d3e032b45ecf4`; uuids as strings, zig-zag longs, op index 1.
const REVIEW_CHANGED: &str = concat!(
    "c3019a3d3e032b45ecf4",
    "4830303131323233332d343435352d363637372d383839392d61616262636364",
    "64656566664866656463626139382d373635342d333231302d303132332d3435",
    "36373839616263646566540e02f681f28183898506",
);
/// `EnrichedReview` fingerprint `d79a543ae2d12125`; rating is union branch 1, tier index 2.
const ENRICHED_REVIEW: &str = concat!(
    "c301d79a543ae2d12125",
    "4830303131323233332d343435352d363637372d383839392d61616262636364",
    "64656566664866656463626139382d373635342d333231302d303132332d3435",
    "363738396162636465660600020000904022c6018080f2818389850608486561",
    "74961f040a4372696d6510546872696c6c657200613255302aa9533f0446520e",
    "65752d77657374020a4372696d650004c084af8283898506",
);
/// The same with `deleted`, a null rating (branch 0), no genres and tier index 0.
const ENRICHED_TOMBSTONE: &str = concat!(
    "c301d79a543ae2d12125",
    "4830303131323233332d343435352d363637372d383839392d61616262636364",
    "64656566664866656463626139382d373635342d333231302d303132332d3435",
    "3637383961626364656606010022c6018080f281838985060848656174961f00",
    "613255302aa9533f0446520e65752d77657374020a4372696d650000c084af82",
    "83898506",
);

#[test]
fn review_changed_bytes() {
    let bytes = review_changed().encode().expect("encodes");
    assert_eq!(hex(&bytes), REVIEW_CHANGED);
    assert_eq!(
        ReviewChanged::decode(&bytes).expect("decodes"),
        review_changed()
    );
}

#[test]
fn enriched_review_bytes() {
    let bytes = enriched_review().encode().expect("encodes");
    assert_eq!(hex(&bytes), ENRICHED_REVIEW);
    assert_eq!(
        EnrichedReview::decode(&bytes).expect("decodes"),
        enriched_review()
    );
}

#[test]
fn enriched_tombstone_bytes() {
    // The other union branch (null rating), an empty array, the first symbol.
    let tombstone = EnrichedReview {
        deleted: true,
        rating: None,
        movie_genres: vec![],
        user_tier: Tier::Free,
        ..enriched_review()
    };
    let bytes = tombstone.encode().expect("encodes");
    assert_eq!(hex(&bytes), ENRICHED_TOMBSTONE);
    assert_eq!(EnrichedReview::decode(&bytes).expect("decodes"), tombstone);
}
