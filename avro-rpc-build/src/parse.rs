//! Avro JSON (a protocol's `types` and `messages`) to declarations: the named
//! types to emit, each field with its Rust type, and the messages. Everything
//! the generator cannot express is refused here, with the spot named.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value as Json};

use crate::names::{pascal_case, snake_case};
use crate::{Error, Result};

pub(crate) fn unsupported(m: impl Into<String>) -> Error {
    Error::Unsupported(m.into())
}

const PRIMITIVES: &[&str] = &[
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// An Avro type as the `.avsc` path converts it (the `.avpr` path only needs
/// the Rust type string): logical types kept, unions of null as `Optional`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ty {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    /// `string` with `logicalType: uuid`.
    Uuid,
    /// `long` with `logicalType: timestamp-micros`.
    TimestampMicros,
    /// `long` with `logicalType: timestamp-millis`.
    TimestampMillis,
    /// `int` with `logicalType: date`.
    Date,
    /// A declared record, enum or fixed type, by Rust name.
    Named(String),
    Array(Box<Ty>),
    Map(Box<Ty>),
    /// `[null, T]` or `[T, null]`, with the branch index of null.
    Optional(u32, Box<Ty>),
}

/// One resolved type: its Rust spelling for the serde path, the serde `with`
/// module it needs, and its structure.
pub(crate) struct Typed {
    pub rust: String,
    pub with: Option<&'static str>,
    pub ty: Ty,
}

impl Typed {
    fn new(rust: String, with: Option<&'static str>, ty: Ty) -> Typed {
        Typed { rust, with, ty }
    }
}

/// A named type to emit.
pub(crate) enum Decl {
    Record {
        rust: String,
        doc: Option<String>,
        fields: Vec<Field>,
        is_error: bool,
    },
    Enum {
        rust: String,
        doc: Option<String>,
        symbols: Vec<String>,
        /// The symbol a reader uses for one it does not know.
        default: Option<String>,
    },
    Fixed {
        rust: String,
        size: usize,
    },
}

pub(crate) struct Field {
    /// The Avro name.
    pub avro: String,
    /// The Rust name (before keyword escaping).
    pub rust: String,
    /// The Rust type, as written in generated code.
    pub ty: String,
    /// A serde `with` module the field needs (bytes).
    pub with: Option<&'static str>,
    /// The Avro type, for the `.avsc` path's `Value` conversions.
    pub schema: Ty,
    pub doc: Option<String>,
}

pub(crate) struct Msg {
    pub avro: String,
    pub rust_fn: String,
    pub rust_ty: String,
    pub doc: Option<String>,
    pub params: Vec<Field>,
    pub response: String,
    /// Rust names of the declared errors (`string` excluded).
    pub errors: Vec<String>,
}

/// The declarations of one protocol, in the order they are to be emitted.
#[derive(Default)]
pub(crate) struct Parser {
    /// Full Avro name → Rust type name.
    names: BTreeMap<String, String>,
    /// Full Avro name → Rust path of a type defined elsewhere, not generated.
    externs: BTreeMap<String, String>,
    /// Every Rust type name taken, to refuse collisions.
    pub rust_names: HashSet<String>,
    pub decls: Vec<Decl>,
}

fn doc_of(obj: &Map<String, Json>) -> Option<String> {
    obj.get("doc").and_then(Json::as_str).map(str::to_string)
}

fn full_name(name: &str, explicit: Option<&str>, enclosing: Option<&str>) -> String {
    if name.contains('.') {
        return name.to_string();
    }
    match explicit.or(enclosing).filter(|s| !s.is_empty()) {
        Some(ns) => format!("{ns}.{name}"),
        None => name.to_string(),
    }
}

impl Parser {
    /// A parser that uses the given Rust paths instead of generating the
    /// named types (full Avro name → path).
    pub fn with_externs(externs: &[(String, String)]) -> Parser {
        Parser {
            externs: externs.iter().cloned().collect(),
            ..Parser::default()
        }
    }

    fn lookup(&self, name: &str, ns: Option<&str>) -> Result<(String, String)> {
        let full = full_name(name, None, ns);
        if let Some(r) = self.names.get(&full) {
            return Ok((full, r.clone()));
        }
        self.names
            .get(name)
            .map(|r| (name.to_string(), r.clone()))
            .ok_or_else(|| unsupported(format!("undefined type name {name:?}")))
    }

    /// Registers named types declared in `t` and returns its Rust type.
    pub fn declare(&mut self, t: &Json, ns: Option<&str>) -> Result<Typed> {
        self.rust_type(t, ns, true)
    }

    fn rust_type(&mut self, t: &Json, ns: Option<&str>, top: bool) -> Result<Typed> {
        let plain = |rust: &str, ty: Ty| Ok(Typed::new(rust.into(), None, ty));
        match t {
            Json::String(s) => match s.as_str() {
                "null" => plain("()", Ty::Null),
                "boolean" => plain("bool", Ty::Boolean),
                "int" => plain("i32", Ty::Int),
                "long" => plain("i64", Ty::Long),
                "float" => plain("f32", Ty::Float),
                "double" => plain("f64", Ty::Double),
                "string" => plain("::std::string::String", Ty::String),
                "bytes" if top => Ok(Typed::new(
                    "::std::vec::Vec<u8>".into(),
                    Some("::avro_rpc::export::apache_avro::serde_avro_bytes"),
                    Ty::Bytes,
                )),
                "bytes" => Err(unsupported(
                    "bytes nested in an array, map or union other than [null, bytes]",
                )),
                name => self
                    .lookup(name, ns)
                    .map(|(_, r)| Typed::new(r.clone(), None, Ty::Named(r))),
            },
            Json::Array(branches) => {
                let non_null: Vec<&Json> = branches
                    .iter()
                    .filter(|b| b.as_str() != Some("null"))
                    .collect();
                if branches.len() == 2 && non_null.len() == 1 {
                    let null_index = u32::from(branches[0].as_str() != Some("null"));
                    if non_null[0].as_str() == Some("bytes") && top {
                        return Ok(Typed::new(
                            "::std::option::Option<::std::vec::Vec<u8>>".into(),
                            Some("::avro_rpc::export::apache_avro::serde_avro_bytes_opt"),
                            Ty::Optional(null_index, Box::new(Ty::Bytes)),
                        ));
                    }
                    let inner = self.rust_type(non_null[0], ns, false)?;
                    Ok(Typed::new(
                        format!("::std::option::Option<{}>", inner.rust),
                        None,
                        Ty::Optional(null_index, Box::new(inner.ty)),
                    ))
                } else {
                    Err(unsupported(format!(
                        "union {t}: only [null, T] unions are supported"
                    )))
                }
            }
            Json::Object(obj) => {
                let ty = obj
                    .get("type")
                    .ok_or_else(|| unsupported("type object without \"type\""))?;
                match ty.as_str() {
                    Some("array") => {
                        let items = obj
                            .get("items")
                            .ok_or_else(|| unsupported("array without items"))?;
                        let inner = self.rust_type(items, ns, false)?;
                        Ok(Typed::new(
                            format!("::std::vec::Vec<{}>", inner.rust),
                            None,
                            Ty::Array(Box::new(inner.ty)),
                        ))
                    }
                    Some("map") => {
                        let values = obj
                            .get("values")
                            .ok_or_else(|| unsupported("map without values"))?;
                        let inner = self.rust_type(values, ns, false)?;
                        Ok(Typed::new(
                            format!(
                                "::std::collections::HashMap<::std::string::String, {}>",
                                inner.rust
                            ),
                            None,
                            Ty::Map(Box::new(inner.ty)),
                        ))
                    }
                    Some("record" | "error" | "enum" | "fixed") => self
                        .define(obj, ns)
                        .map(|r| Typed::new(r.clone(), None, Ty::Named(r))),
                    // A primitive with attributes (e.g. a logical type): its
                    // base type, the logical type noted for the .avsc path.
                    Some(p) if PRIMITIVES.contains(&p) => {
                        let mut base = self.rust_type(ty, ns, top)?;
                        let logical = obj.get("logicalType").and_then(Json::as_str);
                        base.ty = match (logical, base.ty) {
                            (Some("uuid"), Ty::String) => Ty::Uuid,
                            (Some("timestamp-micros"), Ty::Long) => Ty::TimestampMicros,
                            (Some("timestamp-millis"), Ty::Long) => Ty::TimestampMillis,
                            (Some("date"), Ty::Int) => Ty::Date,
                            (_, other) => other,
                        };
                        Ok(base)
                    }
                    _ => self.rust_type(ty, ns, top),
                }
            }
            other => Err(unsupported(format!("invalid type {other}"))),
        }
    }

    fn define(&mut self, obj: &Map<String, Json>, ns: Option<&str>) -> Result<String> {
        let kind = obj.get("type").and_then(Json::as_str).unwrap_or_default();
        let name = obj
            .get("name")
            .and_then(Json::as_str)
            .ok_or_else(|| unsupported(format!("{kind} without a name")))?;
        let full = full_name(name, obj.get("namespace").and_then(Json::as_str), ns);
        if let Some(path) = self.externs.get(&full) {
            // Defined elsewhere: later references resolve to the path.
            self.names.insert(full, path.clone());
            return Ok(path.clone());
        }
        let simple = full.rsplit('.').next().unwrap_or(&full);
        let rust = pascal_case(simple);
        if !self.rust_names.insert(rust.clone()) {
            return Err(unsupported(format!(
                "two types map to the Rust name {rust} (types from different namespaces must differ in name)"
            )));
        }
        self.names.insert(full.clone(), rust.clone());
        let inner_ns = full.rsplit_once('.').map(|(n, _)| n.to_string());
        let decl = match kind {
            "record" | "error" => {
                let fields_json = obj
                    .get("fields")
                    .and_then(Json::as_array)
                    .ok_or_else(|| unsupported(format!("{full} without fields")))?;
                let mut fields = Vec::new();
                for f in fields_json {
                    let f = f
                        .as_object()
                        .ok_or_else(|| unsupported(format!("bad field in {full}")))?;
                    let fname = f
                        .get("name")
                        .and_then(Json::as_str)
                        .ok_or_else(|| unsupported(format!("field without a name in {full}")))?;
                    let fty = f.get("type").ok_or_else(|| {
                        unsupported(format!("field {fname} without a type in {full}"))
                    })?;
                    let typed = self
                        .rust_type(fty, inner_ns.as_deref(), true)
                        .map_err(|e| unsupported(format!("{full}.{fname}: {e}")))?;
                    fields.push(Field {
                        avro: fname.into(),
                        rust: snake_case(fname),
                        ty: typed.rust,
                        with: typed.with,
                        schema: typed.ty,
                        doc: doc_of(f),
                    });
                }
                Decl::Record {
                    rust: rust.clone(),
                    doc: doc_of(obj),
                    fields,
                    is_error: kind == "error",
                }
            }
            "enum" => {
                let symbols = obj
                    .get("symbols")
                    .and_then(Json::as_array)
                    .ok_or_else(|| unsupported(format!("{full} without symbols")))?
                    .iter()
                    .map(|s| s.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| unsupported(format!("{full}: symbols must be strings")))?;
                let default = obj
                    .get("default")
                    .and_then(Json::as_str)
                    .map(str::to_string);
                if let Some(d) = &default
                    && !symbols.contains(d)
                {
                    return Err(unsupported(format!(
                        "{full}: default {d:?} is not one of its symbols"
                    )));
                }
                Decl::Enum {
                    rust: rust.clone(),
                    doc: doc_of(obj),
                    symbols,
                    default,
                }
            }
            _ => Decl::Fixed {
                rust: rust.clone(),
                size: obj
                    .get("size")
                    .and_then(Json::as_u64)
                    .ok_or_else(|| unsupported(format!("{full} without size")))?
                    as usize,
            },
        };
        self.decls.push(decl);
        Ok(rust)
    }

    pub fn message(&mut self, name: &str, m: &Json, ns: Option<&str>) -> Result<Msg> {
        let obj = m
            .as_object()
            .ok_or_else(|| unsupported(format!("message {name} must be an object")))?;
        let ctx = |e: Error| unsupported(format!("message {name}: {e}"));
        let mut params = Vec::new();
        for p in obj
            .get("request")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let p = p
                .as_object()
                .ok_or_else(|| unsupported(format!("message {name}: bad parameter")))?;
            let pname = p
                .get("name")
                .and_then(Json::as_str)
                .ok_or_else(|| unsupported(format!("message {name}: parameter without a name")))?;
            let typed = self
                .rust_type(p.get("type").unwrap_or(&Json::Null), ns, true)
                .map_err(ctx)?;
            params.push(Field {
                avro: pname.into(),
                rust: snake_case(pname),
                ty: typed.rust,
                with: typed.with,
                schema: typed.ty,
                doc: None,
            });
        }
        let response = obj
            .get("response")
            .ok_or_else(|| unsupported(format!("message {name}: missing response")))?;
        let Typed {
            rust: response,
            with,
            ..
        } = self.rust_type(response, ns, true).map_err(ctx)?;
        if with.is_some() {
            return Err(unsupported(format!(
                "message {name}: a bytes response is not supported yet; wrap it in a record"
            )));
        }
        let mut errors = Vec::new();
        for e in obj
            .get("errors")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let ename = e
                .as_str()
                .ok_or_else(|| unsupported(format!("message {name}: errors must be names")))?;
            if ename == "string" {
                continue;
            }
            errors.push(self.lookup(ename, ns).map_err(ctx)?.1);
        }
        Ok(Msg {
            avro: name.into(),
            rust_fn: snake_case(name),
            rust_ty: pascal_case(name),
            doc: doc_of(obj),
            params,
            response,
            errors,
        })
    }
}
