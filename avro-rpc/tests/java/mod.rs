//! Shared by the Java interop tests (`java_interop.rs`) and the golden-byte
//! tests (`golden.rs`): the interop protocols of `interop/protocols/`, the
//! contract's test values (`interop/README.md`), a field-by-field value diff,
//! the deterministic Interop server behaviour as a Rust handler, and the
//! plumbing that builds and spawns the Java harness (`interop/run-java.sh`).
#![allow(dead_code)]

pub mod checks;
pub mod simple;

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use avro_rpc::export::apache_avro::types::Value;
use avro_rpc::{Protocol, Request, Response, ResponseError};

// ------------------------------------------------------------------ paths

/// `avro-rpc/interop/`.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Reads a golden hex file (whitespace is not significant).
pub fn hex_file(rel: &str) -> Vec<u8> {
    let path = interop_dir().join("golden").join(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(
        digits.len().is_multiple_of(2),
        "{}: odd number of hex digits",
        path.display()
    );
    digits
        .chunks(2)
        .map(|p| {
            u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16)
                .unwrap_or_else(|e| panic!("{}: bad hex {p:?}: {e}", path.display()))
        })
        .collect()
}

/// Whether a golden file exists (a missing `NN.s2c.hex` means "no reply").
pub fn golden_exists(rel: &str) -> bool {
    interop_dir().join("golden").join(rel).exists()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// -------------------------------------------------------------- protocols

/// A version of the interop protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    pub const ALL: [Version; 2] = [Version::V1, Version::V2];

    /// As the Java harness spells it (`--proto v1`).
    pub fn arg(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        }
    }

    /// MD5 of the protocol text the Java implementation sends for this version.
    pub fn java_hash(self) -> &'static str {
        match self {
            Version::V1 => "c0cf01b123d5234c094f4fc29e1a3490",
            Version::V2 => "5bc479e68613ca8cee47d331f86389b6",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.arg())
    }
}

/// Our protocol of `version`, parsed from the `.avpr` file as written.
pub fn protocol(version: Version) -> Protocol {
    let file = match version {
        Version::V1 => "interop.avpr",
        Version::V2 => "interop-v2.avpr",
    };
    let path = interop_dir().join("protocols").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    Protocol::parse(&text).unwrap_or_else(|e| panic!("{file} does not parse: {e}"))
}

/// The protocol text Java sends for `version` (`golden/java-protocol-v*.json`).
pub fn java_protocol(version: Version) -> Protocol {
    let path = interop_dir()
        .join("golden")
        .join(format!("java-protocol-{}.json", version.arg()));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    Protocol::parse(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

/// Which version a protocol is, the way the Java harness decides it: v2 iff
/// its `Item` has the field `priority`.
pub fn version_of(p: &Protocol) -> Version {
    let item = p
        .types()
        .iter()
        .find(|t| t.full_name == "org.cinerec.interop.Item")
        .expect("protocol declares org.cinerec.interop.Item");
    let has_priority = item.json["fields"]
        .as_array()
        .expect("Item has fields")
        .iter()
        .any(|f| f["name"] == "priority");
    if has_priority {
        Version::V2
    } else {
        Version::V1
    }
}

// ----------------------------------------------------------------- values

pub const ITEMS: [&str; 4] = ["canonical", "minimal", "extremes", "textual"];
pub const LEGACY_DEFAULT: &str = "legacy-default";
pub const PRIORITY_DEFAULT: i32 = 7;
const KINDS: [&str; 4] = ["ALPHA", "BETA", "GAMMA", "DELTA"];

pub fn record(fields: Vec<(&str, Value)>) -> Value {
    Value::Record(
        fields
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect(),
    )
}

pub fn string(s: &str) -> Value {
    Value::String(s.to_string())
}

fn kind(symbol: &str) -> Value {
    let i = KINDS.iter().position(|k| *k == symbol).expect("a Kind");
    Value::Enum(i as u32, symbol.to_string())
}

/// A `Part` of `version` (`legacy` exists only in v1).
pub fn part(name: &str, weight: i64, legacy: &str, version: Version) -> Value {
    let mut f = vec![("name", string(name)), ("weight", Value::Long(weight))];
    if version == Version::V1 {
        f.push(("legacy", string(legacy)));
    }
    record(f)
}

fn map(entries: &[(&str, i64)]) -> Value {
    Value::Map(
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), Value::Long(*v)))
            .collect(),
    )
}

fn strings(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| string(s)).collect())
}

/// Test item `which` (README "The four test items") as `version` has it.
pub fn item(which: &str, version: Version) -> Value {
    let v = version;
    #[allow(clippy::type_complexity)]
    let (
        id,
        name,
        priority,
        score,
        ratio,
        count,
        flag,
        knd,
        token,
        payload,
        main,
        parts,
        tags,
        attrs,
        note,
        extra,
    ): (
        i64,
        &str,
        i32,
        f64,
        f32,
        i32,
        bool,
        &str,
        Vec<u8>,
        Vec<u8>,
        Value,
        Vec<Value>,
        Value,
        Value,
        Value,
        Value,
    ) = match which {
        "canonical" => (
            1234567890123,
            "h\u{e9}llo w\u{f6}rld \u{2713}",
            3,
            3.25,
            0.5,
            -42,
            true,
            "GAMMA",
            vec![0x00, 0x01, 0x02, 0x03, 0xfc, 0xfd, 0xfe, 0xff],
            vec![0x00, 0xff, 0x10, 0x20, 0x7f, 0x80],
            part("main", 10, "L-main", v),
            vec![
                part("a", 1, "L-a", v),
                part("b", -2, "L-b", v),
                part("c", 300, "L-c", v),
            ],
            strings(&["x", "y", "z"]),
            map(&[("one", 1), ("two", 2), ("big", 1 << 40)]),
            Value::Union(1, Box::new(string("a note"))),
            Value::Union(3, Box::new(part("x", 5, "L-x", v))),
        ),
        "minimal" => (
            0,
            "",
            0,
            0.0,
            0.0,
            0,
            false,
            "ALPHA",
            vec![0; 8],
            vec![],
            part("", 0, "", v),
            vec![],
            strings(&[]),
            map(&[]),
            Value::Union(0, Box::new(Value::Null)),
            Value::Union(0, Box::new(Value::Null)),
        ),
        "extremes" => (
            i64::MIN,
            "\u{fc}n\u{ef}c\u{f6}d\u{e9} \u{2713} \u{1F600}",
            i32::MIN,
            -1.5e300,
            -0.25,
            i32::MAX,
            true,
            "DELTA",
            vec![0xff; 8],
            (0..=255u8).collect(),
            part("m", i64::MAX, "L-m", v),
            (0..200i64)
                .map(|i| part(&format!("p{i}"), i - 100, &format!("L-p{i}"), v))
                .collect(),
            strings(&["", "a b", "\u{fc}"]),
            map(&[("", -1), ("max", i64::MAX)]),
            Value::Union(1, Box::new(string(""))),
            Value::Union(1, Box::new(Value::Long(i64::MIN))),
        ),
        "textual" => (
            7,
            "textual",
            1,
            0.1,
            0.1,
            3,
            false,
            "BETA",
            b"TOKEN-01".to_vec(),
            b"hello".to_vec(),
            part("t", 7, "L-t", v),
            vec![part("only", -7, "L-only", v)],
            strings(&["t"]),
            map(&[("k", -5)]),
            Value::Union(0, Box::new(Value::Null)),
            Value::Union(2, Box::new(string("extra text"))),
        ),
        other => panic!("no test item {other:?}"),
    };
    let mut f = vec![("id", Value::Long(id)), ("name", string(name))];
    if v == Version::V2 {
        f.push(("priority", Value::Int(priority)));
    }
    f.extend([
        ("score", Value::Double(score)),
        ("ratio", Value::Float(ratio)),
        ("count", Value::Int(count)),
        ("flag", Value::Boolean(flag)),
        ("kind", kind(knd)),
        ("token", Value::Fixed(8, token)),
        ("payload", Value::Bytes(payload)),
        ("main", main),
        ("parts", Value::Array(parts)),
        ("tags", tags),
        ("attrs", attrs),
        ("note", note),
        ("extra", extra),
    ]);
    record(f)
}

/// What a `client` gets back from `echo(item(which))` served by a `server`
/// (README "Versions"): fields the server lacks come back as the client's
/// defaults.
pub fn echo_expected(which: &str, client: Version, server: Version) -> Value {
    let mut v = item(which, client);
    match (client, server) {
        (Version::V2, Version::V1) => set(&mut v, "priority", Value::Int(PRIORITY_DEFAULT)),
        (Version::V1, Version::V2) => reset_legacy(&mut v),
        _ => {}
    }
    v
}

fn set(rec: &mut Value, name: &str, value: Value) {
    let Value::Record(fields) = rec else {
        panic!("not a record")
    };
    fields.iter_mut().find(|(n, _)| n == name).expect("field").1 = value;
}

/// Every `Part.legacy` in an item (main, parts, extra) to the default.
fn reset_legacy(v: &mut Value) {
    match v {
        Value::Record(fields) => {
            let is_part = fields.iter().any(|(n, _)| n == "legacy");
            for (n, f) in fields.iter_mut() {
                if is_part && n == "legacy" {
                    *f = string(LEGACY_DEFAULT);
                } else {
                    reset_legacy(f);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(reset_legacy),
        Value::Union(_, b) => reset_legacy(b),
        _ => {}
    }
}

/// The expected `summarize` results (README table, written out, not computed).
pub fn summary(which: &str) -> Value {
    #[allow(clippy::type_complexity)]
    let (id, len, pc, ws, tags, attrs, pl, tok, stc, rd, neg, next, note, extra): (
        i64,
        i32,
        i32,
        i64,
        &str,
        i64,
        i32,
        &str,
        f64,
        f32,
        bool,
        &str,
        &str,
        &str,
    ) = match which {
        "canonical" => (
            1234567890123,
            17,
            3,
            309,
            "x,y,z",
            1099511627779,
            6,
            "00010203fcfdfeff",
            -136.5,
            1.0,
            false,
            "DELTA",
            "a note",
            "Part",
        ),
        "minimal" => (
            0,
            0,
            0,
            0,
            "",
            0,
            0,
            "0000000000000000",
            0.0,
            0.0,
            true,
            "BETA",
            "<none>",
            "null",
        ),
        "extremes" => (
            i64::MIN,
            20,
            200,
            9223372036854775707,
            ",a b,\u{fc}",
            9223372036854775806,
            256,
            "ffffffffffffffff",
            f64::NEG_INFINITY,
            -0.5,
            false,
            "ALPHA",
            "",
            "long",
        ),
        "textual" => (
            7,
            7,
            1,
            0,
            "t",
            -5,
            5,
            "544f4b454e2d3031",
            0.30000000000000004,
            0.2,
            true,
            "GAMMA",
            "<none>",
            "string",
        ),
        other => panic!("no test item {other:?}"),
    };
    record(vec![
        ("id", Value::Long(id)),
        ("nameUtf8Len", Value::Int(len)),
        ("partCount", Value::Int(pc)),
        ("weightSum", Value::Long(ws)),
        ("tagsJoined", string(tags)),
        ("attrSum", Value::Long(attrs)),
        ("payloadLen", Value::Int(pl)),
        ("tokenHex", string(tok)),
        ("scoreTimesCount", Value::Double(stc)),
        ("ratioDoubled", Value::Float(rd)),
        ("flagNegated", Value::Boolean(neg)),
        ("nextKind", kind(next)),
        ("noteOrDefault", string(note)),
        ("extraBranch", string(extra)),
    ])
}

/// `range(start, count)` as a `client` sees it from a `server`.
pub fn range_expected(start: i64, count: i32, client: Version, server: Version) -> Value {
    Value::Array(
        (0..i64::from(count))
            .map(|i| {
                let n = start.wrapping_add(i);
                let legacy = if server == Version::V2 {
                    LEGACY_DEFAULT.to_string()
                } else {
                    format!("legacy-{n}")
                };
                part(&format!("part-{n}"), n.wrapping_mul(10), &legacy, client)
            })
            .collect(),
    )
}

/// The `InteropError` for `fail(code, message)` (and range's code 400).
pub fn interop_error(code: i32, message: &str) -> Value {
    let detail = if code % 2 != 0 {
        Value::Union(1, Box::new(string(&format!("detail for {code}"))))
    } else {
        Value::Union(0, Box::new(Value::Null))
    };
    record(vec![
        ("code", Value::Int(code)),
        ("message", string(message)),
        ("retryable", Value::Boolean(code >= 500)),
        ("detail", detail),
    ])
}

/// Whether encoding `v` is deterministic: apache-avro keeps maps in a
/// `HashMap`, so a map of two or more entries is written in arbitrary order.
pub fn deterministic(v: &Value) -> bool {
    match v {
        Value::Map(m) => m.len() <= 1 && m.values().all(deterministic),
        Value::Record(f) => f.iter().all(|(_, v)| deterministic(v)),
        Value::Array(a) => a.iter().all(deterministic),
        Value::Union(_, b) => deterministic(b),
        _ => true,
    }
}

// ------------------------------------------------------------------- diff

fn show(v: &Value) -> String {
    let mut s = format!("{v:?}");
    if s.len() > 160 {
        let mut cut = 160;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// `None` if equal, else the first difference, by path. Floats compare
/// bit for bit, maps by key.
pub fn diff(path: &str, expected: &Value, actual: &Value) -> Option<String> {
    let differs = || {
        Some(format!(
            "{path}: expected {}, got {}",
            show(expected),
            show(actual)
        ))
    };
    match (expected, actual) {
        (Value::Record(e), Value::Record(a)) => {
            let en: Vec<_> = e.iter().map(|(n, _)| n).collect();
            let an: Vec<_> = a.iter().map(|(n, _)| n).collect();
            if en != an {
                return Some(format!("{path}: expected fields {en:?}, got {an:?}"));
            }
            e.iter()
                .zip(a)
                .find_map(|((n, ev), (_, av))| diff(&format!("{path}.{n}"), ev, av))
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Some(format!(
                    "{path}: expected {} elements, got {}",
                    e.len(),
                    a.len()
                ));
            }
            e.iter()
                .zip(a)
                .enumerate()
                .find_map(|(i, (ev, av))| diff(&format!("{path}[{i}]"), ev, av))
        }
        (Value::Map(e), Value::Map(a)) => {
            let mut ek: Vec<_> = e.keys().collect();
            let mut ak: Vec<_> = a.keys().collect();
            ek.sort();
            ak.sort();
            if ek != ak {
                return Some(format!("{path}: expected keys {ek:?}, got {ak:?}"));
            }
            ek.into_iter()
                .find_map(|k| diff(&format!("{path}{{{k}}}"), &e[k], &a[k]))
        }
        (Value::Union(i, e), Value::Union(j, a)) => {
            if i != j {
                return differs();
            }
            diff(&format!("{path}<{i}>"), e, a)
        }
        (Value::Double(e), Value::Double(a)) if e.to_bits() == a.to_bits() => None,
        (Value::Float(e), Value::Float(a)) if e.to_bits() == a.to_bits() => None,
        (Value::Double(_), _) | (Value::Float(_), _) => differs(),
        (e, a) if e == a => None,
        _ => differs(),
    }
}

/// Panics with the difference, if any.
#[track_caller]
pub fn assert_same(what: &str, expected: &Value, actual: &Value) {
    if let Some(d) = diff(what, expected, actual) {
        panic!("{d}");
    }
}

// ------------------------------------------------------- the Rust server

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value, String> {
    match v {
        Value::Record(fields) => fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| format!("no field {name}")),
        other => Err(format!(
            "expected a record with {name}, got {}",
            show(other)
        )),
    }
}

fn as_long(v: &Value) -> Result<i64, String> {
    match v {
        Value::Long(l) => Ok(*l),
        other => Err(format!("expected long, got {}", show(other))),
    }
}

fn as_int(v: &Value) -> Result<i32, String> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(format!("expected int, got {}", show(other))),
    }
}

fn as_str(v: &Value) -> Result<&str, String> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(format!("expected string, got {}", show(other))),
    }
}

fn as_array(v: &Value) -> Result<&[Value], String> {
    match v {
        Value::Array(a) => Ok(a),
        other => Err(format!("expected array, got {}", show(other))),
    }
}

fn union_value(v: &Value) -> &Value {
    match v {
        Value::Union(_, b) => b,
        other => other,
    }
}

/// `summarize(item)` as the README defines it, from the v1 fields only.
fn summarize(item: &Value) -> Result<Value, String> {
    let name = as_str(field(item, "name")?)?;
    let parts = as_array(field(item, "parts")?)?;
    let mut weight_sum = as_long(field(field(item, "main")?, "weight")?)?;
    for p in parts {
        weight_sum = weight_sum.wrapping_add(as_long(field(p, "weight")?)?);
    }
    let tags = as_array(field(item, "tags")?)?
        .iter()
        .map(as_str)
        .collect::<Result<Vec<_>, _>>()?
        .join(",");
    let attr_sum = match field(item, "attrs")? {
        Value::Map(m) => m
            .values()
            .map(as_long)
            .try_fold(0i64, |acc, v| v.map(|v| acc.wrapping_add(v)))?,
        other => return Err(format!("attrs: {}", show(other))),
    };
    let payload_len = match field(item, "payload")? {
        Value::Bytes(b) => b.len(),
        other => return Err(format!("payload: {}", show(other))),
    };
    let token = match field(item, "token")? {
        Value::Fixed(_, b) => hex(b),
        other => return Err(format!("token: {}", show(other))),
    };
    let score = match field(item, "score")? {
        Value::Double(d) => *d,
        other => return Err(format!("score: {}", show(other))),
    };
    let ratio = match field(item, "ratio")? {
        Value::Float(f) => *f,
        other => return Err(format!("ratio: {}", show(other))),
    };
    let count = as_int(field(item, "count")?)?;
    let flag = match field(item, "flag")? {
        Value::Boolean(b) => *b,
        other => return Err(format!("flag: {}", show(other))),
    };
    let next = match field(item, "kind")? {
        Value::Enum(i, _) => (*i as usize + 1) % KINDS.len(),
        other => return Err(format!("kind: {}", show(other))),
    };
    let note = match union_value(field(item, "note")?) {
        Value::Null => "<none>".to_string(),
        Value::String(s) => s.clone(),
        other => return Err(format!("note: {}", show(other))),
    };
    let extra = match union_value(field(item, "extra")?) {
        Value::Null => "null",
        Value::Long(_) => "long",
        Value::String(_) => "string",
        Value::Record(_) => "Part",
        other => return Err(format!("extra: {}", show(other))),
    };
    Ok(record(vec![
        ("id", Value::Long(as_long(field(item, "id")?)?)),
        ("nameUtf8Len", Value::Int(name.len() as i32)),
        ("partCount", Value::Int(parts.len() as i32)),
        ("weightSum", Value::Long(weight_sum)),
        ("tagsJoined", Value::String(tags)),
        ("attrSum", Value::Long(attr_sum)),
        ("payloadLen", Value::Int(payload_len as i32)),
        ("tokenHex", Value::String(token)),
        ("scoreTimesCount", Value::Double(score * f64::from(count))),
        ("ratioDoubled", Value::Float(ratio * 2.0)),
        ("flagNegated", Value::Boolean(!flag)),
        (
            "nextKind",
            Value::Enum(next as u32, KINDS[next].to_string()),
        ),
        ("noteOrDefault", Value::String(note)),
        ("extraBranch", string(extra)),
    ]))
}

/// Events recorded by `notify`, by channel.
pub type Events = Arc<Mutex<HashMap<String, Vec<String>>>>;

fn respond(version: Version, events: &Events, req: &Request) -> Result<Response, String> {
    let p = &req.params;
    Ok(match req.message.name() {
        "echo" => Response::ok(field(p, "item")?.clone()),
        "summarize" => Response::ok(summarize(field(p, "item")?)?),
        "add" => Response::ok(Value::Long(
            as_long(field(p, "a")?)?.wrapping_add(as_long(field(p, "b")?)?),
        )),
        "range" => {
            let start = as_long(field(p, "start")?)?;
            let count = as_int(field(p, "count")?)?;
            if !(0..=10000).contains(&count) {
                Response {
                    metadata: Default::default(),
                    result: Err(ResponseError::Declared {
                        index: 0,
                        value: declared(400, &format!("count out of range: {count}"), false),
                    }),
                }
            } else {
                Response::ok(Value::Array(
                    (0..i64::from(count))
                        .map(|i| {
                            let n = start.wrapping_add(i);
                            part(
                                &format!("part-{n}"),
                                n.wrapping_mul(10),
                                &format!("legacy-{n}"),
                                version,
                            )
                        })
                        .collect(),
                ))
            }
        }
        "fail" => {
            let code = as_int(field(p, "code")?)?;
            let message = as_str(field(p, "message")?)?;
            match code {
                0 => Response::ok(Value::String(format!("ok: {message}"))),
                c if c > 0 => Response {
                    metadata: Default::default(),
                    result: Err(ResponseError::Declared {
                        index: 0,
                        value: declared(c, message, c >= 500),
                    }),
                },
                _ => Response::system_error(format!("undeclared: {message}")),
            }
        }
        "notify" => {
            let channel = as_str(field(p, "channel")?)?.to_string();
            let event = as_str(field(p, "event")?)?.to_string();
            events
                .lock()
                .unwrap()
                .entry(channel)
                .or_default()
                .push(event);
            Response::ok(Value::Null)
        }
        "drain" => {
            let channel = as_str(field(p, "channel")?)?;
            let got = events.lock().unwrap().remove(channel).unwrap_or_default();
            Response::ok(Value::Array(got.into_iter().map(Value::String).collect()))
        }
        "nop" => Response::ok(Value::Null),
        other => return Err(format!("unhandled message {other}")),
    })
}

fn declared(code: i32, message: &str, retryable: bool) -> Value {
    let detail = if code % 2 != 0 {
        Value::Union(1, Box::new(Value::String(format!("detail for {code}"))))
    } else {
        Value::Union(0, Box::new(Value::Null))
    };
    record(vec![
        ("code", Value::Int(code)),
        ("message", string(message)),
        ("retryable", Value::Boolean(retryable)),
        ("detail", detail),
    ])
}

/// The Interop protocol's deterministic server behaviour (README "The
/// protocol"), for a server speaking `version`. Unexpected parameter shapes
/// become system errors that name the problem.
pub fn interop_handler(
    version: Version,
    events: Events,
) -> impl tower::Service<Request, Response = Response, Error = Infallible, Future = impl Send>
+ Clone
+ Send
+ Sync {
    tower::service_fn(move |req: Request| {
        let response = respond(version, &events, &req).unwrap_or_else(|e| {
            Response::system_error(format!("rust interop server: {}: {e}", req.message.name()))
        });
        async move { Ok::<_, Infallible>(response) }
    })
}

// ------------------------------------------------------- the Java harness

/// The Java harness classpath from `run-java.sh` (built on first use). Panics
/// with a clear message when java or mvn is missing: these tests must never
/// pass by skipping.
pub fn classpath() -> &'static str {
    static CP: OnceLock<Result<String, String>> = OnceLock::new();
    let cp = CP.get_or_init(|| {
        let script = interop_dir().join("run-java.sh");
        let out = Command::new(&script)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => {}
            Some(127) => {
                return Err(format!(
                    "the Java interop tests need `java` (17+) and `mvn` on PATH, and one is \
                     missing (run-java.sh exited 127). Install a JDK and Maven (CI does); these \
                     tests fail rather than skip.\n{stderr}"
                ));
            }
            _ => {
                return Err(format!(
                    "{} failed ({}):\n{stderr}",
                    script.display(),
                    out.status
                ));
            }
        }
        let cp = String::from_utf8(out.stdout)
            .map_err(|e| format!("classpath is not UTF-8: {e}"))?
            .trim()
            .to_string();
        if cp.is_empty() || cp.contains('\n') {
            return Err(format!(
                "run-java.sh printed no single-line classpath: {cp:?}"
            ));
        }
        Ok(cp)
    });
    match cp {
        Ok(cp) => cp,
        Err(e) => panic!("{e}"),
    }
}

/// A `java` command with the harness classpath and small-JVM options.
fn java(main: &str) -> Command {
    let mut c = Command::new("java");
    c.args([
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-cp",
        classpath(),
        main,
    ]);
    c
}

/// Where Java logs go (`target/tmp/java-interop/`).
pub fn log_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("java-interop");
    std::fs::create_dir_all(&d).expect("create log dir");
    d
}

/// The last lines of a log file, for failure messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A child process that is killed (and reaped) when dropped, whatever the
/// test did. Its stdin is a pipe; dropping it first lets the harness exit
/// on its own (EOF), the kill makes sure.
#[derive(Debug)]
pub struct ProcessGuard {
    child: Child,
}

impl ProcessGuard {
    pub fn new(child: Child) -> Self {
        ProcessGuard { child }
    }

    /// Waits for the process to exit on its own.
    pub fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait()
    }
}

/// `(passed, failed)` from a harness's last `<n> passed, <m> failed` line;
/// `(0, usize::MAX)` when there is none.
pub fn parse_tally(stdout: &str) -> (usize, usize) {
    stdout
        .lines()
        .rev()
        .find_map(|l| {
            let (p, f) = l.split_once(" passed, ")?;
            Some((p.parse().ok()?, f.strip_suffix(" failed")?.parse().ok()?))
        })
        .unwrap_or((0, usize::MAX))
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `InteropServer` on 127.0.0.1.
#[derive(Debug)]
pub struct JavaServer {
    pub version: Version,
    pub netty_port: u16,
    pub http_port: u16,
    pub log: PathBuf,
    _stdout: ChildStdout,
    _process: ProcessGuard,
}

impl JavaServer {
    /// Spawns `InteropServer --proto <version>` and waits for its READY line.
    pub fn start(version: Version) -> JavaServer {
        Self::spawn(version.arg(), version)
    }

    /// Spawns `InteropServer --proto simple` (Avro's `simple.avpr`, served
    /// by `SimpleResponder`); `version` is meaningless for it.
    pub fn start_simple() -> JavaServer {
        Self::spawn("simple", Version::V1)
    }

    fn spawn(proto: &str, version: Version) -> JavaServer {
        let log = log_dir().join(format!(
            "server-{proto}-{}-{}.log",
            std::process::id(),
            next_id()
        ));
        let mut child = java("org.cinerec.interop.InteropServer")
            .args(["--proto", proto, "--netty-port", "0", "--http-port", "0"])
            .args(["--max-seconds", "600", "--log-file"])
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot spawn java (a JDK 17+ must be on PATH; CI installs one): {e}")
            });
        let stdout = child.stdout.take().expect("piped stdout");
        let process = ProcessGuard { child };
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .expect("read InteropServer stdout");
        let ports = line
            .trim()
            .strip_prefix("READY netty=")
            .and_then(|r| r.split_once(" http="))
            .and_then(|(n, h)| Some((n.parse::<u16>().ok()?, h.parse::<u16>().ok()?)));
        let Some((netty_port, http_port)) = ports else {
            panic!(
                "InteropServer {proto} did not print `READY netty=<p> http=<q>` (read {n} \
                 bytes: {line:?}); log {}:\n{}",
                log.display(),
                log_tail(&log, 40)
            );
        };
        JavaServer {
            version,
            netty_port,
            http_port,
            log,
            _stdout: reader.into_inner(),
            _process: process,
        }
    }
}

fn next_id() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The outcome of one `InteropClient` run.
#[derive(Debug)]
pub struct JavaClientRun {
    pub label: String,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub passed: usize,
    pub failed: usize,
}

/// Runs `SimpleClient` (Avro's `simple.avpr`, 6 checks) against
/// 127.0.0.1:`port` over `transport` (`netty` or `http`).
pub fn run_java_simple_client(transport: &str, port: u16) -> JavaClientRun {
    let label = format!("Java simple client -> Rust simple server over {transport}");
    let child = java("org.cinerec.interop.SimpleClient")
        .args(["--transport", transport, "--port", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot spawn java (a JDK 17+ must be on PATH; CI installs one): {e}")
        });
    collect_run(label, child)
}

/// Runs `InteropClient` against 127.0.0.1:`port` and waits for it. The
/// client bounds itself (`--max-seconds`, per-call deadlines); the guard
/// kills it if this thread unwinds.
pub fn run_java_client(
    transport: &str,
    port: u16,
    client: Version,
    server: Version,
) -> JavaClientRun {
    let label = format!("Java client {client} -> Rust server {server} over {transport}");
    let child = java("org.cinerec.interop.InteropClient")
        .args(["--transport", transport, "--port", &port.to_string()])
        .args(["--host", "127.0.0.1", "--proto", client.arg()])
        .args(["--server-proto", server.arg(), "--max-seconds", "120"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot spawn java (a JDK 17+ must be on PATH; CI installs one): {e}")
        });
    collect_run(label, child)
}

/// Waits for a harness client, collecting its output and tally.
fn collect_run(label: String, mut child: Child) -> JavaClientRun {
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let mut guard = ProcessGuard { child };
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut stdout = String::new();
    let _ = out.read_to_string(&mut stdout);
    let status = guard.child.wait().expect("wait for the Java client");
    let stderr = err_reader.join().unwrap_or_default();
    let (passed, failed) = parse_tally(&stdout);
    JavaClientRun {
        label,
        success: status.success(),
        stdout,
        stderr,
        passed,
        failed,
    }
}
