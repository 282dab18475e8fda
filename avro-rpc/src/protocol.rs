//! Avro protocol declarations (`.avpr`): parsing, validation and the MD5 hash
//! the handshake uses.
//!
//! Every message gets three self-contained schemas (request record, response,
//! error union) with named types inlined, so each can be decoded and resolved
//! on its own without a shared name registry.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use md5::{Digest, Md5};
use serde_json::{Map, Value as Json};

use crate::codec::DatumSchema;
use crate::error::{Error, Result};

/// MD5 of a protocol's JSON text, the protocol's identity in the handshake.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Md5Hash(pub [u8; 16]);

impl Md5Hash {
    /// Hash of `text` exactly as given (the spec hashes the text a peer sends,
    /// so two implementations with differently formatted JSON differ).
    pub fn of(text: &str) -> Self {
        Md5Hash(Md5::digest(text.as_bytes()).into())
    }
}

impl fmt::Debug for Md5Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Namespace of the synthetic request records; never on the wire, but both
/// peers' request schemas must carry the same name for resolution.
const REQUEST_NAMESPACE: &str = "org.apache.avro.ipc.request";

/// Message property that marks a message safe to retry (see the crate README).
pub const IDEMPOTENT_PROPERTY: &str = "idempotent";

const PRIMITIVES: &[&str] = &[
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// A parsed and validated protocol.
#[derive(Clone)]
pub struct Protocol {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    namespace: Option<String>,
    text: Arc<str>,
    hash: Md5Hash,
    messages: BTreeMap<String, Arc<Message>>,
    types: Vec<NamedType>,
}

impl fmt::Debug for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Protocol")
            .field("name", &self.inner.name)
            .field("namespace", &self.inner.namespace)
            .field("hash", &self.inner.hash)
            .field("messages", &self.inner.messages.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A named type declared by the protocol (record, error, enum or fixed).
#[derive(Debug, Clone)]
pub struct NamedType {
    /// Fully qualified name.
    pub full_name: String,
    /// `record`, `error`, `enum` or `fixed`.
    pub kind: String,
    /// The declaration with every name fully qualified.
    pub json: Json,
}

/// One message of a protocol.
#[derive(Debug)]
pub struct Message {
    name: String,
    one_way: bool,
    params: Vec<String>,
    request: DatumSchema,
    response: DatumSchema,
    errors: DatumSchema,
    error_names: Vec<String>,
    error_schemas: Vec<DatumSchema>,
    properties: Map<String, Json>,
}

impl Message {
    /// The message name, as sent on the wire.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Whether the message expects no response (`"one-way": true`).
    pub fn is_one_way(&self) -> bool {
        self.one_way
    }
    /// Parameter names, in declaration order.
    pub fn params(&self) -> &[String] {
        &self.params
    }
    /// The request parameters as one record schema.
    pub fn request(&self) -> &DatumSchema {
        &self.request
    }
    /// The response schema.
    pub fn response(&self) -> &DatumSchema {
        &self.response
    }
    /// The error union `["string", declared errors...]`.
    pub fn errors(&self) -> &DatumSchema {
        &self.errors
    }
    /// Fully qualified names of the declared errors, in union order (after `string`).
    pub fn error_names(&self) -> &[String] {
        &self.error_names
    }
    /// The standalone schema of declared error `index` (0-based, as in
    /// [`error_names`](Self::error_names)), for converting one error value.
    pub fn error_schema(&self, index: usize) -> Option<&DatumSchema> {
        self.error_schemas.get(index)
    }
    /// Properties of the message declaration that the spec does not define
    /// (e.g. `"idempotent": true`).
    pub fn properties(&self) -> &Map<String, Json> {
        &self.properties
    }
    /// Whether the message is marked `"idempotent": true`, which makes the
    /// retry layer willing to resend it.
    pub fn is_idempotent(&self) -> bool {
        self.properties.get(IDEMPOTENT_PROPERTY) == Some(&Json::Bool(true))
    }
}

impl Protocol {
    /// Parses and validates `.avpr` text. The text is kept verbatim: its MD5
    /// is what we announce in handshakes and what we send as our protocol.
    pub fn parse(text: &str) -> Result<Self> {
        let json: Json = serde_json::from_str(text)
            .map_err(|e| Error::with_source(crate::Kind::Protocol, "protocol is not JSON", e))?;
        Self::from_parts(text.into(), &json)
    }

    fn from_parts(text: Arc<str>, json: &Json) -> Result<Self> {
        let obj = json
            .as_object()
            .ok_or_else(|| Error::protocol("protocol must be a JSON object"))?;
        let name = obj
            .get("protocol")
            .and_then(Json::as_str)
            .ok_or_else(|| Error::protocol("missing \"protocol\" name"))?;
        let (namespace, name) = match name.rsplit_once('.') {
            Some((ns, n)) => (Some(ns.to_string()), n.to_string()),
            None => (
                obj.get("namespace")
                    .and_then(Json::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
                name.to_string(),
            ),
        };
        check_name(&name)?;

        let mut registry = Registry::default();
        if let Some(types) = obj.get("types") {
            let types = types
                .as_array()
                .ok_or_else(|| Error::protocol("\"types\" must be an array"))?;
            for t in types {
                registry.declare(t, namespace.as_deref())?;
            }
        }

        let mut messages = BTreeMap::new();
        if let Some(msgs) = obj.get("messages") {
            let msgs = msgs
                .as_object()
                .ok_or_else(|| Error::protocol("\"messages\" must be an object"))?;
            for (mname, mjson) in msgs {
                let m = registry.message(mname, mjson, namespace.as_deref())?;
                messages.insert(mname.clone(), Arc::new(m));
            }
        }

        let hash = Md5Hash::of(&text);
        Ok(Protocol {
            inner: Arc::new(Inner {
                name,
                namespace,
                text,
                hash,
                messages,
                types: registry.order,
            }),
        })
    }

    /// The protocol name without namespace.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
    /// The namespace, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.inner.namespace.as_deref()
    }
    /// The protocol text exactly as parsed (what we send in a handshake).
    pub fn text(&self) -> &Arc<str> {
        &self.inner.text
    }
    /// MD5 of [`text`](Self::text).
    pub fn hash(&self) -> Md5Hash {
        self.inner.hash
    }
    /// A message by name.
    pub fn message(&self, name: &str) -> Option<&Arc<Message>> {
        self.inner.messages.get(name)
    }
    /// All messages, by name.
    pub fn messages(&self) -> impl Iterator<Item = &Arc<Message>> {
        self.inner.messages.values()
    }
    /// Named types in declaration order (nested declarations included).
    pub fn types(&self) -> &[NamedType] {
        &self.inner.types
    }
}

fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::protocol(format!("invalid name {name:?}")))
    }
}

fn full_name(name: &str, explicit_ns: Option<&str>, enclosing: Option<&str>) -> String {
    if name.contains('.') {
        return name.to_string();
    }
    match explicit_ns.or(enclosing).filter(|s| !s.is_empty()) {
        Some(ns) => format!("{ns}.{name}"),
        None => name.to_string(),
    }
}

fn namespace_of(full: &str) -> Option<&str> {
    full.rsplit_once('.').map(|(ns, _)| ns)
}

/// Named types seen so far, each stored with every reference fully
/// qualified, so inlining never depends on where a type is used.
#[derive(Default)]
struct Registry {
    by_name: HashMap<String, Json>,
    order: Vec<NamedType>,
}

impl Registry {
    /// Registers the named types declared in `t` (recursively) and returns
    /// `t` with names qualified and nested declarations replaced by references.
    fn declare(&mut self, t: &Json, enclosing: Option<&str>) -> Result<Json> {
        match t {
            Json::String(s) => {
                if PRIMITIVES.contains(&s.as_str()) {
                    return Ok(t.clone());
                }
                let full = full_name(s, None, enclosing);
                if self.by_name.contains_key(&full) {
                    Ok(Json::String(full))
                } else if self.by_name.contains_key(s.as_str()) {
                    Ok(Json::String(s.clone()))
                } else {
                    Err(Error::protocol(format!("undefined type name {s:?}")))
                }
            }
            Json::Array(branches) => branches
                .iter()
                .map(|b| self.declare(b, enclosing))
                .collect::<Result<Vec<_>>>()
                .map(Json::Array),
            Json::Object(obj) => {
                let ty = obj
                    .get("type")
                    .ok_or_else(|| Error::protocol("type object without \"type\""))?;
                let ty_str = match ty {
                    Json::String(s) => s.as_str(),
                    other => return self.declare(other, enclosing),
                };
                match ty_str {
                    "record" | "error" | "enum" | "fixed" => {}
                    "array" => {
                        let items = obj
                            .get("items")
                            .ok_or_else(|| Error::protocol("array without \"items\""))?;
                        let mut out = obj.clone();
                        out.insert("items".into(), self.declare(items, enclosing)?);
                        return Ok(Json::Object(out));
                    }
                    "map" => {
                        let values = obj
                            .get("values")
                            .ok_or_else(|| Error::protocol("map without \"values\""))?;
                        let mut out = obj.clone();
                        out.insert("values".into(), self.declare(values, enclosing)?);
                        return Ok(Json::Object(out));
                    }
                    // A primitive written as an object, possibly with a logical type.
                    _ => return Ok(t.clone()),
                }
                let name = obj
                    .get("name")
                    .and_then(Json::as_str)
                    .ok_or_else(|| Error::protocol(format!("{ty_str} without a name")))?;
                let full = full_name(name, obj.get("namespace").and_then(Json::as_str), enclosing);
                for part in full.split('.') {
                    check_name(part)?;
                }
                if self.by_name.contains_key(&full) {
                    return Err(Error::protocol(format!("type {full} defined twice")));
                }
                let mut out = obj.clone();
                out.remove("namespace");
                out.insert("name".into(), Json::String(full.clone()));
                if ty_str == "record" || ty_str == "error" {
                    // Declare the name first so recursive references resolve.
                    self.by_name.insert(full.clone(), Json::Null);
                    let fields = obj
                        .get("fields")
                        .and_then(Json::as_array)
                        .ok_or_else(|| Error::protocol(format!("{full} without \"fields\"")))?;
                    let ns = namespace_of(&full);
                    let mut new_fields = Vec::with_capacity(fields.len());
                    for f in fields {
                        let mut f = f
                            .as_object()
                            .cloned()
                            .ok_or_else(|| Error::protocol(format!("bad field in {full}")))?;
                        let fty = f
                            .get("type")
                            .ok_or_else(|| {
                                Error::protocol(format!("field without type in {full}"))
                            })?
                            .clone();
                        f.insert("type".into(), self.declare(&fty, ns)?);
                        new_fields.push(Json::Object(f));
                    }
                    out.insert("fields".into(), Json::Array(new_fields));
                }
                let decl = Json::Object(out);
                self.by_name.insert(full.clone(), decl.clone());
                self.order.push(NamedType {
                    full_name: full.clone(),
                    kind: ty_str.to_string(),
                    json: decl,
                });
                Ok(Json::String(full))
            }
            _ => Err(Error::protocol(format!("invalid type {t}"))),
        }
    }

    /// Replaces references (already qualified by `declare`) by their
    /// definitions on first use, as a standalone schema needs.
    fn inline(&self, t: &Json, defined: &mut HashSet<String>) -> Result<Json> {
        match t {
            Json::String(s) if PRIMITIVES.contains(&s.as_str()) => Ok(t.clone()),
            Json::String(s) => {
                if defined.contains(s) {
                    return Ok(t.clone());
                }
                let decl = self
                    .by_name
                    .get(s)
                    .filter(|d| !d.is_null())
                    .ok_or_else(|| Error::protocol(format!("undefined type name {s:?}")))?;
                defined.insert(s.clone());
                let mut obj = decl.as_object().cloned().unwrap_or_default();
                if obj.get("type").and_then(Json::as_str) == Some("error") {
                    obj.insert("type".into(), Json::String("record".into()));
                }
                if let Some(Json::Array(fields)) = obj.get("fields").cloned() {
                    let mut new_fields = Vec::with_capacity(fields.len());
                    for f in fields {
                        let mut f = f.as_object().cloned().unwrap_or_default();
                        if let Some(fty) = f.get("type").cloned() {
                            f.insert("type".into(), self.inline(&fty, defined)?);
                        }
                        new_fields.push(Json::Object(f));
                    }
                    obj.insert("fields".into(), Json::Array(new_fields));
                }
                Ok(Json::Object(obj))
            }
            Json::Array(branches) => branches
                .iter()
                .map(|b| self.inline(b, defined))
                .collect::<Result<Vec<_>>>()
                .map(Json::Array),
            Json::Object(obj) => {
                let mut out = obj.clone();
                if let Some(items) = obj.get("items") {
                    out.insert("items".into(), self.inline(items, defined)?);
                }
                if let Some(values) = obj.get("values") {
                    out.insert("values".into(), self.inline(values, defined)?);
                }
                Ok(Json::Object(out))
            }
            _ => Ok(t.clone()),
        }
    }

    fn message(&mut self, name: &str, json: &Json, ns: Option<&str>) -> Result<Message> {
        check_name(name)?;
        let obj = json
            .as_object()
            .ok_or_else(|| Error::protocol(format!("message {name} must be an object")))?;
        let ctx = |m: &str| Error::protocol(format!("message {name}: {m}"));

        let request = obj
            .get("request")
            .and_then(Json::as_array)
            .ok_or_else(|| ctx("missing \"request\" array"))?;
        let mut params = Vec::with_capacity(request.len());
        let mut defined = HashSet::new();
        let mut fields = Vec::with_capacity(request.len());
        for p in request {
            let mut p = p.as_object().cloned().ok_or_else(|| ctx("bad parameter"))?;
            let pname = p
                .get("name")
                .and_then(Json::as_str)
                .ok_or_else(|| ctx("parameter without a name"))?
                .to_string();
            let pty = p
                .get("type")
                .cloned()
                .ok_or_else(|| ctx("parameter without a type"))?;
            let qualified = self.declare(&pty, ns)?;
            p.insert("type".into(), self.inline(&qualified, &mut defined)?);
            params.push(pname);
            fields.push(Json::Object(p));
        }
        let request_json = serde_json::json!({
            "type": "record",
            "name": format!("{REQUEST_NAMESPACE}.{name}"),
            "fields": fields,
        });

        let response = obj
            .get("response")
            .ok_or_else(|| ctx("missing \"response\""))?;
        let response_q = self.declare(response, ns)?;
        let response_json = self.inline(&response_q, &mut HashSet::new())?;

        let mut error_names = Vec::new();
        let mut error_schemas = Vec::new();
        let mut union = vec![Json::String("string".into())];
        let mut defined = HashSet::new();
        if let Some(errors) = obj.get("errors") {
            let errors = errors
                .as_array()
                .ok_or_else(|| ctx("\"errors\" must be an array"))?;
            for e in errors {
                let q = self.declare(e, ns)?;
                let full = q
                    .as_str()
                    .ok_or_else(|| ctx("errors must name declared error types"))?;
                if full == "string" {
                    continue; // already the first branch
                }
                error_names.push(full.to_string());
                let alone = self.inline(&q, &mut HashSet::new())?;
                error_schemas.push(DatumSchema::from_json(&alone).map_err(|e| prefix(name, e))?);
                union.push(self.inline(&q, &mut defined)?);
            }
        }

        let one_way = match obj.get("one-way") {
            None => false,
            Some(Json::Bool(b)) => *b,
            Some(_) => return Err(ctx("\"one-way\" must be a boolean")),
        };
        if one_way && (response_json != Json::String("null".into()) || !error_names.is_empty()) {
            return Err(ctx(
                "a one-way message must have a null response and no errors",
            ));
        }

        let properties = obj
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "doc" | "request" | "response" | "errors" | "one-way"
                )
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();

        Ok(Message {
            name: name.to_string(),
            one_way,
            params,
            request: DatumSchema::from_json(&request_json).map_err(|e| prefix(name, e))?,
            response: DatumSchema::from_json(&response_json).map_err(|e| prefix(name, e))?,
            errors: DatumSchema::from_json(&Json::Array(union)).map_err(|e| prefix(name, e))?,
            error_names,
            error_schemas,
            properties,
        })
    }
}

fn prefix(message: &str, e: Error) -> Error {
    Error::with_source(
        crate::Kind::Protocol,
        format!("message {message}: invalid schema"),
        e,
    )
}

#[cfg(test)]
mod tests;
