//! Unit tests for `protocol`: parsing, validation and hashing.

use super::*;

const SIMPLE: &str = r#"{
  "protocol": "Simple", "namespace": "org.example.simple",
  "types": [
    {"type": "enum", "name": "Kind", "symbols": ["FOO", "BAR"]},
    {"type": "fixed", "name": "MD5", "size": 16},
    {"type": "record", "name": "TestRecord", "fields": [
      {"name": "name", "type": "string"},
      {"name": "kind", "type": "Kind"},
      {"name": "hash", "type": "MD5"},
      {"name": "next", "type": ["null", "TestRecord"], "default": null}
    ]},
    {"type": "error", "name": "TestError", "fields": [{"name": "message", "type": "string"}]}
  ],
  "messages": {
    "hello": {"request": [{"name": "greeting", "type": "string"}], "response": "string"},
    "echo": {"request": [{"name": "record", "type": "TestRecord"}], "response": "TestRecord"},
    "pair": {"request": [{"name": "a", "type": "TestRecord"}, {"name": "b", "type": "org.example.simple.TestRecord"}],
             "response": {"type": "array", "items": "TestRecord"}},
    "error": {"request": [], "response": "null", "errors": ["TestError"], "idempotent": true},
    "ack": {"request": [], "response": "null", "one-way": true}
  }
}"#;

#[test]
fn parses_types_and_messages() {
    let p = Protocol::parse(SIMPLE).unwrap();
    assert_eq!(p.name(), "Simple");
    assert_eq!(p.namespace(), Some("org.example.simple"));
    assert_eq!(p.messages().count(), 5);
    let names: Vec<_> = p.types().iter().map(|t| t.full_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "org.example.simple.Kind",
            "org.example.simple.MD5",
            "org.example.simple.TestRecord",
            "org.example.simple.TestError"
        ]
    );
    let echo = p.message("echo").unwrap();
    assert_eq!(echo.params(), ["record"]);
    assert!(!echo.is_one_way());
    let err = p.message("error").unwrap();
    assert_eq!(err.error_names(), ["org.example.simple.TestError"]);
    assert!(err.is_idempotent());
    assert!(!echo.is_idempotent());
    assert!(p.message("ack").unwrap().is_one_way());
}

#[test]
fn a_type_used_twice_in_one_message_is_defined_once() {
    let p = Protocol::parse(SIMPLE).unwrap();
    let pair = p.message("pair").unwrap();
    assert_eq!(
        pair.request()
            .json()
            .matches("\"fields\":[{\"name\":\"name\"")
            .count(),
        1
    );
}

#[test]
fn hash_is_md5_of_the_text_as_given() {
    let p = Protocol::parse(SIMPLE).unwrap();
    // md5 computed independently of the parser: reformatting changes the hash.
    let reformatted = SIMPLE.replace("\n", " ");
    let q = Protocol::parse(&reformatted).unwrap();
    assert_ne!(p.hash(), q.hash());
    assert_eq!(p.hash(), Md5Hash::of(SIMPLE));
    assert_eq!(
        format!("{:?}", Md5Hash::of("")),
        "d41d8cd98f00b204e9800998ecf8427e"
    );
}

fn err(text: &str) -> String {
    Protocol::parse(text).unwrap_err().to_string()
}

#[test]
fn rejects_one_way_with_a_response_or_errors() {
    let e = err(
        r#"{"protocol":"P","messages":{"m":{"request":[],"response":"string","one-way":true}}}"#,
    );
    assert!(e.contains("one-way"), "{e}");
    let e = err(
        r#"{"protocol":"P","types":[{"type":"error","name":"E","fields":[]}],
            "messages":{"m":{"request":[],"response":"null","errors":["E"],"one-way":true}}}"#,
    );
    assert!(e.contains("one-way"), "{e}");
}

#[test]
fn rejects_unresolved_names() {
    let e = err(
        r#"{"protocol":"P","messages":{"m":{"request":[{"name":"x","type":"Nope"}],"response":"null"}}}"#,
    );
    assert!(e.contains("Nope"), "{e}");
    let e = err(r#"{"protocol":"P","messages":{"m":{"request":[],"response":"Missing"}}}"#);
    assert!(e.contains("Missing"), "{e}");
    let e = err(
        r#"{"protocol":"P","types":[{"type":"record","name":"R","fields":[{"name":"f","type":"Q"}]}]}"#,
    );
    assert!(e.contains("Q"), "{e}");
}

#[test]
fn rejects_malformed_declarations() {
    assert!(err("not json").contains("JSON"));
    assert!(err(r#"{"namespace":"x"}"#).contains("protocol"));
    assert!(err(r#"{"protocol":"P","messages":{"m":{"response":"null"}}}"#).contains("request"));
    assert!(err(r#"{"protocol":"P","messages":{"m":{"request":[]}}}"#).contains("response"));
    assert!(err(r#"{"protocol":"P","types":[{"type":"fixed","name":"F","size":1},{"type":"fixed","name":"F","size":2}]}"#)
        .contains("twice"));
    assert!(err(r#"{"protocol":"1P"}"#).contains("invalid name"));
}

#[test]
fn types_in_other_namespaces_resolve_by_full_name() {
    let p = Protocol::parse(
        r#"{"protocol":"P","namespace":"a",
            "types":[{"type":"record","name":"R","namespace":"b","fields":[{"name":"x","type":"int"}]},
                     {"type":"record","name":"S","fields":[{"name":"r","type":"b.R"}]}],
            "messages":{"m":{"request":[{"name":"s","type":"S"}],"response":"b.R"}}}"#,
    )
    .unwrap();
    assert_eq!(p.types()[1].full_name, "a.S");
    assert!(
        p.message("m")
            .unwrap()
            .response()
            .json()
            .contains("\"b.R\"")
    );
}
