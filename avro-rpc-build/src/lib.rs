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
//!
//! The seams, as in tonic-build: `parse` (JSON → declarations, every refusal),
//! `types` (records, errors, enums, fixed, message parameters and error
//! enums), `client` and `server` (the two halves of the API), `names` (Avro
//! names → Rust identifiers). This file keeps the public API and assembles
//! one protocol's output.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

mod client;
mod names;
mod parse;
mod schema;
mod server;
mod types;

use names::{pascal_case, snake_case};
use parse::{Msg, Parser, unsupported};

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
    Builder::new().compile_protocols(paths)
}

/// Like [`compile_protocols`], into `out_dir`.
pub fn compile_protocols_to(paths: &[impl AsRef<Path>], out_dir: &Path) -> Result<()> {
    Builder::new().compile_protocols_to(paths, out_dir)
}

/// Generates the code for one protocol text.
pub fn generate(avpr: &str) -> Result<String> {
    Builder::new().generate(avpr)
}

/// The file [`compile_schemas`] writes into `OUT_DIR`.
pub const SCHEMAS_FILE: &str = "avro_schemas.rs";

/// Generates Rust types for the named types of each `.avsc` (a record and
/// the enums, records and fixed types it declares) into one file,
/// `$OUT_DIR/avro_schemas.rs` ([`SCHEMAS_FILE`]), and tells cargo to rerun
/// when one changes. One file for all, so a type one schema declares and
/// another references is one Rust type, and a name declared twice is an
/// error. See [`generate_schemas`] for what is generated.
///
/// ```no_run
/// // build.rs
/// avro_rpc_build::compile_schemas(&["protocols/greeting.avsc"]).unwrap();
/// ```
/// ```text
/// // src/lib.rs
/// mod generated {
///     include!(concat!(env!("OUT_DIR"), "/avro_schemas.rs"));
/// }
/// ```
pub fn compile_schemas(paths: &[impl AsRef<Path>]) -> Result<()> {
    Builder::new().compile_schemas(paths)
}

/// Generates the code for schema texts (`.avsc`): per record a struct with
/// `to_value`/`from_value` (apache-avro `Value`s of the schema), per enum a
/// Rust enum with `as_str`, `index`, `parse`, `to_value`, `from_value` (an
/// unknown symbol reads the enum's `default` when it has one), per fixed a
/// byte-array newtype; and a `ValueError` for values of another shape.
/// Logical types keep their meaning (`uuid` → `::uuid::Uuid`); a
/// `timestamp-micros` field `x` is named `x_us` (`timestamp-millis`: `x_ms`).
pub fn generate_schemas(avsc: &[&str]) -> Result<String> {
    Builder::new().generate_schemas(avsc)
}

/// Generation with options, for what the free functions do not cover.
///
/// ```no_run
/// // One Rust type for an Avro type that two contracts declare: the event
/// // schemas generate it (with serde derives), the protocol reuses it.
/// avro_rpc_build::Builder::new()
///     .extern_type("org.cinerec.user.Tier", "::cinerec_events::Tier")
///     .compile_protocols(&["protocols/user.avpr"])
///     .unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    externs: Vec<(String, String)>,
    schema_serde: bool,
}

impl Builder {
    /// The defaults: every named type generated, schema types without serde.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Uses the Rust type at `rust_path` for the Avro named type `avro_name`
    /// (its full name, e.g. `org.cinerec.user.Tier`) instead of generating
    /// one, as prost's `extern_path` does. In a protocol the type must
    /// (de)serialize with serde as the generated one would: for an enum, its
    /// symbols as variant names in schema order, which a schema enum generated
    /// with [`schema_serde`](Builder::schema_serde) does. The declaration in
    /// the file is not checked against the Rust type: keep the two contracts'
    /// declarations identical.
    pub fn extern_type(mut self, avro_name: &str, rust_path: &str) -> Builder {
        self.externs.push((avro_name.into(), rust_path.into()));
        self
    }

    /// Schema enums also derive serde's `Serialize`/`Deserialize` (through
    /// `::serde`, which the including crate then needs), symbols as variant
    /// names, so a protocol can use them as [extern types](Builder::extern_type).
    pub fn schema_serde(mut self, on: bool) -> Builder {
        self.schema_serde = on;
        self
    }

    /// [`compile_protocols`] with these options.
    pub fn compile_protocols(&self, paths: &[impl AsRef<Path>]) -> Result<()> {
        self.compile_protocols_to(paths, &out_dir("compile_protocols")?)
    }

    /// [`compile_protocols_to`] with these options.
    pub fn compile_protocols_to(&self, paths: &[impl AsRef<Path>], out_dir: &Path) -> Result<()> {
        for path in paths {
            let path = path.as_ref();
            let text = read(path)?;
            let (name, code) = self.generate_named(&text).map_err(|e| at(path, e))?;
            let out = out_dir.join(format!("{name}.rs"));
            std::fs::write(&out, code).map_err(|source| Error::Io { path: out, source })?;
        }
        Ok(())
    }

    /// [`generate`] with these options.
    pub fn generate(&self, avpr: &str) -> Result<String> {
        self.generate_named(avpr).map(|(_, code)| code)
    }

    /// [`compile_schemas`] with these options.
    pub fn compile_schemas(&self, paths: &[impl AsRef<Path>]) -> Result<()> {
        self.compile_schemas_to(paths, &out_dir("compile_schemas")?)
    }

    /// Like [`compile_schemas`], into `out_dir`.
    pub fn compile_schemas_to(&self, paths: &[impl AsRef<Path>], out_dir: &Path) -> Result<()> {
        let mut g = Parser::with_externs(&self.externs);
        for path in paths {
            let path = path.as_ref();
            let text = read(path)?;
            declare_schema(&mut g, &text).map_err(|e| at(path, e))?;
        }
        let out = out_dir.join(SCHEMAS_FILE);
        std::fs::write(&out, schema::emit(&g.decls, self.schema_serde))
            .map_err(|source| Error::Io { path: out, source })
    }

    /// [`generate_schemas`] with these options.
    pub fn generate_schemas(&self, avsc: &[&str]) -> Result<String> {
        let mut g = Parser::with_externs(&self.externs);
        for text in avsc {
            declare_schema(&mut g, text)?;
        }
        Ok(schema::emit(&g.decls, self.schema_serde))
    }

    fn generate_named(&self, avpr: &str) -> Result<(String, String)> {
        let json: Json = serde_json::from_str(avpr).map_err(|source| Error::Json {
            path: PathBuf::new(),
            source,
        })?;
        let mut g = Parser::with_externs(&self.externs);
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
        let code = emit(&g, &name, avpr, &messages)?;
        Ok((snake_case(&name), code))
    }
}

fn out_dir(caller: &str) -> Result<PathBuf> {
    std::env::var_os("OUT_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| {
            Error::Unsupported(format!(
                "OUT_DIR is not set: call {caller} from a build script"
            ))
        })
}

/// Reads a contract file, telling cargo to rerun when it changes.
fn read(path: &Path) -> Result<String> {
    println!("cargo:rerun-if-changed={}", path.display());
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })
}

/// `e`, naming the file it is about.
fn at(path: &Path, e: Error) -> Error {
    match e {
        Error::Json { source, .. } => Error::Json {
            path: path.into(),
            source,
        },
        Error::Unsupported(m) => Error::Unsupported(format!("{}: {m}", path.display())),
        other => other,
    }
}

fn declare_schema(g: &mut Parser, avsc: &str) -> Result<()> {
    let json: Json = serde_json::from_str(avsc).map_err(|source| Error::Json {
        path: PathBuf::new(),
        source,
    })?;
    match json.get("type").and_then(Json::as_str) {
        Some("record" | "enum" | "fixed") => g.declare(&json, None).map(|_| ()),
        _ => Err(unsupported(
            "a schema file must declare a named type (record, enum or fixed)",
        )),
    }
}

/// The whole file for one protocol: its text, its types, client and server.
fn emit(g: &Parser, protocol: &str, text: &str, messages: &[Msg]) -> Result<String> {
    let mut o = String::new();
    let p = pascal_case(protocol);
    // tonic's naming: trait `P`, tower service `PServer`, client `PClient`.
    for generated in [p.clone(), format!("{p}Server"), format!("{p}Client")] {
        if g.rust_names.contains(&generated) {
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
    for d in &g.decls {
        types::emit_decl(w, d);
    }
    for m in messages {
        types::emit_params(w, m);
        if !m.errors.is_empty() {
            types::emit_error_enum(w, m);
        }
    }
    client::emit_client(w, &p, messages);
    server::emit_server(w, &p, messages);
    Ok(o)
}

fn rust_str(s: &str) -> String {
    let mut hashes = String::from("#");
    while s.contains(&format!("\"{hashes}")) {
        hashes.push('#');
    }
    format!("r{hashes}\"{s}\"{hashes}")
}
