//! Build-time code generation for `avro-rpc`, in the manner of `tonic-build`:
//! from an Avro protocol (`.avpr`) emit Rust types for its records, errors,
//! enums and fixed types, a typed client and a server trait with a tower
//! service that dispatches to it.
//!
//! ```no_run
//! // build.rs
//! avro_rpc_build::compile_protocols(&["protocols/greeter.avpr"]).unwrap();
//! ```
//! ```text
//! // src/lib.rs
//! pub mod greeter {
//!     avro_rpc::include_protocol!("greeter");
//! }
//! ```
//!
//! The generated code depends only on `avro-rpc` (it reaches serde and
//! apache-avro through `avro_rpc::export`). The protocol text is embedded
//! verbatim so its MD5 (the handshake identity) is that of the file.
//!
//! Supported types: every primitive, named types, arrays, maps, and unions
//! of `null` with one other type (as `Option`). Other unions, and `bytes`
//! nested inside arrays or maps, are refused with an error naming the spot:
//! generation never emits code that would fail at run time instead.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};

mod names;
use names::{pascal_case, snake_case};

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the `.avpr` or writing the output failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The protocol is not valid JSON.
    #[error("{path}: not JSON: {source}")]
    Json {
        /// The file involved.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The protocol uses something the generator cannot express.
    #[error("{0}")]
    Unsupported(String),
}

type Result<T> = std::result::Result<T, Error>;

/// Generates code for each `.avpr` into `$OUT_DIR/<protocol_snake_name>.rs`
/// and tells cargo to rerun when one changes.
pub fn compile_protocols(paths: &[impl AsRef<Path>]) -> Result<()> {
    let out_dir = std::env::var_os("OUT_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| {
            Error::Unsupported(
                "OUT_DIR is not set: call compile_protocols from a build script".into(),
            )
        })?;
    compile_protocols_to(paths, &out_dir)
}

/// Like [`compile_protocols`], into `out_dir`.
pub fn compile_protocols_to(paths: &[impl AsRef<Path>], out_dir: &Path) -> Result<()> {
    for path in paths {
        let path = path.as_ref();
        println!("cargo:rerun-if-changed={}", path.display());
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.into(),
            source,
        })?;
        let (name, code) = generate_named(&text).map_err(|e| match e {
            Error::Json { source, .. } => Error::Json {
                path: path.into(),
                source,
            },
            Error::Unsupported(m) => Error::Unsupported(format!("{}: {m}", path.display())),
            other => other,
        })?;
        let out = out_dir.join(format!("{name}.rs"));
        std::fs::write(&out, code).map_err(|source| Error::Io { path: out, source })?;
    }
    Ok(())
}

/// Generates the code for one protocol text.
pub fn generate(avpr: &str) -> Result<String> {
    generate_named(avpr).map(|(_, code)| code)
}

fn generate_named(avpr: &str) -> Result<(String, String)> {
    let json: Json = serde_json::from_str(avpr).map_err(|source| Error::Json {
        path: PathBuf::new(),
        source,
    })?;
    let mut g = Generator::default();
    let obj = json
        .as_object()
        .ok_or_else(|| unsupported("protocol must be a JSON object"))?;
    let full = obj
        .get("protocol")
        .and_then(Json::as_str)
        .ok_or_else(|| unsupported("missing \"protocol\""))?;
    let (ns, name) = match full.rsplit_once('.') {
        Some((ns, n)) => (Some(ns.to_string()), n.to_string()),
        None => (
            obj.get("namespace")
                .and_then(Json::as_str)
                .map(str::to_string),
            full.to_string(),
        ),
    };
    if let Some(types) = obj.get("types").and_then(Json::as_array) {
        for t in types {
            g.declare(t, ns.as_deref())?;
        }
    }
    let mut messages = Vec::new();
    if let Some(msgs) = obj.get("messages").and_then(Json::as_object) {
        for (mname, m) in msgs {
            messages.push(g.message(mname, m, ns.as_deref())?);
        }
    }
    let code = g.emit(&name, avpr, &messages)?;
    Ok((snake_case(&name), code))
}

fn unsupported(m: impl Into<String>) -> Error {
    Error::Unsupported(m.into())
}

const PRIMITIVES: &[&str] = &[
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// A named type to emit.
enum Decl {
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
    },
    Fixed {
        rust: String,
        size: usize,
    },
}

struct Field {
    avro: String,
    rust: String,
    ty: String,
    with: Option<&'static str>,
    doc: Option<String>,
}

struct Msg {
    avro: String,
    rust_fn: String,
    rust_ty: String,
    doc: Option<String>,
    params: Vec<Field>,
    response: String,
    errors: Vec<String>,
}

#[derive(Default)]
struct Generator {
    /// Full Avro name → Rust type name.
    names: BTreeMap<String, String>,
    rust_names: HashSet<String>,
    decls: Vec<Decl>,
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

impl Generator {
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
    fn declare(&mut self, t: &Json, ns: Option<&str>) -> Result<(String, Option<&'static str>)> {
        self.rust_type(t, ns, true)
    }

    fn rust_type(
        &mut self,
        t: &Json,
        ns: Option<&str>,
        top: bool,
    ) -> Result<(String, Option<&'static str>)> {
        match t {
            Json::String(s) => match s.as_str() {
                "null" => Ok(("()".into(), None)),
                "boolean" => Ok(("bool".into(), None)),
                "int" => Ok(("i32".into(), None)),
                "long" => Ok(("i64".into(), None)),
                "float" => Ok(("f32".into(), None)),
                "double" => Ok(("f64".into(), None)),
                "string" => Ok(("::std::string::String".into(), None)),
                "bytes" if top => Ok((
                    "::std::vec::Vec<u8>".into(),
                    Some("::avro_rpc::export::apache_avro::serde_avro_bytes"),
                )),
                "bytes" => Err(unsupported(
                    "bytes nested in an array, map or union other than [null, bytes]",
                )),
                name => self.lookup(name, ns).map(|(_, r)| (r, None)),
            },
            Json::Array(branches) => {
                let non_null: Vec<&Json> = branches
                    .iter()
                    .filter(|b| b.as_str() != Some("null"))
                    .collect();
                if branches.len() == 2 && non_null.len() == 1 {
                    if non_null[0].as_str() == Some("bytes") && top {
                        return Ok((
                            "::std::option::Option<::std::vec::Vec<u8>>".into(),
                            Some("::avro_rpc::export::apache_avro::serde_avro_bytes_opt"),
                        ));
                    }
                    let (inner, _) = self.rust_type(non_null[0], ns, false)?;
                    Ok((format!("::std::option::Option<{inner}>"), None))
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
                        let (inner, _) = self.rust_type(items, ns, false)?;
                        Ok((format!("::std::vec::Vec<{inner}>"), None))
                    }
                    Some("map") => {
                        let values = obj
                            .get("values")
                            .ok_or_else(|| unsupported("map without values"))?;
                        let (inner, _) = self.rust_type(values, ns, false)?;
                        Ok((
                            format!("::std::collections::HashMap<::std::string::String, {inner}>"),
                            None,
                        ))
                    }
                    Some("record" | "error" | "enum" | "fixed") => {
                        self.define(obj, ns).map(|r| (r, None))
                    }
                    // A primitive with attributes (e.g. a logical type): its base type.
                    Some(p) if PRIMITIVES.contains(&p) => self.rust_type(ty, ns, top),
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
                    let (ty, with) = self
                        .rust_type(fty, inner_ns.as_deref(), true)
                        .map_err(|e| unsupported(format!("{full}.{fname}: {e}")))?;
                    fields.push(Field {
                        avro: fname.into(),
                        rust: snake_case(fname),
                        ty,
                        with,
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
            "enum" => Decl::Enum {
                rust: rust.clone(),
                doc: doc_of(obj),
                symbols: obj
                    .get("symbols")
                    .and_then(Json::as_array)
                    .ok_or_else(|| unsupported(format!("{full} without symbols")))?
                    .iter()
                    .map(|s| s.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| unsupported(format!("{full}: symbols must be strings")))?,
            },
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

    fn message(&mut self, name: &str, m: &Json, ns: Option<&str>) -> Result<Msg> {
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
            let (ty, with) = self
                .rust_type(p.get("type").unwrap_or(&Json::Null), ns, true)
                .map_err(ctx)?;
            params.push(Field {
                avro: pname.into(),
                rust: snake_case(pname),
                ty,
                with,
                doc: None,
            });
        }
        let response = obj
            .get("response")
            .ok_or_else(|| unsupported(format!("message {name}: missing response")))?;
        let (response, with) = self.rust_type(response, ns, true).map_err(ctx)?;
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

    fn emit(&self, protocol: &str, text: &str, messages: &[Msg]) -> Result<String> {
        let mut o = String::new();
        let p = pascal_case(protocol);
        // tonic's naming: trait `P`, tower service `PServer`, client `PClient`.
        for generated in [p.clone(), format!("{p}Server"), format!("{p}Client")] {
            if self.rust_names.contains(&generated) {
                return Err(unsupported(format!(
                    "a declared type is named {generated}, which the generated {protocol} API needs"
                )));
            }
        }
        let w = &mut o;
        // `fmt::Write` into a String cannot fail; results are ignored below.
        let _ = writeln!(
            w,
            "// Generated by avro-rpc-build from the {protocol} protocol. Do not edit.\n"
        );
        let _ = writeln!(
            w,
            "/// The protocol text, verbatim: its MD5 is our identity in handshakes."
        );
        let _ = writeln!(
            w,
            "#[allow(dead_code)]\npub const PROTOCOL_TEXT: &str = {};",
            rust_str(text)
        );
        let _ = writeln!(
            w,
            "\n/// The parsed protocol.\n#[allow(dead_code)]\npub fn protocol() -> ::avro_rpc::Result<::avro_rpc::Protocol> {{\n    ::avro_rpc::Protocol::parse(PROTOCOL_TEXT)\n}}\n"
        );
        for d in &self.decls {
            emit_decl(w, d);
        }
        for m in messages {
            emit_params(w, m);
            if !m.errors.is_empty() {
                emit_error_enum(w, m);
            }
        }
        emit_client(w, &p, messages);
        emit_server(w, &p, messages);
        Ok(o)
    }
}

fn rust_str(s: &str) -> String {
    let mut hashes = String::from("#");
    while s.contains(&format!("\"{hashes}")) {
        hashes.push('#');
    }
    format!("r{hashes}\"{s}\"{hashes}")
}

fn doc(w: &mut String, indent: &str, d: &Option<String>) {
    if let Some(d) = d {
        for line in d.lines() {
            let _ = writeln!(w, "{indent}/// {}", line.trim());
        }
    }
}

const DERIVE: &str = "#[allow(dead_code)]\n#[derive(Debug, Clone, PartialEq, ::avro_rpc::export::serde::Serialize, ::avro_rpc::export::serde::Deserialize)]\n#[serde(crate = \"::avro_rpc::export::serde\")]";

fn emit_fields(w: &mut String, fields: &[Field], vis: &str) {
    for f in fields {
        doc(w, "    ", &f.doc);
        if f.rust != f.avro {
            let _ = writeln!(w, "    #[serde(rename = \"{}\")]", f.avro);
        }
        if let Some(with) = f.with {
            let _ = writeln!(w, "    #[serde(with = \"{with}\")]");
        }
        let _ = writeln!(w, "    {vis}{}: {},", names::ident(&f.rust), f.ty);
    }
}

fn emit_decl(w: &mut String, d: &Decl) {
    match d {
        Decl::Record {
            rust,
            doc: d,
            fields,
            is_error,
        } => {
            doc(w, "", d);
            if *is_error && d.is_none() {
                let _ = writeln!(w, "/// A declared error of the protocol.");
            }
            let _ = writeln!(w, "{DERIVE}\npub struct {rust} {{");
            emit_fields(w, fields, "pub ");
            let _ = writeln!(w, "}}\n");
            if *is_error {
                let _ = writeln!(
                    w,
                    "impl ::std::fmt::Display for {rust} {{\n    fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {{\n        ::std::write!(f, \"{{self:?}}\")\n    }}\n}}\n\nimpl ::std::error::Error for {rust} {{}}\n"
                );
            }
        }
        Decl::Enum {
            rust,
            doc: d,
            symbols,
        } => {
            doc(w, "", d);
            let _ = writeln!(
                w,
                "#[allow(dead_code)]\n#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::avro_rpc::export::serde::Serialize, ::avro_rpc::export::serde::Deserialize)]\n#[serde(crate = \"::avro_rpc::export::serde\")]\npub enum {rust} {{"
            );
            let variants = names::variants(symbols);
            for (sym, v) in symbols.iter().zip(variants) {
                if *sym != v {
                    let _ = writeln!(w, "    #[serde(rename = \"{sym}\")]");
                }
                let _ = writeln!(w, "    {v},");
            }
            let _ = writeln!(w, "}}\n");
        }
        Decl::Fixed { rust, size } => {
            let _ = writeln!(
                w,
                "#[allow(dead_code)]\n#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::avro_rpc::export::serde::Serialize, ::avro_rpc::export::serde::Deserialize)]\n#[serde(crate = \"::avro_rpc::export::serde\", transparent)]\npub struct {rust}(#[serde(with = \"::avro_rpc::export::apache_avro::serde_avro_fixed\")] pub [u8; {size}]);\n"
            );
        }
    }
}

fn emit_params(w: &mut String, m: &Msg) {
    let _ = writeln!(
        w,
        "#[doc(hidden)]\n{DERIVE}\npub struct __{}Params {{",
        m.rust_ty
    );
    emit_fields(w, &m.params, "");
    let _ = writeln!(w, "}}\n");
}

fn error_type(m: &Msg) -> String {
    if m.errors.is_empty() {
        "::std::convert::Infallible".into()
    } else {
        format!("{}Error", m.rust_ty)
    }
}

fn emit_error_enum(w: &mut String, m: &Msg) {
    let e = error_type(m);
    let _ = writeln!(
        w,
        "/// The errors `{}` declares.\n#[allow(dead_code)]\n#[derive(Debug, Clone, PartialEq)]\npub enum {e} {{",
        m.avro
    );
    for t in &m.errors {
        let _ = writeln!(w, "    /// Declared error `{t}`.\n    {t}({t}),");
    }
    let _ = writeln!(w, "}}\n");
    let _ = writeln!(
        w,
        "impl ::std::fmt::Display for {e} {{\n    fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {{\n        ::std::write!(f, \"{{self:?}}\")\n    }}\n}}\n\nimpl ::std::error::Error for {e} {{}}\n"
    );
    for t in &m.errors {
        let _ = writeln!(
            w,
            "impl ::std::convert::From<{t}> for {e} {{\n    fn from(e: {t}) -> Self {{\n        {e}::{t}(e)\n    }}\n}}\n"
        );
    }
    let _ = writeln!(w, "impl ::avro_rpc::codegen::DeclaredError for {e} {{");
    let _ = writeln!(
        w,
        "    fn from_declared(index: usize, value: &::avro_rpc::export::apache_avro::types::Value) -> ::avro_rpc::Result<Self> {{\n        match index {{"
    );
    for (i, t) in m.errors.iter().enumerate() {
        let _ = writeln!(
            w,
            "            {i} => ::avro_rpc::codegen::declared_from(value).map({e}::{t}),"
        );
    }
    let _ = writeln!(
        w,
        "            _ => ::avro_rpc::codegen::DeclaredError::from_declared(index, value).map(|n: ::std::convert::Infallible| match n {{}}),\n        }}\n    }}"
    );
    let _ = writeln!(
        w,
        "    fn to_declared(&self, message: &::avro_rpc::Message) -> ::avro_rpc::Result<(usize, ::avro_rpc::export::apache_avro::types::Value)> {{\n        match self {{"
    );
    for (i, t) in m.errors.iter().enumerate() {
        let _ = writeln!(
            w,
            "            {e}::{t}(e) => ::avro_rpc::codegen::declared_value(message, {i}, e).map(|v| ({i}, v)),"
        );
    }
    let _ = writeln!(w, "        }}\n    }}\n}}\n");
}

fn emit_client(w: &mut String, p: &str, messages: &[Msg]) {
    let _ = writeln!(
        w,
        r#"/// Typed client of the {p} protocol, over a [`Client`](::avro_rpc::Client) or any
/// `tower::Service<Call>` wrapping one (timeouts, retries, ...).
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct {p}Client<S = ::avro_rpc::Client> {{
    stub: ::avro_rpc::codegen::Stub<S>,
}}

#[allow(dead_code)]
impl {p}Client<::avro_rpc::Client> {{
    /// A client over `transport`.
    pub fn new(transport: impl ::avro_rpc::Transport) -> ::avro_rpc::Result<Self> {{
        let protocol = protocol()?;
        Ok(Self::with_service(protocol.clone(), ::avro_rpc::Client::new(protocol, transport)))
    }}
}}

#[allow(dead_code)]
impl<S> {p}Client<S>
where
    S: ::avro_rpc::export::tower::Service<::avro_rpc::Call, Response = ::avro_rpc::Reply>
        + ::std::clone::Clone
        + ::std::marker::Send
        + 'static,
    S::Error: ::std::convert::Into<::avro_rpc::BoxError>,
    S::Future: ::std::marker::Send,
{{
    /// A client sending through `service`, which must speak `protocol`
    /// (the result of [`protocol()`]).
    pub fn with_service(protocol: ::avro_rpc::Protocol, service: S) -> Self {{
        Self {{ stub: ::avro_rpc::codegen::Stub::new(protocol, service) }}
    }}

    /// Sends `metadata` with every call of the returned client.
    pub fn with_metadata(mut self, metadata: ::avro_rpc::Metadata) -> Self {{
        self.stub.set_metadata(metadata);
        self
    }}

    /// The service calls go through.
    pub fn service(&self) -> &S {{
        self.stub.service()
    }}
"#
    );
    for m in messages {
        let args: String = m
            .params
            .iter()
            .map(|f| format!(", {}: {}", names::ident(&f.rust), f.ty))
            .collect();
        let fields: Vec<String> = m.params.iter().map(|f| names::ident(&f.rust)).collect();
        doc(w, "    ", &m.doc);
        if m.doc.is_none() {
            let _ = writeln!(w, "    /// Calls `{}`.", m.avro);
        }
        let _ = writeln!(
            w,
            "    pub async fn {}(&self{args}) -> ::std::result::Result<{}, ::avro_rpc::codegen::CallError<{}>> {{\n        let call = self.stub.encode(\"{}\", &__{}Params {{ {} }})?;\n        self.stub.call(call).await\n    }}\n",
            names::ident(&m.rust_fn),
            m.response,
            error_type(m),
            m.avro,
            m.rust_ty,
            fields.join(", ")
        );
    }
    let _ = writeln!(w, "}}\n");
}

fn emit_server(w: &mut String, p: &str, messages: &[Msg]) {
    let _ = writeln!(
        w,
        "/// Implement this to serve the {p} protocol; wrap the implementation in\n/// [`{p}Server`] to get a tower service for a [`Responder`](::avro_rpc::Responder).\n#[allow(dead_code)]\npub trait {p}: ::std::marker::Send + ::std::marker::Sync + 'static {{"
    );
    for m in messages {
        let args: String = m
            .params
            .iter()
            .map(|f| format!(", {}: {}", names::ident(&f.rust), f.ty))
            .collect();
        doc(w, "    ", &m.doc);
        if m.doc.is_none() {
            let _ = writeln!(w, "    /// Handles `{}`.", m.avro);
        }
        let _ = writeln!(
            w,
            "    fn {}(&self{args}) -> impl ::std::future::Future<Output = ::std::result::Result<{}, ::avro_rpc::codegen::HandlerError<{}>>> + ::std::marker::Send;",
            names::ident(&m.rust_fn),
            m.response,
            error_type(m)
        );
    }
    let _ = writeln!(w, "}}\n");
    let _ = writeln!(
        w,
        r#"/// The tower service dispatching decoded calls to an implementation of [`{p}`].
#[allow(dead_code)]
#[derive(Debug)]
pub struct {p}Server<T> {{
    inner: ::std::sync::Arc<T>,
}}

impl<T> ::std::clone::Clone for {p}Server<T> {{
    fn clone(&self) -> Self {{
        Self {{ inner: self.inner.clone() }}
    }}
}}

#[allow(dead_code)]
impl<T: {p}> {p}Server<T> {{
    /// Wraps an implementation.
    pub fn new(server: T) -> Self {{
        Self {{ inner: ::std::sync::Arc::new(server) }}
    }}

    /// A responder serving this implementation, ready for a transport.
    pub fn responder(self) -> ::avro_rpc::Result<::avro_rpc::Responder<Self>> {{
        Ok(::avro_rpc::Responder::new(protocol()?, self))
    }}
}}

impl<T: {p}> ::avro_rpc::export::tower::Service<::avro_rpc::Request> for {p}Server<T> {{
    type Response = ::avro_rpc::Response;
    type Error = ::std::convert::Infallible;
    type Future = ::avro_rpc::export::BoxFuture<'static, ::std::result::Result<::avro_rpc::Response, ::std::convert::Infallible>>;

    fn poll_ready(&mut self, _cx: &mut ::std::task::Context<'_>) -> ::std::task::Poll<::std::result::Result<(), Self::Error>> {{
        ::std::task::Poll::Ready(Ok(()))
    }}

    fn call(&mut self, request: ::avro_rpc::Request) -> Self::Future {{
        let inner = self.inner.clone();
        ::std::boxed::Box::pin(async move {{
            let response = match request.message.name() {{"#
    );
    for m in messages {
        let fields: Vec<String> = m
            .params
            .iter()
            .map(|f| format!("params.{}", names::ident(&f.rust)))
            .collect();
        let _ = writeln!(
            w,
            "                \"{}\" => match ::avro_rpc::codegen::params::<__{}Params>(&request) {{\n                    Ok(params) => ::avro_rpc::codegen::respond(&request.message, inner.{}({}).await),\n                    Err(bad) => bad,\n                }},",
            m.avro,
            m.rust_ty,
            names::ident(&m.rust_fn),
            fields.join(", ")
        );
    }
    let _ = writeln!(
        w,
        r#"                other => ::avro_rpc::Response::system_error(::std::format!("no handler for message {{other}}")),
            }};
            Ok(response)
        }})
    }}
}}"#
    );
}
