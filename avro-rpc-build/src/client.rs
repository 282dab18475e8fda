//! Emission of the typed client `<P>Client`: one async method per message,
//! over an `avro_rpc::Client` or any tower service wrapping one.

use std::fmt::Write as _;

use crate::names;
use crate::parse::Msg;
use crate::types::{error_type, method_head};

pub(crate) fn emit_client(w: &mut String, p: &str, messages: &[Msg]) {
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
        let args = method_head(w, m, "Calls");
        let fields: Vec<String> = m.params.iter().map(|f| names::ident(&f.rust)).collect();
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
