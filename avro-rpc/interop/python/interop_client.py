#!/usr/bin/env python3
"""Python `avro` (PyPI) half of avro-rpc's interop tests: an HTTP client.

The contract is ../README.md (protocols, values, server behaviour) and
./README.md (this process's arguments and output). Uses only the public IPC
API of avro 1.12: `avro.ipc.HTTPTransceiver` + `avro.ipc.Requestor`.

  interop_client.py --port N [--proto v1|v2|simple] [--server-proto v1|v2]

Prints `PASS name` / `FAIL name: why` per check, then `<n> passed, <m>
failed`; exit 0 iff every check passed (2 on usage errors).
"""

import argparse
import concurrent.futures
import io
import json
import math
import os
import struct
import sys
import threading
import time

import avro.errors
import avro.io
import avro.ipc
import avro.protocol

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOCOLS = os.path.join(HERE, "..", "protocols")
GOLDEN = os.path.join(HERE, "..", "golden", "datum")
NS = "org.cinerec.interop."
ITEMS = ["canonical", "minimal", "extremes", "textual"]
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1


def load_protocol(name):
    file = {"v1": "interop.avpr", "v2": "interop-v2.avpr", "simple": "simple.avpr"}[name]
    with open(os.path.join(PROTOCOLS, file), encoding="utf-8") as f:
        return avro.protocol.parse(f.read())


def load_json(name):
    file = {"v1": "interop.avpr", "v2": "interop-v2.avpr", "simple": "simple.avpr"}[name]
    with open(os.path.join(PROTOCOLS, file), encoding="utf-8") as f:
        return json.load(f)


def golden(file, schema):
    with open(os.path.join(GOLDEN, file), encoding="ascii") as f:
        data = bytes.fromhex("".join(f.read().split()))
    return avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(data)))


def wrap64(n):
    return (n + (1 << 63)) % (1 << 64) - (1 << 63)


def differ(path, expected, got):
    """The first difference as text, or None: exact types, floats by bits."""
    if type(expected) is not type(got):
        return f"{path}: expected {expected!r:.200}, got {got!r:.200}"
    if isinstance(expected, dict):
        if sorted(expected) != sorted(got):
            return f"{path}: expected keys {sorted(expected)}, got {sorted(got)}"
        for k in expected:
            d = differ(f"{path}.{k}", expected[k], got[k])
            if d:
                return d
        return None
    if isinstance(expected, list):
        if len(expected) != len(got):
            return f"{path}: expected {len(expected)} elements, got {len(got)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            d = differ(f"{path}[{i}]", e, g)
            if d:
                return d
        return None
    if isinstance(expected, float):
        same = struct.pack("<d", expected) == struct.pack("<d", got)
    else:
        same = expected == got
    return None if same else f"{path}: expected {expected!r:.200}, got {got!r:.200}"


def same(what, expected, got):
    d = differ(what, expected, got)
    if d:
        raise AssertionError(d)


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, fn):
        try:
            fn()
            self.passed += 1
            print(f"PASS {name}", flush=True)
        except Exception as e:  # every failure is reported, none stops the run
            self.failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)


class Peer:
    """One HTTP connection and one Requestor, as Avro's Python docs show."""

    def __init__(self, port, protocol):
        self.transceiver = avro.ipc.HTTPTransceiver("127.0.0.1", port)
        self.requestor = avro.ipc.Requestor(protocol, self.transceiver)

    def call(self, message_name, /, **params):
        return self.requestor.request(message_name, params)

    def error(self, message_name, /, **params):
        try:
            got = self.call(message_name, **params)
        except avro.errors.AvroRemoteException as e:
            return e.args[0]
        raise AssertionError(f"{message_name}: expected an error, got result {got!r:.200}")

    def close(self):
        self.transceiver.close()


def interop_checks(args, checks):
    cv, sv = args.proto, args.server_proto or args.proto
    protocol = load_protocol(cv)
    item_schema = protocol.types_dict["Item"] if "Item" in protocol.types_dict else protocol.types_dict[NS + "Item"]
    summary_schema = protocol.types_dict.get("Summary") or protocol.types_dict[NS + "Summary"]
    peer = Peer(args.port, protocol)

    def ping():
        # The first call is also the handshake: Python hashes its own JSON, so
        # the Rust server answers NONE with its protocol, and Python resends.
        same("nop", None, peer.call("nop"))
        remote = peer.requestor.remote_protocol
        if remote is None or remote.fullname != NS + "Interop":
            raise AssertionError(f"server protocol is {remote and remote.fullname}")
        item = remote.types_dict.get("Item") or remote.types_dict[NS + "Item"]
        has_priority = any(f.name == "priority" for f in item.fields)
        if has_priority != (sv == "v2"):
            raise AssertionError(f"server protocol is not {sv}")
        if peer.requestor.send_protocol:
            raise AssertionError("handshake did not complete")

    checks.run("ping", ping)
    checks.run("nop", lambda: same("nop", None, peer.call("nop")))
    for name, a, b, s in [
        ("add.small", 40, 2, 42),
        ("add.negative", -5, 3, -2),
        ("add.large", 1 << 40, -(1 << 41), -(1 << 40)),
        ("add.wrap", I64_MAX, 1, I64_MIN),
    ]:
        checks.run(name, lambda a=a, b=b, s=s: same("result", s, peer.call("add", a=a, b=b)))

    def echo_expected(which):
        item = golden(f"item-{which}.{cv}.hex", item_schema)
        if cv == "v2" and sv == "v1":
            item["priority"] = 7
        if cv == "v1" and sv == "v2":
            for p in [item["main"], *item["parts"]]:
                p["legacy"] = "legacy-default"
            if isinstance(item["extra"], dict):
                item["extra"]["legacy"] = "legacy-default"
        return item

    for which in ITEMS:
        checks.run(f"echo.{which}", lambda w=which: same(
            "item", echo_expected(w), peer.call("echo", item=golden(f"item-{w}.{cv}.hex", item_schema))))
    for which in ITEMS:
        checks.run(f"summarize.{which}", lambda w=which: same(
            "summary", golden(f"summary-{w}.hex", summary_schema),
            peer.call("summarize", item=golden(f"item-{w}.{cv}.hex", item_schema))))

    def range_expected(start, count):
        parts = []
        for i in range(count):
            n = wrap64(start + i)
            p = {"name": f"part-{n}", "weight": wrap64(n * 10)}
            if cv == "v1":
                p["legacy"] = "legacy-default" if sv == "v2" else f"legacy-{n}"
            parts.append(p)
        return parts

    for name, start, count in [("range.small", 5, 3), ("range.empty", 0, 0), ("range.large", -2, 1000)]:
        checks.run(name, lambda s=start, c=count: same(
            "parts", range_expected(s, c), peer.call("range", start=s, count=c)))

    def declared(code, message):
        return {"code": code, "message": message, "retryable": code >= 500,
                "detail": f"detail for {code}" if code % 2 else None}

    for name, count in [("range.error.negative", -1), ("range.error.too-big", 10001)]:
        checks.run(name, lambda c=count: same(
            "error", declared(400, f"count out of range: {c}"), peer.error("range", start=0, count=c)))
    checks.run("fail.ok", lambda: same("result", "ok: fine", peer.call("fail", code=0, message="fine")))
    checks.run("fail.declared-404", lambda: same(
        "error", declared(404, "not found"), peer.error("fail", code=404, message="not found")))
    checks.run("fail.declared-503", lambda: same(
        "error", declared(503, "unavailable"), peer.error("fail", code=503, message="unavailable")))
    checks.run("fail.undeclared", lambda: same(
        "error", "undeclared: boom", peer.error("fail", code=-1, message="boom")))

    channel = f"py-http-{cv}-{os.getpid()}-{time.time_ns()}"
    checks.run("drain.empty", lambda: same("events", [], peer.call("drain", channel=channel)))

    def notify():
        # avro 1.12.2's Message keeps no one-way flag (it accepts and drops
        # "one-way", and leaves it out of the protocol text it sends), so
        # Python calls notify like a two-way message; over HTTP the server
        # answers a one-way call with an empty (null) response either way.
        if '"one-way"' in str(protocol) or not load_json(cv)["messages"]["notify"].get("one-way"):
            raise AssertionError("expected avro to drop the one-way flag the .avpr declares")
        for e in ["e1", "e2", "e3"]:
            same("notify", None, peer.call("notify", channel=channel, event=e))
        got, deadline = [], time.monotonic() + args.call_timeout_ms / 1000
        while len(got) < 3 and time.monotonic() < deadline:
            got += peer.call("drain", channel=channel)
            if len(got) < 3:
                time.sleep(0.02)
        same("drained", ["e1", "e2", "e3"], sorted(got))
        same("second drain", [], peer.call("drain", channel=channel))

    checks.run("notify.one-way", notify)

    def concurrent_calls():
        # Python's HTTPTransceiver is one blocking connection: 32 calls in
        # flight means 8 threads, each with its own connection and Requestor.
        local = threading.local()

        def one(i):
            if not hasattr(local, "peer"):
                local.peer = Peer(args.port, protocol)
            return i, local.peer.call("add", a=i, b=1000 * i)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for i, got in pool.map(one, range(32)):
                same(f"add#{i}", 1001 * i, got)

    checks.run("concurrent", concurrent_calls)

    def reconnect():
        p2 = Peer(args.port, protocol)
        try:
            same("result", 7, p2.call("add", a=3, b=4))
        finally:
            p2.close()

    checks.run("reconnect", reconnect)
    peer.close()


def simple_checks(args, checks):
    protocol = load_protocol("simple")
    peer = Peer(args.port, protocol)
    record = {"name": "foo", "kind": "BAR", "hash": b"0123456789abcdef"}
    checks.run("simple.hello", lambda: same("hello", "goodbye", peer.call("hello", greeting="bonjour")))
    checks.run("simple.echo", lambda: same("echo", record, peer.call("echo", record=record)))
    checks.run("simple.add", lambda: same("add", 3, peer.call("add", arg1=1, arg2=2)))
    data = bytes([0, 1, 2, 0xFE, 0xFF])
    checks.run("simple.echoBytes", lambda: same("echoBytes", data, peer.call("echoBytes", data=data)))
    checks.run("simple.error", lambda: same("error", {"message": "an error"}, peer.error("error")))

    def ack():
        same("ack", None, peer.call("ack"))
        same("add after ack", 5, peer.call("add", arg1=2, arg2=3))

    checks.run("simple.ack", ack)
    peer.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--proto", choices=["v1", "v2", "simple"], default="v1")
    parser.add_argument("--server-proto", choices=["v1", "v2"])
    parser.add_argument("--call-timeout-ms", type=int, default=5000)
    parser.add_argument("--max-seconds", type=float, default=120)
    args = parser.parse_args()

    def give_up():
        print("FAIL client: --max-seconds elapsed", flush=True)
        os._exit(2)

    timer = threading.Timer(args.max_seconds, give_up)
    timer.daemon = True
    timer.start()
    # Every socket the transceivers open gets a deadline, so a silent server
    # fails checks instead of hanging them.
    import socket
    socket.setdefaulttimeout(args.call_timeout_ms / 1000)

    checks = Checks()
    try:
        (simple_checks if args.proto == "simple" else interop_checks)(args, checks)
    except Exception as e:
        checks.failed += 1
        print(f"FAIL client: {type(e).__name__}: {e}", flush=True)
    print(f"{checks.passed} passed, {checks.failed} failed", flush=True)
    sys.exit(0 if checks.failed == 0 and checks.passed > 0 else 1)


if __name__ == "__main__":
    main()
