#!/usr/bin/env python3
"""Readiness probes for dev/stack: one real client round trip per server.

Each probe speaks the server's own wire protocol (standard library only, so it
works on a fresh machine before anything else is installed) and exits 0 only
when the server answered a real request:

  kafka HOST:PORT      Metadata request; ready when the broker lists itself
  cql HOST:PORT        STARTUP, then SELECT release_version FROM system.local
  redis HOST:PORT      PING -> +PONG
  memcached HOST:PORT  version -> VERSION x.y.z
  jaeger HOST:PORT     Jaeger query API: GET /api/services -> 200 with a JSON "data" field
  otlp HOST:PORT       OTLP/HTTP: POST an empty ExportTraceServiceRequest to /v1/traces -> 200

Prints one line describing what answered (or why not) and never waits longer
than --timeout seconds for a single attempt; dev/stack does the retrying.
"""

import argparse
import socket
import struct
import sys


class ProbeError(Exception):
    pass


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ProbeError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def kafka_string(s):
    raw = s.encode()
    return struct.pack(">h", len(raw)) + raw


def probe_kafka(sock):
    # Metadata v0 (api_key 3): an empty topic array asks for every topic.
    # Header v1: api_key, api_version, correlation_id, client_id.
    body = struct.pack(">hhi", 3, 0, 7) + kafka_string("cinerec-probe") + struct.pack(">i", 0)
    sock.sendall(struct.pack(">i", len(body)) + body)
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    if size <= 0 or size > 16 * 1024 * 1024:
        raise ProbeError("implausible response size %d" % size)
    resp = recv_exact(sock, size)
    correlation, brokers = struct.unpack(">ii", resp[:8])
    if correlation != 7:
        raise ProbeError("correlation id %d, expected 7" % correlation)
    if brokers < 1:
        raise ProbeError("metadata lists no broker yet")
    node_id, host_len = struct.unpack(">ih", resp[8:14])
    host = resp[14 : 14 + host_len].decode(errors="replace")
    (port,) = struct.unpack(">i", resp[14 + host_len : 18 + host_len])
    return "kafka metadata: %d broker(s), node %d at %s:%d" % (brokers, node_id, host, port)


def cql_frame(stream, opcode, body):
    # Native protocol v4 request frame header: version, flags, stream, opcode, length.
    return struct.pack(">BBhBi", 0x04, 0, stream, opcode, len(body)) + body


def cql_read(sock):
    version, _flags, stream, opcode, length = struct.unpack(">BBhBi", recv_exact(sock, 9))
    if version & 0x7F != 0x04 or length < 0 or length > 16 * 1024 * 1024:
        raise ProbeError("bad CQL frame header (version %#x, length %d)" % (version, length))
    return stream, opcode, recv_exact(sock, length)


def cql_error(body):
    code = struct.unpack(">i", body[:4])[0]
    (mlen,) = struct.unpack(">H", body[4:6])
    return "CQL error %#x: %s" % (code, body[6 : 6 + mlen].decode(errors="replace"))


def probe_cql(sock):
    key, value = b"CQL_VERSION", b"3.0.0"
    startup = struct.pack(">H", 1) + struct.pack(">H", len(key)) + key + struct.pack(">H", len(value)) + value
    sock.sendall(cql_frame(1, 0x01, startup))
    _, opcode, body = cql_read(sock)
    if opcode == 0x00:
        raise ProbeError(cql_error(body))
    if opcode != 0x02:  # READY
        raise ProbeError("STARTUP answered opcode %#x, expected READY" % opcode)
    query = b"SELECT release_version FROM system.local"
    # QUERY: long string, consistency ONE, no flags.
    sock.sendall(cql_frame(2, 0x07, struct.pack(">i", len(query)) + query + struct.pack(">HB", 0x0001, 0)))
    _, opcode, body = cql_read(sock)
    if opcode == 0x00:
        raise ProbeError(cql_error(body))
    if opcode != 0x08:  # RESULT
        raise ProbeError("QUERY answered opcode %#x, expected RESULT" % opcode)
    return "cql: system.local answered"


def read_line(sock, limit=4096):
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ProbeError("connection closed mid-line")
        buf += chunk
        if len(buf) > limit:
            raise ProbeError("line longer than %d bytes" % limit)
    return buf[:-2].decode(errors="replace")


def probe_redis(sock):
    sock.sendall(b"*1\r\n$4\r\nPING\r\n")
    line = read_line(sock)
    if line != "+PONG":
        raise ProbeError("PING answered %r" % line)
    return "redis: PONG"


def probe_memcached(sock):
    sock.sendall(b"version\r\n")
    line = read_line(sock)
    if not line.startswith("VERSION "):
        raise ProbeError("version answered %r" % line)
    return "memcached: " + line


def http_request(sock, method, path, body=b"", content_type=None):
    """One HTTP/1.1 request with Connection: close; returns (status, body)."""
    head = "%s %s HTTP/1.1\r\nHost: probe\r\nConnection: close\r\nContent-Length: %d\r\n" % (method, path, len(body))
    if content_type:
        head += "Content-Type: %s\r\n" % content_type
    sock.sendall(head.encode() + b"\r\n" + body)
    raw = b""
    while len(raw) < 1024 * 1024:
        chunk = sock.recv(65536)
        if not chunk:
            break
        raw += chunk
    status_line, _, rest = raw.partition(b"\r\n")
    parts = status_line.split(b" ")
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise ProbeError("not an HTTP answer: %r" % status_line[:80])
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(parts[1]), payload


def probe_jaeger(sock):
    status, payload = http_request(sock, "GET", "/api/services")
    if status != 200 or b'"data"' not in payload:
        raise ProbeError("GET /api/services answered %d %r" % (status, payload[:80]))
    return "jaeger query: /api/services answered"


def probe_otlp(sock):
    # An empty protobuf message is a valid ExportTraceServiceRequest with no spans.
    status, payload = http_request(sock, "POST", "/v1/traces", b"", "application/x-protobuf")
    if status != 200:
        raise ProbeError("POST /v1/traces answered %d %r" % (status, payload[:80]))
    return "otlp: /v1/traces accepted an empty export"


PROBES = {
    "kafka": probe_kafka,
    "cql": probe_cql,
    "redis": probe_redis,
    "memcached": probe_memcached,
    "jaeger": probe_jaeger,
    "otlp": probe_otlp,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=sorted(PROBES))
    parser.add_argument("address", help="HOST:PORT")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    host, _, port = args.address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=args.timeout) as sock:
            sock.settimeout(args.timeout)
            print(PROBES[args.kind](sock))
    except (OSError, ProbeError, struct.error) as err:
        print("%s %s not ready: %s" % (args.kind, args.address, err))
        sys.exit(1)


if __name__ == "__main__":
    main()
