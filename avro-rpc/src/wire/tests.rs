//! Unit tests for `wire`: varints, metadata, handshake records and framing,
//! including every malformed-input path returning an error.

use super::*;

#[test]
fn varints_round_trip() {
    for v in [
        0i64,
        1,
        -1,
        63,
        -64,
        64,
        300,
        i32::MAX as i64,
        i64::MAX,
        i64::MIN,
    ] {
        let mut out = Vec::new();
        write_long(&mut out, v);
        let mut input = &out[..];
        assert_eq!(read_long(&mut input).unwrap(), v);
        assert!(input.is_empty());
    }
    let mut out = Vec::new();
    write_long(&mut out, -3);
    assert_eq!(out, [5]); // zig-zag as the spec shows
}

#[test]
fn bad_varints_are_errors() {
    assert!(read_long(&mut &[0x80u8, 0x80][..]).is_err());
    assert!(read_long(&mut &[0xffu8; 11][..]).is_err());
    assert!(
        read_long(&mut &[0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02][..])
            .is_err()
    );
    assert!(read_long(&mut &[][..]).is_err());
}

#[test]
fn lengths_are_bounded_by_limit_and_input() {
    let mut out = Vec::new();
    write_long(&mut out, 1_000_000);
    assert!(read_len(&mut &out[..], 10).is_err());
    assert!(read_len(&mut &out[..], usize::MAX).is_err()); // past the end
    let mut out = Vec::new();
    write_long(&mut out, -1);
    assert!(read_len(&mut &out[..], 10).is_err());
}

#[test]
fn metadata_round_trips_and_is_bounded() {
    let mut meta = Metadata::new();
    meta.insert("a".into(), Bytes::from_static(b"1"));
    meta.insert("trace".into(), Bytes::from_static(&[0, 255]));
    let mut out = Vec::new();
    write_metadata(&mut out, &meta);
    let limits = Limits::default();
    assert_eq!(read_metadata(&mut &out[..], &limits).unwrap(), meta);
    let tight = Limits {
        max_metadata_entries: 1,
        ..Limits::default()
    };
    assert!(read_metadata(&mut &out[..], &tight).is_err());
    // A huge count with no data fails fast rather than looping or allocating.
    let mut out = Vec::new();
    write_long(&mut out, i64::MAX);
    assert!(read_metadata(&mut &out[..], &limits).is_err());
    // Negative block count (with byte size) is accepted.
    let mut out = Vec::new();
    write_long(&mut out, -1);
    write_long(&mut out, 4);
    write_bytes(&mut out, b"k");
    write_bytes(&mut out, b"v");
    write_long(&mut out, 0);
    assert_eq!(read_metadata(&mut &out[..], &limits).unwrap().len(), 1);
}

#[test]
fn handshake_records_round_trip_and_match_the_spec_layout() {
    let limits = Limits::default();
    let req = HandshakeRequest {
        client_hash: Md5Hash([1; 16]),
        client_protocol: Some("{}".into()),
        server_hash: Md5Hash([2; 16]),
        meta: None,
    };
    let mut out = Vec::new();
    req.encode(&mut out);
    // fixed(16), union index 1 + string, fixed(16), union index 0.
    assert_eq!(out.len(), 16 + 1 + 1 + 2 + 16 + 1);
    assert_eq!(&out[16..20], &[2, 4, b'{', b'}']);
    assert_eq!(
        HandshakeRequest::decode(&mut &out[..], &limits).unwrap(),
        req
    );

    for m in [
        HandshakeMatch::Both,
        HandshakeMatch::Client,
        HandshakeMatch::None,
    ] {
        let resp = HandshakeResponse {
            match_: m,
            server_protocol: None,
            server_hash: Some(Md5Hash([3; 16])),
            meta: Some(Metadata::new()),
        };
        let mut out = Vec::new();
        resp.encode(&mut out);
        assert_eq!(
            HandshakeResponse::decode(&mut &out[..], &limits).unwrap(),
            resp
        );
    }
    assert!(HandshakeResponse::decode(&mut &[6u8][..], &limits).is_err()); // enum index 3
    for n in 0..out.len() {
        assert!(HandshakeRequest::decode(&mut &out[..n], &limits).is_err());
    }
}

#[test]
fn buffer_framing_round_trips_and_rejects_bad_frames() {
    let limits = Limits::default();
    let msg: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
    let framed = frame_buffers(&msg, 8192);
    assert_eq!(framed.len(), msg.len() + 4 * 3 + 4);
    assert_eq!(&framed[..4], &8192u32.to_be_bytes());
    assert_eq!(&framed[framed.len() - 4..], &[0, 0, 0, 0]);
    assert_eq!(unframe_buffers(&framed, &limits).unwrap(), msg);
    for n in 0..framed.len() - 1 {
        assert!(
            unframe_buffers(&framed[..n], &limits).is_err(),
            "truncated at {n}"
        );
    }
    let mut trailing = framed.to_vec();
    trailing.push(0);
    assert!(unframe_buffers(&trailing, &limits).is_err());
    let small = Limits {
        max_message_bytes: 10_000,
        ..Limits::default()
    };
    assert!(unframe_buffers(&framed, &small).is_err());
    let huge = [0xff, 0xff, 0xff, 0xff, 1];
    assert!(unframe_buffers(&huge, &limits).is_err());
}

#[test]
fn netty_frames_round_trip_incrementally() {
    let limits = Limits::default();
    let mut wire_bytes = BytesMut::new();
    write_netty_frame(&mut wire_bytes, 7, b"hello");
    write_netty_frame(&mut wire_bytes, -2, b"");
    assert_eq!(&wire_bytes[..12], &[0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 5]);
    let all = wire_bytes.freeze();
    // Feed byte by byte: frames appear only once complete.
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for b in all.iter() {
        buf.extend_from_slice(&[*b]);
        while let Some(f) = read_netty_frame(&mut buf, &limits).unwrap() {
            got.push(f);
        }
    }
    assert_eq!(
        got,
        vec![(7, Bytes::from_static(b"hello")), (-2, Bytes::new())]
    );
    assert!(buf.is_empty());
}

#[test]
fn netty_frames_with_several_buffers_are_joined() {
    let mut buf = BytesMut::new();
    buf.put_i32(1);
    buf.put_i32(2);
    buf.put_i32(2);
    buf.put_slice(b"ab");
    buf.put_i32(1);
    buf.put_slice(b"c");
    let got = read_netty_frame(&mut buf, &Limits::default()).unwrap();
    assert_eq!(got, Some((1, Bytes::from_static(b"abc"))));
}

#[test]
fn oversized_or_negative_netty_headers_fail_before_the_body_arrives() {
    let limits = Limits::default();
    let mut buf = BytesMut::new();
    buf.put_i32(1);
    buf.put_i32(-1);
    assert!(read_netty_frame(&mut buf, &limits).is_err());
    let mut buf = BytesMut::new();
    buf.put_i32(1);
    buf.put_i32(i32::MAX);
    assert!(read_netty_frame(&mut buf, &limits).is_err());
    let mut buf = BytesMut::new();
    buf.put_i32(1);
    buf.put_i32(1);
    buf.put_i32(i32::MAX); // 2 GiB buffer announced, nothing sent
    assert!(read_netty_frame(&mut buf, &limits).is_err());
    let mut buf = BytesMut::new();
    buf.put_i32(1);
    buf.put_i32(1);
    buf.put_i32(-5);
    assert!(read_netty_frame(&mut buf, &limits).is_err());
}
