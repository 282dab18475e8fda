//! A server's whole decode path (handshake, call header, parameters with
//! schema resolution) and a client's reply decoding, over arbitrary bytes.
#![no_main]

use std::convert::Infallible;
use std::sync::OnceLock;

use avro_rpc::server::{Connection, Incoming, Request, Responder, Response};
use avro_rpc::{AvroCodec, Codec, Limits, Protocol, wire};
use libfuzzer_sys::fuzz_target;

type Handler = tower::util::ServiceFn<fn(Request) -> std::future::Ready<Result<Response, Infallible>>>;

fn ok(_: Request) -> std::future::Ready<Result<Response, Infallible>> {
    std::future::ready(Ok(Response::ok(avro_rpc::export::apache_avro::types::Value::Null)))
}

fn responder() -> &'static Responder<Handler> {
    static R: OnceLock<Responder<Handler>> = OnceLock::new();
    R.get_or_init(|| {
        let p = Protocol::parse(include_str!("../../tests/protocols/greeter.avpr")).expect("protocol");
        Responder::new(p, tower::service_fn(ok as fn(Request) -> _))
    })
}

fuzz_target!(|data: &[u8]| {
    let r = responder();
    for mut conn in [Connection::stateless(), Connection::stateful()] {
        if let Ok(Incoming::Call(call)) = r.accept(&mut conn, data) {
            // The handler's answer rarely fits; finish must cope either way.
            let _ = r.finish(call.reply, Response::ok(avro_rpc::export::apache_avro::types::Value::Null));
        }
    }
    // The reply side: a response header then a datum of each message's schemas.
    let limits = Limits::default();
    let codec = AvroCodec::new();
    for m in r.protocol().messages() {
        let mut input = data;
        if let Ok((_, is_error)) = wire::read_response_header(&mut input, &limits) {
            let schema = if is_error { m.errors() } else { m.response() };
            let _ = codec.decode(schema, schema, &mut input, &limits);
        }
    }
});
