//! Unit tests for `codec`: encoding, decoding with resolution, and the
//! bounded pre-pass refusing hostile input.

use super::*;
use crate::wire::write_long;
use serde_json::json;

fn schema(j: serde_json::Value) -> DatumSchema {
    DatumSchema::from_json(&j).unwrap()
}

fn record_v1() -> DatumSchema {
    schema(json!({"type":"record","name":"R","fields":[
        {"name":"id","type":"long"},
        {"name":"gone","type":"string"},
        {"name":"tags","type":{"type":"array","items":"string"}}
    ]}))
}

fn record_v2() -> DatumSchema {
    schema(json!({"type":"record","name":"R","fields":[
        {"name":"id","type":"long"},
        {"name":"tags","type":{"type":"array","items":"string"}},
        {"name":"added","type":"int","default":42}
    ]}))
}

#[test]
fn encodes_then_decodes_with_resolution() {
    let codec = AvroCodec::new();
    let v1 = Value::Record(vec![
        ("id".into(), Value::Long(7)),
        ("gone".into(), Value::String("x".into())),
        ("tags".into(), Value::Array(vec![Value::String("a".into())])),
    ]);
    let mut out = Vec::new();
    codec.encode(&record_v1(), &v1, &mut out).unwrap();
    // Same bytes as apache-avro's own encoder.
    assert_eq!(
        out,
        apache_avro::to_avro_datum(record_v1().schema(), v1.clone()).unwrap()
    );
    let mut input = &out[..];
    let v2 = codec
        .decode(&record_v1(), &record_v2(), &mut input, &Limits::default())
        .unwrap();
    assert!(input.is_empty());
    assert_eq!(
        v2,
        Value::Record(vec![
            ("id".into(), Value::Long(7)),
            ("tags".into(), Value::Array(vec![Value::String("a".into())])),
            ("added".into(), Value::Int(42)),
        ])
    );
}

#[test]
fn encode_reports_mismatches() {
    let codec = AvroCodec::new();
    let bad = Value::Record(vec![("id".into(), Value::String("no".into()))]);
    let e = codec
        .encode(&record_v1(), &bad, &mut Vec::new())
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Encode);
}

#[test]
fn truncated_input_is_an_error_at_every_length() {
    let codec = AvroCodec::new();
    let v = Value::Record(vec![
        ("id".into(), Value::Long(123456)),
        ("gone".into(), Value::String("hello".into())),
        (
            "tags".into(),
            Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
        ),
    ]);
    let mut out = Vec::new();
    codec.encode(&record_v1(), &v, &mut out).unwrap();
    for n in 0..out.len() {
        let mut input = &out[..n];
        assert!(
            codec
                .decode(&record_v1(), &record_v1(), &mut input, &Limits::default())
                .is_err()
        );
    }
}

#[test]
fn huge_counts_of_zero_size_items_are_refused() {
    let s = schema(json!({"type":"array","items":"null"}));
    let mut out = Vec::new();
    write_long(&mut out, i64::MAX / 2);
    write_long(&mut out, 0);
    let e = AvroCodec::new()
        .decode(&s, &s, &mut &out[..], &Limits::default())
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Decode);
    assert!(e.to_string().contains("collection"), "{e}");
}

#[test]
fn huge_string_lengths_are_refused() {
    let s = schema(json!("string"));
    let mut out = Vec::new();
    write_long(&mut out, 1 << 40);
    assert!(check_datum(&s, &mut &out[..], &Limits::default()).is_err());
}

#[test]
fn deep_nesting_is_refused() {
    let s =
        schema(json!({"type":"record","name":"N","fields":[{"name":"next","type":["null","N"]}]}));
    // 1000 levels of Some(...) then null.
    let mut out = Vec::new();
    for _ in 0..1000 {
        write_long(&mut out, 1);
    }
    write_long(&mut out, 0);
    let e = check_datum(&s, &mut &out[..], &Limits::default()).unwrap_err();
    assert!(e.to_string().contains("nesting"), "{e}");
    // Shallow is fine.
    let mut out = Vec::new();
    for _ in 0..10 {
        write_long(&mut out, 1);
    }
    write_long(&mut out, 0);
    let v = AvroCodec::new()
        .decode(&s, &s, &mut &out[..], &Limits::default())
        .unwrap();
    let mut enc = Vec::new();
    AvroCodec::new().encode(&s, &v, &mut enc).unwrap();
    assert_eq!(enc, out);
}

#[test]
fn bad_union_and_enum_indexes_are_refused() {
    let s = schema(json!(["null", "int"]));
    assert!(check_datum(&s, &mut &[4u8][..], &Limits::default()).is_err());
    let e = schema(json!({"type":"enum","name":"E","symbols":["A"]}));
    assert!(check_datum(&e, &mut &[2u8][..], &Limits::default()).is_err());
    assert!(check_datum(&e, &mut &[1u8][..], &Limits::default()).is_err());
    assert!(check_datum(&e, &mut &[0u8][..], &Limits::default()).is_ok());
}

#[test]
fn serde_values_convert_through_the_schema() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct R {
        id: i64,
        gone: String,
        tags: Vec<String>,
    }
    let r = R {
        id: 1,
        gone: "g".into(),
        tags: vec!["t".into()],
    };
    let v = to_avro_value(&record_v1(), &r).unwrap();
    let back: R = from_avro_value(&v).unwrap();
    assert_eq!(back, r);
}
