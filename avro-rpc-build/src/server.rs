//! Emission of the server side: the trait `<P>` to implement and the tower
//! service `<P>Server` dispatching decoded calls to it.

use std::fmt::Write as _;

use crate::names;
use crate::parse::Msg;
use crate::types::{error_type, method_head};

pub(crate) fn emit_server(w: &mut String, p: &str, messages: &[Msg]) {
    let _ = writeln!(
        w,
        "/// Implement this to serve the {p} protocol; wrap the implementation in\n/// [`{p}Server`] to get a tower service for a [`Responder`](::avro_rpc::Responder).\n#[allow(dead_code)]\npub trait {p}: ::std::marker::Send + ::std::marker::Sync + 'static {{"
    );
    for m in messages {
        let args = method_head(w, m, "Handles");
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
