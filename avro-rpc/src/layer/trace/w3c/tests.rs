//! `traceparent` parsing and formatting per the W3C Trace Context spec.

use super::*;

const SAMPLE: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn parses_and_formats_the_spec_example() {
    let tp = TraceParent::parse(SAMPLE).expect("valid");
    assert_eq!(tp.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
    assert_eq!(tp.parent_id, 0x00f067aa0ba902b7);
    assert_eq!(tp.flags, 1);
    assert!(tp.sampled());
    assert_eq!(tp.to_string().as_bytes(), SAMPLE);
}

#[test]
fn rejects_malformed_values() {
    for bad in [
        &b""[..],
        b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // uppercase
        b"00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent id
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
        b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  // short trace id
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",  // short flags
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // v00 with extra
        b"0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01", // not hex
        b"00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        b"\xff\xfe",
    ] {
        assert_eq!(
            TraceParent::parse(bad),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn accepts_a_future_version_with_more_fields() {
    let v = b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever";
    let tp = TraceParent::parse(v).expect("future versions parse as 00");
    assert_eq!(tp.parent_id, 0x00f067aa0ba902b7);
}

#[test]
fn roots_and_children() {
    let root = TraceParent::root();
    assert!(root.sampled() && root.trace_id != 0 && root.parent_id != 0);
    let child = root.child();
    assert_eq!((child.trace_id, child.flags), (root.trace_id, root.flags));
    assert_ne!(child.parent_id, root.parent_id);
    assert_ne!(TraceParent::root().trace_id, root.trace_id);
    assert_eq!(
        TraceParent::parse(child.to_string().as_bytes()),
        Some(child)
    );
}

#[tokio::test]
async fn injector_continues_the_current_context() {
    let mut m = Metadata::new();
    injector()(&mut m);
    let fresh = TraceParent::from_metadata(&m).expect("a root is injected");
    let parent = TraceParent::parse(SAMPLE).unwrap();
    let mut m = Metadata::new();
    scope(Some(parent), async { injector()(&mut m) }).await;
    let sent = TraceParent::from_metadata(&m).expect("injected");
    assert_eq!(sent.trace_id, parent.trace_id);
    assert_ne!(sent.parent_id, parent.parent_id);
    assert_ne!(sent.trace_id, fresh.trace_id);
    assert_eq!(current(), None, "the scope ended");
}
