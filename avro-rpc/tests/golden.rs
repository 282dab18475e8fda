//! Golden bytes recorded from the Java reference implementation (Avro 1.12.1,
//! `interop/golden/`, decoded in `golden/MANIFEST.md`), checked against the
//! Rust codec, wire format, server and client:
//!
//! - the Java protocol texts parse and hash as Java hashes them;
//! - every datum decodes to the contract's value (also across v1/v2 schema
//!   resolution) and Rust encodes the value to the same bytes;
//! - every Netty frame and HTTP body decodes (handshakes, call headers,
//!   parameters, responses, errors) and re-encodes to Java's bytes;
//! - a Rust `Responder` fed Java's request messages answers with Java's
//!   response messages byte for byte (and sends nothing for a one-way call on
//!   an established connection);
//! - a Rust `Client` replaying Java's responses sends what Java's client sent
//!   (the call bytes exactly; the handshake up to the empty-vs-absent `meta`).
//!
//! Byte equality is required wherever the encoding is deterministic. The one
//! exception is a map of two or more entries: apache-avro holds maps in a
//! `HashMap`, so their entries come out in arbitrary order; there the bytes
//! must decode to the same value and have the same length.

mod java;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use avro_rpc::client::Transport;
use avro_rpc::export::apache_avro::types::Value;
use avro_rpc::server::{Connection, Incoming};
use avro_rpc::wire::{self, HandshakeMatch, HandshakeRequest, HandshakeResponse};
use avro_rpc::{
    AvroCodec, Call, Client, Codec, DatumSchema, Limits, Md5Hash, Metadata, Protocol, RemoteError,
    Responder,
};
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use java::*;

fn codec() -> AvroCodec {
    AvroCodec::new()
}

fn md5(hex: &str) -> Md5Hash {
    let mut h = [0u8; 16];
    for (i, b) in h.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    Md5Hash(h)
}

/// Decodes one datum and requires that it used up `input` exactly when `whole`.
fn decode_all(writer: &DatumSchema, reader: &DatumSchema, bytes: &[u8], what: &str) -> Value {
    let mut input = bytes;
    let v = codec()
        .decode(writer, reader, &mut input, &Limits::default())
        .unwrap_or_else(|e| panic!("{what}: does not decode: {e}"));
    assert!(
        input.is_empty(),
        "{what}: {} bytes left after the datum",
        input.len()
    );
    v
}

/// Rust's encoding of `value` equals `golden` (or, for values holding a map
/// of several entries, decodes back to `value` with the same length).
fn check_encoding(schema: &DatumSchema, value: &Value, golden: &[u8], what: &str) {
    let mut out = Vec::new();
    codec()
        .encode(schema, value, &mut out)
        .unwrap_or_else(|e| panic!("{what}: Rust cannot encode the value: {e}"));
    if deterministic(value) {
        assert_eq!(
            hex(&out),
            hex(golden),
            "{what}: Rust encodes different bytes than Java"
        );
    } else {
        assert_eq!(out.len(), golden.len(), "{what}: encoded length differs");
        assert_same(what, value, &decode_all(schema, schema, &out, what));
    }
}

// ------------------------------------------------------------- protocols

#[test]
fn java_protocol_texts_parse_and_hash_like_java() {
    for v in Version::ALL {
        let java = java_protocol(v);
        assert_eq!(
            format!("{:?}", java.hash()),
            v.java_hash(),
            "MD5 of java-protocol-{v}.json"
        );
        assert_eq!(java.name(), "Interop");
        assert_eq!(java.namespace(), Some("org.cinerec.interop"));
        assert_eq!(version_of(&java), v);
        let ours = protocol(v);
        assert_ne!(
            ours.hash(),
            java.hash(),
            "our .avpr text is not Java's, so first contact cannot be BOTH"
        );
        let names = |p: &Protocol| {
            p.messages()
                .map(|m| m.name().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&java), names(&ours));
        for m in ours.messages() {
            let j = java.message(m.name()).unwrap();
            assert_eq!(j.is_one_way(), m.is_one_way(), "{}: one-way", m.name());
            assert_eq!(j.error_names(), m.error_names(), "{}: errors", m.name());
            assert_eq!(j.params(), m.params(), "{}: params", m.name());
        }
        assert!(java.message("notify").unwrap().is_one_way());
    }
}

// ----------------------------------------------------------------- datums

#[test]
fn item_datums_decode_and_encode_like_java() {
    for which in ITEMS {
        for v in Version::ALL {
            let what = format!("datum/item-{which}.{v}");
            let golden = hex_file(&format!("{what}.hex"));
            let ours = protocol(v);
            let schema = ours.message("echo").unwrap().response();
            let expected = item(which, v);
            assert_same(
                &what,
                &expected,
                &decode_all(schema, schema, &golden, &what),
            );
            // Writer schema as Java announces it (its own protocol text).
            let java = java_protocol(v);
            let jschema = java.message("echo").unwrap().response();
            assert_same(
                &what,
                &expected,
                &decode_all(jschema, schema, &golden, &what),
            );
            check_encoding(schema, &expected, &golden, &what);
        }
    }
}

#[test]
fn item_datums_resolve_across_versions() {
    for which in ITEMS {
        for (writer, reader) in [(Version::V1, Version::V2), (Version::V2, Version::V1)] {
            let what = format!("datum/item-{which}.{writer} read as {reader}");
            let golden = hex_file(&format!("datum/item-{which}.{writer}.hex"));
            let w = java_protocol(writer);
            let r = protocol(reader);
            let got = decode_all(
                w.message("echo").unwrap().response(),
                r.message("echo").unwrap().response(),
                &golden,
                &what,
            );
            // A reader of `reader` sees what a `reader` client gets from a `writer` server.
            assert_same(&what, &echo_expected(which, reader, writer), &got);
        }
    }
}

#[test]
fn summary_datums_decode_and_encode_like_java() {
    for which in ITEMS {
        let what = format!("datum/summary-{which}");
        let golden = hex_file(&format!("{what}.hex"));
        for v in Version::ALL {
            let schema = protocol(v).message("summarize").unwrap().response().clone();
            let got = decode_all(&schema, &schema, &golden, &what);
            assert_same(&what, &summary(which), &got);
            check_encoding(&schema, &summary(which), &golden, &what);
        }
    }
}

// ------------------------------------------------------ frames and bodies

/// One Netty frame parsed by hand: serial and the buffers as sent.
#[derive(Debug)]
struct RawFrame {
    serial: i32,
    buffers: Vec<Vec<u8>>,
    len: usize,
}

fn raw_frame(b: &[u8]) -> RawFrame {
    let be = |at: usize| i32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let serial = be(0);
    let count = be(4);
    let mut at = 8;
    let mut buffers = Vec::new();
    for _ in 0..count {
        let len = be(at) as usize;
        at += 4;
        buffers.push(b[at..at + len].to_vec());
        at += len;
    }
    RawFrame {
        serial,
        buffers,
        len: at,
    }
}

/// The frames of a Netty session, one direction, as Rust's decoder reads
/// them, checked against the stream file, a hand parse, and Rust's encoder.
fn netty_frames(session: &str, dir: &str) -> Vec<Option<(i32, Bytes)>> {
    let limits = Limits::default();
    let stream = hex_file(&format!("netty/{session}/stream.{dir}.hex"));
    let mut from_stream = BytesMut::from(&stream[..]);
    let mut frames = Vec::new();
    for n in 1.. {
        let name = format!("netty/{session}/{n:02}.{dir}.hex");
        if !golden_exists(&name) {
            // A missing reply: only if a later request exists (one-way).
            if dir == "s2c" && golden_exists(&format!("netty/{session}/{n:02}.c2s.hex")) {
                frames.push(None);
                continue;
            }
            break;
        }
        let bytes = hex_file(&name);
        let raw = raw_frame(&bytes);
        assert_eq!(
            raw.len,
            bytes.len(),
            "{name}: trailing bytes after the frame"
        );
        let mut buf = BytesMut::from(&bytes[..]);
        let (serial, message) = wire::read_netty_frame(&mut buf, &limits)
            .unwrap_or_else(|e| panic!("{name}: Rust cannot read the frame: {e}"))
            .unwrap_or_else(|| panic!("{name}: Rust wants more bytes for a whole frame"));
        assert!(
            buf.is_empty(),
            "{name}: Rust left bytes of the frame unread"
        );
        assert_eq!(serial, raw.serial, "{name}: serial");
        assert_eq!(
            hex(&message),
            hex(&raw.buffers.concat()),
            "{name}: Rust must join every buffer (zero-length ones included)"
        );
        // The same frame, in order, within the whole TCP stream.
        let (s2, m2) = wire::read_netty_frame(&mut from_stream, &limits)
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: missing from stream.{dir}.hex"));
        assert_eq!((s2, &m2), (serial, &message), "{name}: stream order");
        // Rust writes a message as one buffer: identical when Java used one too.
        let mut ours = BytesMut::new();
        wire::write_netty_frame(&mut ours, serial, &message);
        if raw.buffers.len() == 1 {
            assert_eq!(hex(&ours), hex(&bytes), "{name}: Rust frame bytes");
        } else {
            let mut ours = ours;
            assert_eq!(
                wire::read_netty_frame(&mut ours, &limits).unwrap(),
                Some((serial, message.clone()))
            );
        }
        frames.push(Some((serial, message)));
    }
    assert!(
        from_stream.is_empty(),
        "netty/{session}/stream.{dir}.hex has frames beyond the numbered files"
    );
    assert!(!frames.is_empty(), "no frames in netty/{session} {dir}");
    frames
}

/// The messages of an HTTP session, one direction, unframed by Rust.
fn http_bodies(session: &str, dir: &str) -> Vec<Bytes> {
    let limits = Limits::default();
    let mut out = Vec::new();
    for n in 1.. {
        let name = format!("http/{session}/{n:02}.{dir}.hex");
        if !golden_exists(&name) {
            break;
        }
        let body = hex_file(&name);
        let message = wire::unframe_buffers(&body, &limits)
            .unwrap_or_else(|e| panic!("{name}: Rust cannot unframe the body: {e}"));
        // Hand parse: length-prefixed buffers up to the zero-length one.
        let mut at = 0;
        let mut joined = Vec::new();
        loop {
            let len = u32::from_be_bytes(body[at..at + 4].try_into().unwrap()) as usize;
            at += 4;
            if len == 0 {
                break;
            }
            joined.extend_from_slice(&body[at..at + len]);
            at += len;
        }
        assert_eq!(at, body.len(), "{name}: bytes after the terminator");
        assert_eq!(hex(&message), hex(&joined), "{name}: unframed message");
        // Rust's framing round-trips (one 8 KiB buffer per chunk).
        let ours = wire::frame_buffers(&message, 8192);
        assert_eq!(wire::unframe_buffers(&ours, &limits).unwrap(), message);
        out.push(message);
    }
    assert!(!out.is_empty(), "no bodies in http/{session} {dir}");
    out
}

// ---------------------------------------------------------- the sessions

/// What the Java client sent in one request.
struct Req {
    /// The handshake, when the request carries one.
    handshake: Option<HandshakeRequest>,
    /// Message name ("" for a ping).
    message: &'static str,
    /// Parameters as a record of the client's request schema.
    params: Value,
}

/// What the Java server answered.
struct Resp {
    handshake: Option<HandshakeResponse>,
    /// `None`: the response ends after the handshake (ping, or NONE).
    result: Option<Result<Value, Value>>,
}

struct Session {
    client: Version,
    exchanges: Vec<(Req, Option<Resp>)>,
}

fn params(fields: Vec<(&str, Value)>) -> Value {
    record(fields)
}

fn hs_req(client: Version, server_hash: Version, with_protocol: bool) -> HandshakeRequest {
    HandshakeRequest {
        client_hash: md5(client.java_hash()),
        client_protocol: with_protocol.then(|| java_protocol(client).text().to_string()),
        server_hash: md5(server_hash.java_hash()),
        meta: Some(Metadata::new()),
    }
}

fn both() -> HandshakeResponse {
    HandshakeResponse {
        match_: HandshakeMatch::Both,
        server_protocol: None,
        server_hash: None,
        meta: None,
    }
}

fn none_v1() -> HandshakeResponse {
    HandshakeResponse {
        match_: HandshakeMatch::None,
        server_protocol: Some(java_protocol(Version::V1).text().to_string()),
        server_hash: Some(md5(Version::V1.java_hash())),
        meta: None,
    }
}

/// The sessions of MANIFEST.md. `stateless`: every request carries a
/// handshake (HTTP) and one-way calls get a response.
fn session(name: &str, stateless: bool) -> Session {
    let v1 = Version::V1;
    let v2 = Version::V2;
    // Netty: only the requests until the first BOTH carry a handshake.
    let hs = |first: bool, req: HandshakeRequest| (stateless || first).then_some(req);
    let hsr = |first: bool, resp: HandshakeResponse| (stateless || first).then_some(resp);
    match name {
        "ping" => Session {
            client: v1,
            exchanges: vec![(
                Req {
                    handshake: Some(hs_req(v1, v1, false)),
                    message: "",
                    params: Value::Null,
                },
                Some(Resp {
                    handshake: Some(both()),
                    result: None,
                }),
            )],
        },
        "calls" => {
            let e503 = interop_error(503, "unavailable");
            Session {
                client: v1,
                exchanges: vec![
                    (
                        Req {
                            handshake: hs(true, hs_req(v1, v1, false)),
                            message: "add",
                            params: params(vec![("a", Value::Long(40)), ("b", Value::Long(2))]),
                        },
                        Some(Resp {
                            handshake: hsr(true, both()),
                            result: Some(Ok(Value::Long(42))),
                        }),
                    ),
                    (
                        Req {
                            handshake: hs(false, hs_req(v1, v1, false)),
                            message: "echo",
                            params: params(vec![("item", item("canonical", v1))]),
                        },
                        Some(Resp {
                            handshake: hsr(false, both()),
                            result: Some(Ok(item("canonical", v1))),
                        }),
                    ),
                    (
                        Req {
                            handshake: hs(false, hs_req(v1, v1, false)),
                            message: "range",
                            params: params(vec![
                                ("start", Value::Long(0)),
                                ("count", Value::Int(2)),
                            ]),
                        },
                        Some(Resp {
                            handshake: hsr(false, both()),
                            result: Some(Ok(range_expected(0, 2, v1, v1))),
                        }),
                    ),
                    (
                        Req {
                            handshake: hs(false, hs_req(v1, v1, false)),
                            message: "fail",
                            params: params(vec![
                                ("code", Value::Int(503)),
                                ("message", string("unavailable")),
                            ]),
                        },
                        Some(Resp {
                            handshake: hsr(false, both()),
                            result: Some(Err(Value::Union(1, Box::new(e503)))),
                        }),
                    ),
                    (
                        Req {
                            handshake: hs(false, hs_req(v1, v1, false)),
                            message: "fail",
                            params: params(vec![
                                ("code", Value::Int(-1)),
                                ("message", string("boom")),
                            ]),
                        },
                        Some(Resp {
                            handshake: hsr(false, both()),
                            result: Some(Err(Value::Union(
                                0,
                                Box::new(string("undeclared: boom")),
                            ))),
                        }),
                    ),
                    (
                        Req {
                            handshake: hs(false, hs_req(v1, v1, false)),
                            message: "notify",
                            params: params(vec![
                                ("channel", string("golden")),
                                ("event", string("e1")),
                            ]),
                        },
                        stateless.then(|| Resp {
                            handshake: Some(both()),
                            result: Some(Ok(Value::Null)),
                        }),
                    ),
                ],
            }
        }
        "evolved" => Session {
            client: v2,
            exchanges: vec![
                (
                    Req {
                        handshake: Some(hs_req(v2, v2, false)),
                        message: "add",
                        params: params(vec![("a", Value::Long(40)), ("b", Value::Long(2))]),
                    },
                    Some(Resp {
                        handshake: Some(none_v1()),
                        result: None,
                    }),
                ),
                (
                    Req {
                        handshake: Some(hs_req(v2, v1, true)),
                        message: "add",
                        params: params(vec![("a", Value::Long(40)), ("b", Value::Long(2))]),
                    },
                    Some(Resp {
                        handshake: Some(both()),
                        result: Some(Ok(Value::Long(42))),
                    }),
                ),
                (
                    Req {
                        handshake: hs(false, hs_req(v2, v1, false)),
                        message: "echo",
                        params: params(vec![("item", item("textual", v2))]),
                    },
                    Some(Resp {
                        handshake: hsr(false, both()),
                        result: Some(Ok(item("textual", v1))),
                    }),
                ),
            ],
        },
        other => panic!("no session {other}"),
    }
}

/// Decodes a request message as Java wrote it and checks it against `req`;
/// also checks Rust re-encodes the handshake and call to the same bytes.
fn check_request(what: &str, message: &[u8], req: &Req, client: &Protocol) {
    let limits = Limits::default();
    let mut input = message;
    let mut ours = Vec::new();
    if let Some(expected) = &req.handshake {
        let hs = HandshakeRequest::decode(&mut input, &limits)
            .unwrap_or_else(|e| panic!("{what}: handshake does not decode: {e}"));
        assert_eq!(&hs, expected, "{what}: handshake request");
        hs.encode(&mut ours);
    }
    let (meta, name) = wire::read_call_header(&mut input, &limits)
        .unwrap_or_else(|e| panic!("{what}: call header does not decode: {e}"));
    assert!(meta.is_empty(), "{what}: call metadata {meta:?}");
    assert_eq!(name, req.message, "{what}: message name");
    wire::write_call_header(&mut ours, &Metadata::new(), name);
    if req.message.is_empty() {
        assert!(input.is_empty(), "{what}: bytes after a ping");
        assert_eq!(hex(&ours), hex(message), "{what}: Rust re-encoding");
        return;
    }
    let schema = client.message(req.message).unwrap().request();
    let got = decode_all(schema, schema, input, what);
    assert_same(&format!("{what} params"), &req.params, &got);
    let prefix = ours.len();
    assert_eq!(
        hex(&ours),
        hex(&message[..prefix]),
        "{what}: Rust re-encoding of handshake + call header"
    );
    check_encoding(schema, &req.params, &message[prefix..], what);
}

/// Decodes a response message and checks it against `resp`. Returns the
/// length of the part before the response value (handshake + header).
fn check_response(
    what: &str,
    message: &[u8],
    resp: &Resp,
    msg: &str,
    server: &Protocol,
    client: &Protocol,
) {
    let limits = Limits::default();
    let mut input = message;
    let mut ours = Vec::new();
    if let Some(expected) = &resp.handshake {
        let hs = HandshakeResponse::decode(&mut input, &limits)
            .unwrap_or_else(|e| panic!("{what}: handshake does not decode: {e}"));
        assert_eq!(&hs, expected, "{what}: handshake response");
        hs.encode(&mut ours);
    }
    let Some(result) = &resp.result else {
        assert!(
            input.is_empty(),
            "{what}: bytes after a handshake-only response"
        );
        assert_eq!(hex(&ours), hex(message), "{what}: Rust re-encoding");
        return;
    };
    let (meta, is_error) = wire::read_response_header(&mut input, &limits)
        .unwrap_or_else(|e| panic!("{what}: response header does not decode: {e}"));
    assert!(meta.is_empty(), "{what}: response metadata {meta:?}");
    assert_eq!(is_error, result.is_err(), "{what}: error flag");
    wire::write_response_header(&mut ours, &Metadata::new(), is_error);
    assert_eq!(
        hex(&ours),
        hex(&message[..ours.len()]),
        "{what}: Rust re-encoding of handshake + response header"
    );
    let (writer, reader, expected) = match result {
        Ok(v) => (
            server.message(msg).unwrap().response(),
            client.message(msg).unwrap().response(),
            v,
        ),
        Err(e) => (
            server.message(msg).unwrap().errors(),
            client.message(msg).unwrap().errors(),
            e,
        ),
    };
    // As written (server schema both sides), then as the client reads it.
    let got = decode_all(writer, writer, input, what);
    if server.hash() == client.hash() {
        assert_same(what, expected, &got);
        check_encoding(writer, expected, input, what);
    } else {
        decode_all(writer, reader, input, what);
    }
}

#[test]
fn netty_sessions_decode_and_reencode() {
    for name in ["ping", "calls", "evolved"] {
        let s = session(name, false);
        let client = java_protocol(s.client);
        let server = java_protocol(Version::V1);
        let c2s = netty_frames(name, "c2s");
        let s2c = netty_frames(name, "s2c");
        assert_eq!(c2s.len(), s.exchanges.len(), "netty/{name}: requests");
        assert_eq!(s2c.len(), s.exchanges.len(), "netty/{name}: replies");
        for (i, ((req, resp), (c, r))) in s.exchanges.iter().zip(c2s.iter().zip(&s2c)).enumerate() {
            let what = format!("netty/{name}/{:02}", i + 1);
            let (serial, message) = c.as_ref().unwrap();
            assert_eq!(
                *serial,
                i as i32 + 1,
                "{what}: Java numbers frames 1, 2, 3, ..."
            );
            check_request(&format!("{what}.c2s"), message, req, &client);
            match (resp, r) {
                (Some(resp), Some((rs, rm))) => {
                    assert_eq!(rs, serial, "{what}: reply serial");
                    check_response(
                        &format!("{what}.s2c"),
                        rm,
                        resp,
                        req.message,
                        &server,
                        &client,
                    );
                }
                (None, None) => {}
                (e, g) => panic!(
                    "{what}: expected a reply: {}, got one: {}",
                    e.is_some(),
                    g.is_some()
                ),
            }
        }
    }
}

#[test]
fn http_sessions_decode_and_reencode() {
    for name in ["ping", "calls", "evolved"] {
        let s = session(name, true);
        let client = java_protocol(s.client);
        let server = java_protocol(Version::V1);
        let requests = http_bodies(name, "request");
        let responses = http_bodies(name, "response");
        assert_eq!(requests.len(), s.exchanges.len(), "http/{name}: requests");
        assert_eq!(responses.len(), s.exchanges.len(), "http/{name}: responses");
        for (i, ((req, resp), (q, r))) in s
            .exchanges
            .iter()
            .zip(requests.iter().zip(&responses))
            .enumerate()
        {
            let what = format!("http/{name}/{:02}", i + 1);
            check_request(&format!("{what}.request"), q, req, &client);
            let resp = resp.as_ref().expect("HTTP always answers");
            check_response(
                &format!("{what}.response"),
                r,
                resp,
                req.message,
                &server,
                &client,
            );
        }
    }
}

// ------------------------------------------- the Rust server, Java's bytes

/// A Rust responder speaking exactly Java's v1 protocol text, so its hash is
/// Java's and its answers can be compared byte for byte.
fn java_text_responder() -> Arc<
    Responder<
        impl tower::Service<
            avro_rpc::Request,
            Response = avro_rpc::Response,
            Error = std::convert::Infallible,
            Future = impl Send,
        > + Clone
        + Send
        + Sync,
    >,
> {
    Arc::new(Responder::new(
        java_protocol(Version::V1),
        interop_handler(Version::V1, Events::default()),
    ))
}

/// Rust's response bytes equal Java's (modulo map order, see the top).
fn same_response(what: &str, ours: &[u8], java: &[u8], value: Option<&Value>) {
    if value.is_none_or(deterministic) {
        assert_eq!(
            hex(ours),
            hex(java),
            "{what}: Rust server answers differently than Java"
        );
    } else {
        assert_eq!(ours.len(), java.len(), "{what}: response length");
    }
}

fn response_value(resp: &Resp) -> Option<&Value> {
    match &resp.result {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => Some(e),
        None => None,
    }
}

#[tokio::test]
async fn rust_responder_answers_java_netty_requests_with_java_bytes() {
    for name in ["ping", "calls", "evolved"] {
        let s = session(name, false);
        let responder = java_text_responder();
        let mut conn = Connection::stateful();
        let c2s = netty_frames(name, "c2s");
        let s2c = netty_frames(name, "s2c");
        for (i, (c, r)) in c2s.iter().zip(&s2c).enumerate() {
            let what = format!("netty/{name}/{:02}", i + 1);
            let (_, message) = c.as_ref().unwrap();
            let ours = match responder.accept(&mut conn, message) {
                Ok(Incoming::Reply(b)) => Some(b),
                Ok(Incoming::Call(call)) => {
                    let response = responder.dispatch(call.request).await;
                    responder.finish(call.reply, response)
                }
                Err(e) => panic!("{what}: Rust server refuses Java's request: {e}"),
            };
            let resp = s.exchanges[i].1.as_ref();
            match (r, ours) {
                (Some((_, java)), Some(ours)) => {
                    same_response(&what, &ours, java, resp.and_then(response_value))
                }
                (None, None) => {}
                (None, Some(ours)) => panic!(
                    "{what}: Java sends no reply (one-way on an established connection), \
                     Rust would send {}",
                    hex(&ours)
                ),
                (Some(_), None) => panic!("{what}: Java replies, Rust would not"),
            }
        }
    }
}

#[tokio::test]
async fn rust_responder_answers_java_http_requests_with_java_bytes() {
    for name in ["ping", "calls", "evolved"] {
        let s = session(name, true);
        let responder = java_text_responder();
        let requests = http_bodies(name, "request");
        let responses = http_bodies(name, "response");
        for (i, (q, r)) in requests.iter().zip(&responses).enumerate() {
            let what = format!("http/{name}/{:02}", i + 1);
            let ours = responder
                .respond_stateless(q)
                .await
                .unwrap_or_else(|e| panic!("{what}: Rust server refuses Java's request: {e}"));
            let resp = s.exchanges[i].1.as_ref().unwrap();
            same_response(&what, &ours, r, response_value(resp));
        }
    }
}

// ------------------------------------------- the Rust client, Java's bytes

/// Replays recorded responses and records what the client sends.
#[derive(Debug, Clone)]
struct Replay {
    stateful: bool,
    responses: Arc<Mutex<VecDeque<Bytes>>>,
    sent: Arc<Mutex<Vec<(bool, Bytes)>>>,
}

impl Replay {
    fn new(stateful: bool, responses: Vec<Bytes>) -> Self {
        Replay {
            stateful,
            responses: Arc::new(Mutex::new(responses.into())),
            sent: Arc::default(),
        }
    }
}

impl Transport for Replay {
    fn transceive(&self, message: Bytes) -> BoxFuture<'static, avro_rpc::Result<Bytes>> {
        self.sent.lock().unwrap().push((true, message));
        let next = self.responses.lock().unwrap().pop_front();
        Box::pin(async move {
            next.ok_or_else(|| {
                avro_rpc::Error::new(avro_rpc::Kind::Transport, "no more recorded responses")
            })
        })
    }

    fn send(&self, message: Bytes) -> BoxFuture<'static, avro_rpc::Result<()>> {
        self.sent.lock().unwrap().push((false, message));
        Box::pin(async { Ok(()) })
    }

    fn is_stateful(&self) -> bool {
        self.stateful
    }

    fn endpoint(&self) -> String {
        "replay".into()
    }
}

/// The Java client's request with the handshake's `meta` made absent: Java
/// sends an empty map, Rust sends null (both valid); all else must match.
fn without_handshake_meta(message: &[u8]) -> Vec<u8> {
    let mut input = message;
    let mut hs = HandshakeRequest::decode(&mut input, &Limits::default()).unwrap();
    hs.meta = None;
    let mut out = Vec::new();
    hs.encode(&mut out);
    out.extend_from_slice(input);
    out
}

#[tokio::test]
async fn rust_client_replaying_java_http_evolution_sends_javas_requests() {
    // A Rust client with Java's v2 text (so its hash is Java's) against the
    // recorded v1 server: NONE, resend with our protocol, BOTH, then a call
    // whose response is resolved from v1 to v2.
    let requests = http_bodies("evolved", "request");
    let transport = Replay::new(false, http_bodies("evolved", "response"));
    let client = Client::new(java_protocol(Version::V2), transport.clone());
    let add = Call::new(
        &client,
        "add",
        &params(vec![("a", Value::Long(40)), ("b", Value::Long(2))]),
    )
    .unwrap();
    let r = client.call(add).await.expect("add after NONE");
    assert_eq!(r.result, Ok(Value::Long(42)));
    let echo = Call::new(
        &client,
        "echo",
        &params(vec![("item", item("textual", Version::V2))]),
    )
    .unwrap();
    let r = client.call(echo).await.expect("echo");
    assert_same(
        "echo(textual) v2 client from v1 server",
        &echo_expected("textual", Version::V2, Version::V1),
        r.result.as_ref().unwrap(),
    );
    assert_eq!(
        format!("{:?}", client.remote_protocol().unwrap().hash()),
        Version::V1.java_hash()
    );
    let sent = transport.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), requests.len(), "requests sent");
    for (i, ((two_way, ours), java)) in sent.iter().zip(&requests).enumerate() {
        assert!(two_way);
        assert_eq!(
            hex(ours),
            hex(&without_handshake_meta(java)),
            "http/evolved/{:02}: Rust client request",
            i + 1
        );
    }
}

#[tokio::test]
async fn rust_client_replaying_java_netty_calls_sends_javas_frames() {
    // Rust's stateful client opens with a ping (Java's netty/ping session),
    // then sends calls without handshake, as Java did in netty/calls 02..06.
    let ping = netty_frames("ping", "c2s");
    let ping_reply = netty_frames("ping", "s2c");
    let calls = netty_frames("calls", "c2s");
    let replies = netty_frames("calls", "s2c");
    let responses: Vec<Bytes> = std::iter::once(&ping_reply[0])
        .chain(&replies[1..])
        .flatten()
        .map(|(_, m)| m.clone())
        .collect();
    let transport = Replay::new(true, responses);
    let client = Client::new(java_protocol(Version::V1), transport.clone());
    let v1 = Version::V1;
    let c = |m: &str, p: Vec<(&str, Value)>| Call::new(&client, m, &params(p)).unwrap();
    let r = client
        .call(c("echo", vec![("item", item("canonical", v1))]))
        .await
        .unwrap();
    assert_same(
        "echo(canonical)",
        &item("canonical", v1),
        r.result.as_ref().unwrap(),
    );
    let r = client
        .call(c(
            "range",
            vec![("start", Value::Long(0)), ("count", Value::Int(2))],
        ))
        .await
        .unwrap();
    assert_same(
        "range(0,2)",
        &range_expected(0, 2, v1, v1),
        r.result.as_ref().unwrap(),
    );
    let r = client
        .call(c(
            "fail",
            vec![
                ("code", Value::Int(503)),
                ("message", string("unavailable")),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(
        r.result,
        Err(RemoteError::Declared {
            index: 0,
            value: interop_error(503, "unavailable")
        })
    );
    let r = client
        .call(c(
            "fail",
            vec![("code", Value::Int(-1)), ("message", string("boom"))],
        ))
        .await
        .unwrap();
    assert_eq!(
        r.result,
        Err(RemoteError::System("undeclared: boom".into()))
    );
    let r = client
        .call(c(
            "notify",
            vec![("channel", string("golden")), ("event", string("e1"))],
        ))
        .await
        .unwrap();
    assert_eq!(r.result, Ok(Value::Null));

    let sent = transport.sent.lock().unwrap().clone();
    let java: Vec<(bool, Bytes)> = std::iter::once((true, ping[0].clone().unwrap().1))
        .chain(
            calls[1..]
                .iter()
                .zip(&replies[1..])
                .map(|(c, r)| (r.is_some(), c.clone().unwrap().1)),
        )
        .collect();
    assert_eq!(sent.len(), java.len(), "messages sent");
    for (i, ((two_way, ours), (java_two_way, java))) in sent.iter().zip(&java).enumerate() {
        assert_eq!(
            two_way, java_two_way,
            "message {i}: one-way must not await a reply"
        );
        let java = if i == 0 {
            without_handshake_meta(java)
        } else {
            java.to_vec()
        };
        if i == 1 {
            // echo(canonical): its attrs map has three entries (order varies).
            assert_eq!(ours.len(), java.len(), "message {i}: length");
            assert_eq!(hex(&ours[..6]), hex(&java[..6]), "message {i}: call header");
        } else {
            assert_eq!(hex(ours), hex(&java), "message {i}: Rust client bytes");
        }
    }
    assert!(transport.responses.lock().unwrap().is_empty());
}

/// Java's `HttpTransceiver` body for `nop()` (no parameters), captured from
/// Avro 1.12.1: the parameters go out as an empty buffer before the
/// terminator, `[40][0][0]`. Java's server stops at the first empty buffer;
/// Rust must accept the extra empty buffer (and still refuse other trailing
/// bytes).
#[tokio::test]
async fn java_http_body_with_empty_params_buffer() {
    let body = "00000028c0cf01b123d5234c094f4fc29e1a349000c0cf01b123d5234c094f4fc29e1a3490\
                020000066e6f700000000000000000";
    let body: Vec<u8> = (0..body.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&body[i..i + 2], 16).unwrap())
        .collect();
    let limits = Limits::default();
    let message = wire::unframe_buffers(&body, &limits)
        .unwrap_or_else(|e| panic!("Rust refuses Java's body for nop(): {e}"));
    assert_eq!(hex(&message), hex(&body[4..44]));
    check_request(
        "nop() over HTTP",
        &message,
        &Req {
            handshake: Some(hs_req(Version::V1, Version::V1, false)),
            message: "nop",
            params: record(vec![]),
        },
        &java_protocol(Version::V1),
    );
    let ours = java_text_responder()
        .respond_stateless(&message)
        .await
        .expect("Rust server answers nop()");
    // BOTH, empty metadata, no error, null.
    assert_eq!(hex(&ours), "000000000000");
    for bad in [&[0u8][..], &[0, 0, 0, 1], &[0, 0, 0, 0, 0]] {
        let mut b = body.clone();
        b.extend_from_slice(bad);
        assert!(
            wire::unframe_buffers(&b, &limits).is_err(),
            "trailing {bad:?} accepted"
        );
    }
}
