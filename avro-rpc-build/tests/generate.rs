//! What the generator accepts and what it refuses (with the spot named).
//! The generated code itself is compiled and run by avro-rpc's tests/codegen.rs.

fn generate(types: &str, messages: &str) -> Result<String, String> {
    avro_rpc_build::generate(&format!(
        r#"{{"protocol":"Demo","namespace":"org.example","types":[{types}],"messages":{{{messages}}}}}"#
    ))
    .map_err(|e| e.to_string())
}

#[test]
fn emits_types_client_trait_and_server() {
    let code = generate(
        r#"{"type":"record","name":"Point","fields":[{"name":"x","type":"int"},{"name":"camelCase","type":["null","bytes"]}]},
           {"type":"enum","name":"Color","symbols":["RED","DARK_BLUE"]},
           {"type":"fixed","name":"Id","size":16},
           {"type":"error","name":"Oops","fields":[]}"#,
        r#""getPoint":{"request":[{"name":"id","type":"Id"}],"response":"Point","errors":["Oops"]},
           "ping":{"request":[],"response":"null","one-way":true}"#,
    )
    .unwrap();
    for needle in [
        "pub struct Point",
        "#[serde(rename = \"camelCase\")]",
        "pub camel_case: ::std::option::Option<::std::vec::Vec<u8>>",
        "serde_avro_bytes_opt",
        "pub enum Color",
        "#[serde(rename = \"DARK_BLUE\")]",
        "DarkBlue,",
        "pub struct Id(",
        "pub enum GetPointError",
        "pub struct DemoClient",
        "pub async fn get_point(&self, id: Id)",
        "pub trait Demo:",
        "pub struct DemoServer<T>",
        "pub const PROTOCOL_TEXT",
    ] {
        assert!(code.contains(needle), "missing {needle:?} in\n{code}");
    }
}

#[test]
fn keywords_become_raw_identifiers() {
    let code = generate(
        r#"{"type":"record","name":"R","fields":[{"name":"type","type":"string"}]}"#,
        r#""match":{"request":[{"name":"fn","type":"R"}],"response":"null"}"#,
    )
    .unwrap();
    assert!(code.contains("pub r#type: "), "{code}");
    assert!(
        code.contains("pub async fn r#match(&self, r#fn: R)"),
        "{code}"
    );
}

#[test]
fn refuses_general_unions() {
    let e = generate(
        r#"{"type":"record","name":"R","fields":[{"name":"v","type":["int","string"]}]}"#,
        "",
    )
    .unwrap_err();
    assert!(e.contains("org.example.R.v") && e.contains("union"), "{e}");
}

#[test]
fn refuses_bytes_inside_collections() {
    let e = generate(
        r#"{"type":"record","name":"R","fields":[{"name":"blobs","type":{"type":"array","items":"bytes"}}]}"#,
        "",
    )
    .unwrap_err();
    assert!(e.contains("blobs") && e.contains("bytes"), "{e}");
}

#[test]
fn refuses_undefined_names_and_clashes() {
    let e = generate(
        "",
        r#""m":{"request":[{"name":"x","type":"Nope"}],"response":"null"}"#,
    )
    .unwrap_err();
    assert!(e.contains("Nope"), "{e}");
    let e = generate(r#"{"type":"record","name":"DemoClient","fields":[]}"#, "").unwrap_err();
    assert!(e.contains("DemoClient"), "{e}");
    let e = generate(
        r#"{"type":"record","name":"A","namespace":"x","fields":[]},{"type":"record","name":"A","namespace":"y","fields":[]}"#,
        "",
    )
    .unwrap_err();
    assert!(e.contains("Rust name A"), "{e}");
}

#[test]
fn schemas_emit_value_converting_types() {
    let code = avro_rpc_build::generate_schemas(&[
        r#"{"type":"record","name":"Ev","namespace":"org.example","fields":[
            {"name":"id","type":{"type":"string","logicalType":"uuid"}},
            {"name":"at","type":{"type":"long","logicalType":"timestamp-micros"}},
            {"name":"score","type":["null","float"]},
            {"name":"tags","type":{"type":"array","items":"string"}},
            {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B_C"],"default":"A"}}]}"#,
        r#"{"type":"record","name":"Other","namespace":"org.example","fields":[
            {"name":"kind","type":"Kind"}]}"#,
    ])
    .unwrap();
    for needle in [
        "pub struct ValueError",
        "#[derive(Debug, Clone, PartialEq)]\npub struct Ev {",
        "pub id: ::uuid::Uuid,",
        "pub at_us: i64,",
        "(::std::string::String::from(\"at\"), ::apache_avro::types::Value::TimestampMicros(self.at_us)),",
        "pub score: ::std::option::Option<f32>,",
        "::apache_avro::types::Value::Union(0, ::std::boxed::Box::new(::apache_avro::types::Value::Null))",
        "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]\npub enum Kind {",
        "    #[default]\n    A,",
        "    BC,",
        "Self::parse(&symbol).unwrap_or(Kind::A)",
        // A type declared by one schema and used by another is one type.
        "#[derive(Debug, Clone, Copy, PartialEq, Eq)]\npub struct Other {",
        "fn uuid(",
    ] {
        assert!(code.contains(needle), "missing {needle:?} in\n{code}");
    }
    assert_eq!(code.matches("pub enum Kind").count(), 1);
}

#[test]
fn schemas_refuse_what_they_cannot_express() {
    for (bad, says) in [
        (r#""string""#, "must declare a named type"),
        (
            r#"{"type":"enum","name":"E","symbols":["A"],"default":"Z"}"#,
            "not one of its symbols",
        ),
        (
            r#"{"type":"record","name":"R","fields":[{"name":"u","type":["int","string"]}]}"#,
            "only [null, T] unions",
        ),
    ] {
        let e = avro_rpc_build::generate_schemas(&[bad])
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
    let twice = r#"{"type":"enum","name":"E","symbols":["A"]}"#;
    let e = avro_rpc_build::generate_schemas(&[twice, twice])
        .unwrap_err()
        .to_string();
    assert!(e.contains("two types map to the Rust name E"), "{e}");
}

#[test]
fn extern_types_are_used_not_generated() {
    let avpr = r#"{"protocol":"Demo","namespace":"org.example","types":[
        {"type":"enum","name":"Tier","symbols":["FREE","PREMIUM"]},
        {"type":"record","name":"User","fields":[{"name":"tier","type":"Tier"},
            {"name":"tiers","type":{"type":"array","items":"org.example.Tier"}}]}],
        "messages":{"get":{"request":[{"name":"t","type":"Tier"}],"response":"User"}}}"#;
    let code = avro_rpc_build::Builder::new()
        .extern_type("org.example.Tier", "::events::Tier")
        .generate(avpr)
        .unwrap();
    assert!(!code.contains("pub enum Tier"), "{code}");
    for needle in [
        "pub tier: ::events::Tier,",
        "pub tiers: ::std::vec::Vec<::events::Tier>,",
        "pub async fn get(&self, t: ::events::Tier)",
    ] {
        assert!(code.contains(needle), "missing {needle:?} in\n{code}");
    }
}

#[test]
fn schema_enums_derive_serde_on_request() {
    let avsc = r#"{"type":"enum","name":"Tier","symbols":["FREE","PREMIUM"]}"#;
    let plain = avro_rpc_build::generate_schemas(&[avsc]).unwrap();
    assert!(!plain.contains("serde"), "{plain}");
    let code = avro_rpc_build::Builder::new()
        .schema_serde(true)
        .generate_schemas(&[avsc])
        .unwrap();
    for needle in [
        "::serde::Serialize, ::serde::Deserialize)]\npub enum Tier {",
        "    #[serde(rename = \"PREMIUM\")]\n    Premium,",
    ] {
        assert!(code.contains(needle), "missing {needle:?} in\n{code}");
    }
}
