//! Seeded random mutations of valid messages (bit flips, truncation, spliced
//! garbage, forged lengths) fed to every decoder a peer can reach: the
//! server's handshake + call path, the client's reply path, and both
//! framings. The property is simply that each returns (Ok or Err) without
//! panicking; a deterministic seed keeps failures reproducible. Not a
//! replacement for a coverage-guided fuzzer, but it runs in every `cargo test`
//! (`AVRO_RPC_MUTATION_ROUNDS=1000000` for a longer soak).

mod common;

use avro_rpc::export::apache_avro::types::Value;
use avro_rpc::server::{Connection, Incoming};
use avro_rpc::wire::{self, HandshakeRequest};
use avro_rpc::{AvroCodec, Codec, Limits, Metadata};
use bytes::BytesMut;
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Rounds per test; `AVRO_RPC_MUTATION_ROUNDS` raises it for a longer soak.
fn rounds() -> usize {
    std::env::var("AVRO_RPC_MUTATION_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000)
}

fn mutate(rng: &mut StdRng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        match rng.random_range(0..5) {
            0 if !out.is_empty() => {
                let i = rng.random_range(0..out.len());
                out[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !out.is_empty() => {
                let n = rng.random_range(0..out.len());
                out.truncate(n);
            }
            2 => {
                let i = rng.random_range(0..=out.len());
                let junk: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                out.splice(i..i, junk);
            }
            3 if !out.is_empty() => {
                // A forged varint: huge, negative or overlong.
                let i = rng.random_range(0..out.len());
                let forged: &[u8] = match rng.random_range(0..3) {
                    0 => &[0xfe, 0xff, 0xff, 0xff, 0x0f],
                    1 => &[0x01],
                    _ => &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                };
                let end = (i + forged.len()).min(out.len());
                out.splice(i..end, forged.iter().copied());
            }
            _ => {
                if !out.is_empty() {
                    let i = rng.random_range(0..out.len());
                    out[i] = rng.random();
                }
            }
        }
    }
    out
}

fn valid_requests() -> Vec<Vec<u8>> {
    let p = greeter();
    let codec = AvroCodec::new();
    let params: Vec<(&str, Value)> = vec![
        ("hello", record(&[("name", Value::String("fuzz".into()))])),
        ("echo", record(&[("greeting", greeting())])),
        (
            "add",
            record(&[("a", Value::Int(-5)), ("b", Value::Long(1 << 40))]),
        ),
        ("refuse", record(&[("code", Value::Int(1))])),
        ("notify", record(&[("event", Value::String("e".into()))])),
    ];
    params
        .into_iter()
        .map(|(name, v)| {
            let mut m = Vec::new();
            HandshakeRequest {
                client_hash: p.hash(),
                client_protocol: Some(p.text().to_string()),
                server_hash: p.hash(),
                meta: Some(Metadata::new()),
            }
            .encode(&mut m);
            let mut meta = Metadata::new();
            meta.insert("k".into(), bytes::Bytes::from_static(b"v"));
            wire::write_call_header(&mut m, &meta, name);
            codec
                .encode(p.message(name).unwrap().request(), &v, &mut m)
                .unwrap();
            m
        })
        .collect()
}

#[tokio::test]
async fn the_server_survives_mutated_requests() {
    let responder = responder(greeter(), Controls::default());
    let seeds = valid_requests();
    let mut rng = StdRng::seed_from_u64(0xA7_0C);
    let mut answered = 0;
    for round in 0..rounds() {
        let msg = mutate(&mut rng, &seeds[round % seeds.len()]);
        let mut conn = if round % 2 == 0 {
            Connection::stateless()
        } else {
            Connection::stateful()
        };
        match responder.accept(&mut conn, &msg) {
            Ok(Incoming::Reply(_)) => answered += 1,
            Ok(Incoming::Call(call)) => {
                // Only the cheap messages: "wait" could park on a gate.
                if call.request.message.name() != "wait" {
                    let response = responder.dispatch(call.request).await;
                    responder.finish(call.reply, response);
                    answered += 1;
                }
            }
            Err(_) => {}
        }
    }
    // Some mutations leave the message valid or answerable; most do not.
    assert!(answered > 0);
}

#[test]
fn framings_survive_mutated_input() {
    let limits = Limits::default();
    let mut rng = StdRng::seed_from_u64(0xF4A3E);
    let seeds = valid_requests();
    for round in 0..rounds() {
        let msg = &seeds[round % seeds.len()];
        let mut netty = BytesMut::new();
        wire::write_netty_frame(&mut netty, round as i32, msg);
        wire::write_netty_frame(&mut netty, -1, &msg[..msg.len() / 2]);
        let mut buf = BytesMut::from(&mutate(&mut rng, &netty)[..]);
        while let Ok(Some(_)) = wire::read_netty_frame(&mut buf, &limits) {}

        let body = wire::frame_buffers(msg, 7);
        let _ = wire::unframe_buffers(&mutate(&mut rng, &body), &limits);
    }
}

#[test]
fn reply_decoding_survives_mutated_responses() {
    // Valid responses for each message shape, then mutated.
    let p = greeter();
    let codec = AvroCodec::new();
    let limits = Limits::default();
    let mut seeds = Vec::new();
    for (name, value, is_error) in [
        ("hello", Value::String("hi".into()), false),
        ("echo", greeting(), false),
        ("add", Value::Long(7), false),
        (
            "refuse",
            Value::Union(
                1,
                Box::new(record(&[
                    ("reason", Value::String("r".into())),
                    ("code", Value::Int(3)),
                ])),
            ),
            true,
        ),
    ] {
        let m = p.message(name).unwrap();
        let mut out = Vec::new();
        wire::write_response_header(&mut out, &Metadata::new(), is_error);
        let schema = if is_error { m.errors() } else { m.response() };
        codec.encode(schema, &value, &mut out).unwrap();
        seeds.push((name, is_error, out));
    }
    let mut rng = StdRng::seed_from_u64(0x5EED);
    for round in 0..rounds() {
        let (name, is_error, bytes) = &seeds[round % seeds.len()];
        let m = p.message(name).unwrap();
        let mutated = mutate(&mut rng, bytes);
        let mut input = &mutated[..];
        if let Ok((_, flag)) = wire::read_response_header(&mut input, &limits) {
            let schema = if flag || *is_error {
                m.errors()
            } else {
                m.response()
            };
            let _ = codec.decode(schema, schema, &mut input, &limits);
        }
    }
}
