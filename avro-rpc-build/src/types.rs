//! Emission of the declared types: records, errors, enums and fixed types
//! (serde-derived, through `avro_rpc::export`), and per message its
//! parameter record and, when it declares errors, its error enum.

use std::fmt::Write as _;

use crate::names;
use crate::parse::{Decl, Field, Msg};

// `fmt::Write` into a String cannot fail: write results are ignored throughout.

pub(crate) fn doc(w: &mut String, indent: &str, d: &Option<String>) {
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

pub(crate) fn emit_decl(w: &mut String, d: &Decl) {
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
            ..
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

pub(crate) fn emit_params(w: &mut String, m: &Msg) {
    let _ = writeln!(
        w,
        "#[doc(hidden)]\n{DERIVE}\npub struct __{}Params {{",
        m.rust_ty
    );
    emit_fields(w, &m.params, "");
    let _ = writeln!(w, "}}\n");
}

/// What the client method and the server trait method of `m` share: writes
/// its docs (or "`verb` `message`.") and returns its parameters as
/// `, name: Type` to follow `&self`.
pub(crate) fn method_head(w: &mut String, m: &Msg, verb: &str) -> String {
    doc(w, "    ", &m.doc);
    if m.doc.is_none() {
        let _ = writeln!(w, "    /// {verb} `{}`.", m.avro);
    }
    m.params
        .iter()
        .map(|f| format!(", {}: {}", names::ident(&f.rust), f.ty))
        .collect()
}

pub(crate) fn error_type(m: &Msg) -> String {
    if m.errors.is_empty() {
        "::std::convert::Infallible".into()
    } else {
        format!("{}Error", m.rust_ty)
    }
}

pub(crate) fn emit_error_enum(w: &mut String, m: &Msg) {
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
