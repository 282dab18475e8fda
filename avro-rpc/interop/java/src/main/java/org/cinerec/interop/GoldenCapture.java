package org.cinerec.interop;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.apache.avro.Protocol;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.ipc.CallFuture;
import org.apache.avro.ipc.HandshakeRequest;
import org.apache.avro.ipc.HandshakeResponse;
import org.apache.avro.ipc.HttpTransceiver;
import org.apache.avro.ipc.Server;
import org.apache.avro.ipc.Transceiver;
import org.apache.avro.ipc.generic.GenericRequestor;
import org.apache.avro.ipc.jetty.HttpServer;
import org.apache.avro.ipc.netty.NettyServer;
import org.apache.avro.ipc.netty.NettyTransceiver;
import org.apache.avro.specific.SpecificDatumReader;

/**
 * Records the exact bytes a Java client and server exchange (HTTP bodies, Netty
 * frames) for a fixed call sequence, plus single datums, as hex files under the
 * given directory, with a MANIFEST.md that decodes each file.
 *
 * <pre>
 * GoldenCapture OUT_DIR
 * </pre>
 *
 * Everything is in-process on 127.0.0.1 (a recording TCP relay sits between the
 * Java client and the Java server). Each session uses a fresh server and a fresh
 * remote address, so the first call meets an empty handshake cache on both sides.
 */
public final class GoldenCapture {
  private static final Map<String, Schema> META = Map.of();

  private final Path out;
  private final Protocol v1;
  private final Values values;
  private final StringBuilder manifest = new StringBuilder();

  private GoldenCapture(Path out) throws IOException {
    this.out = out;
    this.v1 = Protocols.load("v1");
    this.values = new Values(v1);
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 1) {
      System.err.println("usage: GoldenCapture OUT_DIR");
      System.exit(2);
    }
    Thread watchdog = new Thread(() -> {
      try {
        TimeUnit.SECONDS.sleep(120);
      } catch (InterruptedException e) {
        return;
      }
      System.err.println("GoldenCapture: timed out");
      Runtime.getRuntime().halt(2);
    });
    watchdog.setDaemon(true);
    watchdog.start();
    try {
      new GoldenCapture(Path.of(args[0])).run();
    } catch (Throwable t) {
      t.printStackTrace();
      Runtime.getRuntime().halt(1);
    }
    Runtime.getRuntime().halt(0);
  }

  // ------------------------------------------------------------ sequence

  /** One client action of a session. */
  private static final class Step {
    final String label, message;
    final GenericRecord params;
    final boolean oneWay;

    Step(String label, String message, GenericRecord params, boolean oneWay) {
      this.label = label;
      this.message = message;
      this.params = params;
      this.oneWay = oneWay;
    }
  }

  private static GenericRecord params(Protocol p, String message, Object... kv) {
    GenericRecord r = new GenericData.Record(p.getMessages().get(message).getRequest());
    for (int i = 0; i < kv.length; i += 2)
      r.put((String) kv[i], kv[i + 1]);
    return r;
  }

  private List<Step> callSequence() {
    Protocol p = v1;
    return List.of(new Step("add(40,2)", "add", params(p, "add", "a", 40L, "b", 2L), false),
        new Step("echo(canonical)", "echo", params(p, "echo", "item", values.item("canonical")), false),
        new Step("range(0,2)", "range", params(p, "range", "start", 0L, "count", 2), false),
        new Step("fail(503,\"unavailable\")", "fail", params(p, "fail", "code", 503, "message", "unavailable"),
            false),
        new Step("fail(-1,\"boom\")", "fail", params(p, "fail", "code", -1, "message", "boom"), false),
        new Step("notify(\"golden\",\"e1\")", "notify", params(p, "notify", "channel", "golden", "event", "e1"),
            true));
  }

  /** A v2 client calling a v1 server: handshake NONE, then a retry carrying the client's protocol. */
  private List<Step> evolvedSequence() throws IOException {
    Protocol p = Protocols.load("v2");
    Values v = new Values(p);
    return List.of(new Step("add(40,2)", "add", params(p, "add", "a", 40L, "b", 2L), false),
        new Step("echo(textual)", "echo", params(p, "echo", "item", v.item("textual")), false));
  }

  private void run() throws Exception {
    Files.createDirectories(out);
    line("# Golden bytes from the Java reference implementation");
    line("");
    line("Generated by `GoldenCapture` (avro-rpc/interop/java, `run-java.sh golden`) with Avro "
        + org.apache.avro.Protocol.class.getPackage().getImplementationVersion()
        + " (avro-ipc, avro-ipc-netty, avro-ipc-jetty), protocol `interop.avpr` (v1). "
        + "A recording TCP relay sat between a Java `GenericRequestor` and a Java `GenericResponder`.");
    line("Hex files: lowercase hex, 32 bytes per line; whitespace is not significant.");
    line("");
    protocolTexts();
    datums();
    Protocol v2 = Protocols.load("v2");
    for (String t : new String[] { "netty", "http" }) {
      session(t, "ping", v1, v1, null,
          "v1 client, v1 server: `getRemote()` on a fresh requestor sends a ping (empty message name). "
              + "The server knows its own protocol's hash, so the match is BOTH at once; "
              + "a ping response is the handshake response alone.");
      session(t, "calls", v1, v1, callSequence(),
          "v1 client, v1 server: handshake on the first call (BOTH at once: same protocol, same hash), "
              + "then a declared error, an undeclared (string) error and a one-way message.");
      session(t, "evolved", v2, v1, evolvedSequence(),
          "v2 client, v1 server: the first request (no clientProtocol, serverHash = the client's guess = its own "
              + "hash) gets NONE with the server's protocol; the client resends with clientProtocol and gets BOTH. "
              + "The server resolves the v2 request to v1; the client resolves the v1 response to v2.");
    }
    Files.writeString(out.resolve("MANIFEST.md"), manifest.toString());
    System.err.println("GoldenCapture: wrote " + out.toAbsolutePath());
  }

  private void line(String s) {
    manifest.append(s).append('\n');
  }

  // -------------------------------------------------------------- files

  private void writeHex(String rel, byte[] bytes) throws IOException {
    Path p = out.resolve(rel);
    Files.createDirectories(p.getParent());
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < bytes.length; i += 32) {
      sb.append(Values.hex(Arrays.copyOfRange(bytes, i, Math.min(bytes.length, i + 32)))).append('\n');
    }
    Files.writeString(p, sb.toString());
  }

  private void protocolTexts() throws IOException {
    line("## Protocol texts and hashes");
    line("");
    line("Java sends `Protocol.toString()` (not the .avpr file text) as `clientProtocol`/`serverProtocol` "
        + "and hashes exactly that text with MD5.");
    line("");
    for (String v : new String[] { "v1", "v2" }) {
      Protocol p = Protocols.load(v);
      String text = p.toString();
      Files.writeString(out.resolve("java-protocol-" + v + ".json"), text);
      line("- `java-protocol-" + v + ".json` (" + text.getBytes(StandardCharsets.UTF_8).length
          + " bytes): MD5 `" + Values.hex(p.getMD5()) + "`");
    }
    line("");
  }

  private void datums() throws IOException {
    line("## Datums (`datum/`)");
    line("");
    line("Avro binary encoding of single values (no framing) as written by `GenericDatumWriter`. "
        + "Map entries are written in the order listed in README.md.");
    line("");
    for (String v : new String[] { "v1", "v2" }) {
      Values vals = new Values(Protocols.load(v));
      for (String which : Values.ITEM_NAMES) {
        byte[] b = encode(vals.type("Item"), vals.item(which));
        String rel = "datum/item-" + which + "." + v + ".hex";
        writeHex(rel, b);
        line("- `" + rel + "`: Item `" + which + "` (" + v + "), " + b.length + " bytes");
      }
    }
    for (String which : Values.ITEM_NAMES) {
      byte[] b = encode(values.type("Summary"), values.summarize(values.item(which)));
      String rel = "datum/summary-" + which + ".hex";
      writeHex(rel, b);
      line("- `" + rel + "`: Summary of `" + which + "`, " + b.length + " bytes");
    }
    line("");
  }

  private static byte[] encode(Schema s, Object datum) throws IOException {
    ByteArrayOutputStream bos = new ByteArrayOutputStream();
    BinaryEncoder enc = EncoderFactory.get().binaryEncoder(bos, null);
    new GenericDatumWriter<Object>(s).write(datum, enc);
    enc.flush();
    return bos.toByteArray();
  }

  // ------------------------------------------------------------ sessions

  private Protocol clientProto, serverProto;

  private void session(String transport, String name, Protocol client, Protocol server_, List<Step> steps,
      String what) throws Exception {
    this.clientProto = client;
    this.serverProto = server_;
    InteropResponder responder = new InteropResponder(server_);
    Server server = transport.equals("netty") ? new NettyServer(responder, new InetSocketAddress("127.0.0.1", 0))
        : new HttpServer(responder, "127.0.0.1", 0);
    server.start();
    Relay relay = new Relay(server.getPort());
    Transceiver t = transport.equals("netty") ? new NettyTransceiver(new InetSocketAddress("127.0.0.1", relay.port()))
        : new HttpTransceiver(new java.net.URL("http://127.0.0.1:" + relay.port() + "/"));
    GenericRequestor req = new GenericRequestor(client, t);
    List<String> labels = new ArrayList<>();
    if (steps == null) {
      req.getRemote(); // ping: handshake + empty message name
      labels.add("ping");
    } else {
      for (Step s : steps) {
        CallFuture<Object> f = new CallFuture<>();
        req.request(s.message, s.params, f);
        try {
          f.get(10, TimeUnit.SECONDS);
        } catch (java.util.concurrent.ExecutionException e) {
          // error responses are part of the sequence
        }
        labels.add(s.label);
      }
    }
    Thread.sleep(300); // let the relay see the last bytes (one-way messages have no reply)
    t.close();
    Thread.sleep(200);
    relay.close();
    server.close();

    String dir = transport + "/" + name;
    line("## `" + dir + "/`");
    line("");
    line(what);
    line("");
    if (transport.equals("netty")) {
      nettyFiles(dir, relay, labels);
    } else {
      httpFiles(dir, relay, labels);
    }
    line("");
  }

  private void nettyFiles(String dir, Relay relay, List<String> labels) throws IOException {
    if (relay.conns.size() != 1)
      throw new IllegalStateException("expected one Netty connection, saw " + relay.conns.size());
    Relay.Conn c = relay.conns.get(0);
    byte[] up = c.c2s.toByteArray(), down = c.s2c.toByteArray();
    writeHex(dir + "/stream.c2s.hex", up);
    writeHex(dir + "/stream.s2c.hex", down);
    line("Netty framing: each frame is `serial` (int32 BE), `count` (int32 BE), then `count` times "
        + "(`length` int32 BE, bytes). No zero-length terminator. `stream.c2s.hex` / `stream.s2c.hex` are the "
        + "whole TCP byte streams; `NN.c2s.hex` / `NN.s2c.hex` are single frames, in order (a missing `NN.s2c.hex` means no reply).");
    line("");
    List<byte[][]> reqs = frames(up), resps = frames(down);
    boolean connected = false;
    int r = 0, li = 0;
    boolean retry = false;
    for (int i = 0; i < reqs.size(); i++) {
      String label = li < labels.size() ? labels.get(li) : "?";
      if (retry)
        label += " (resent after NONE)";
      byte[][] fr = reqs.get(i);
      String base = String.format("%s/%02d", dir, i + 1);
      writeHex(base + ".c2s.hex", frameBytes(fr));
      line(String.format("- `%02d.c2s.hex` %s: serial %d, buffers %s", i + 1, label, serial(fr),
          bufferLengths(fr)));
      line("  - " + describeRequest(concat(fr), !connected));
      boolean oneWay = label.startsWith("notify");
      if (oneWay && connected) {
        line("  - one-way on an established connection: the server sends no frame back");
        li++;
        continue;
      }
      byte[][] rf = resps.get(r++);
      writeHex(base + ".s2c.hex", frameBytes(rf));
      line(String.format("- `%02d.s2c.hex`: serial %d, buffers %s", i + 1, serial(rf), bufferLengths(rf)));
      String[] d = describeResponse(concat(rf), !connected, label);
      line("  - " + d[0]);
      if (d[1].equals("BOTH") || d[1].equals("CLIENT"))
        connected = true;
      retry = d[1].equals("NONE");
      if (!retry)
        li++;
    }
    if (r != resps.size())
      throw new IllegalStateException("unmatched server frames: " + (resps.size() - r));
  }

  private void httpFiles(String dir, Relay relay, List<String> labels) throws IOException {
    List<byte[]> reqs = new ArrayList<>(), resps = new ArrayList<>();
    List<String> reqHeads = new ArrayList<>(), respHeads = new ArrayList<>();
    for (Relay.Conn c : relay.conns) {
      httpMessages(c.c2s.toByteArray(), reqs, reqHeads);
      httpMessages(c.s2c.toByteArray(), resps, respHeads);
    }
    if (reqs.size() != resps.size())
      throw new IllegalStateException("HTTP requests " + reqs.size() + " vs responses " + resps.size());
    Files.createDirectories(out.resolve(dir));
    Files.writeString(out.resolve(dir + "-request-head.txt"), normalize(reqHeads.get(0)));
    Files.writeString(out.resolve(dir + "-response-head.txt"), normalize(respHeads.get(0)));
    line("HTTP bodies only (`NN.request.hex`, `NN.response.hex`): a list of buffers, each `length` (int32 BE) "
        + "+ bytes, ended by a zero length. Every request carries a handshake (HTTP is stateless). "
        + "Heads of the first exchange: `" + dir + "-request-head.txt`, `" + dir
        + "-response-head.txt` (port and date replaced). " + relay.conns.size() + " TCP connection(s) were used.");
    line("");
    int li = 0;
    boolean retry = false;
    for (int i = 0; i < reqs.size(); i++) {
      String label = li < labels.size() ? labels.get(li) : "?";
      if (retry)
        label += " (resent after NONE)";
      String base = String.format("%s/%02d", dir, i + 1);
      byte[][] rb = httpBuffers(reqs.get(i)), sb = httpBuffers(resps.get(i));
      writeHex(base + ".request.hex", reqs.get(i));
      writeHex(base + ".response.hex", resps.get(i));
      line(String.format("- `%02d.request.hex` %s: %d bytes, buffers %s", i + 1, label, reqs.get(i).length,
          bufferLengths(rb)));
      line("  - " + describeRequest(concat(rb), true));
      line(String.format("- `%02d.response.hex`: %d bytes, buffers %s", i + 1, resps.get(i).length,
          bufferLengths(sb)));
      String[] d = describeResponse(concat(sb), true, label);
      line("  - " + d[0]);
      retry = d[1].equals("NONE");
      if (!retry)
        li++;
    }
  }

  private static String normalize(String head) {
    return head.replaceAll("127\\.0\\.0\\.1:\\d+", "127.0.0.1:PORT").replaceAll("(?m)^Date: .*$", "Date: DATE");
  }

  // ------------------------------------------------------------- parsing

  private static List<byte[][]> frames(byte[] stream) throws IOException {
    List<byte[][]> out = new ArrayList<>();
    DataInputStream in = new DataInputStream(new ByteArrayInputStream(stream));
    while (in.available() > 0) {
      int serial = in.readInt(), count = in.readInt();
      byte[][] f = new byte[count + 1][];
      f[0] = new byte[] { (byte) (serial >>> 24), (byte) (serial >>> 16), (byte) (serial >>> 8), (byte) serial };
      for (int i = 0; i < count; i++) {
        f[i + 1] = new byte[in.readInt()];
        in.readFully(f[i + 1]);
      }
      out.add(f);
    }
    return out;
  }

  private static int serial(byte[][] f) {
    return ((f[0][0] & 0xff) << 24) | ((f[0][1] & 0xff) << 16) | ((f[0][2] & 0xff) << 8) | (f[0][3] & 0xff);
  }

  /** Re-encode a parsed frame exactly (serial, count, buffers). */
  private static byte[] frameBytes(byte[][] f) throws IOException {
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    b.write(f[0]);
    writeInt(b, f.length - 1);
    for (int i = 1; i < f.length; i++) {
      writeInt(b, f[i].length);
      b.write(f[i]);
    }
    return b.toByteArray();
  }

  private static void writeInt(OutputStream o, int v) throws IOException {
    o.write(v >>> 24);
    o.write(v >>> 16);
    o.write(v >>> 8);
    o.write(v);
  }

  private static byte[][] httpBuffers(byte[] body) throws IOException {
    List<byte[]> bufs = new ArrayList<>();
    bufs.add(new byte[0]); // placeholder so index 0 is not a buffer, like frames()
    DataInputStream in = new DataInputStream(new ByteArrayInputStream(body));
    while (true) {
      int len = in.readInt();
      if (len == 0)
        break;
      byte[] b = new byte[len];
      in.readFully(b);
      bufs.add(b);
    }
    if (in.available() != 0)
      throw new IllegalStateException("bytes after the zero-length terminator");
    return bufs.toArray(new byte[0][]);
  }

  private static String bufferLengths(byte[][] f) {
    List<Integer> l = new ArrayList<>();
    for (int i = 1; i < f.length; i++)
      l.add(f[i].length);
    return l.toString();
  }

  private static byte[] concat(byte[][] f) {
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    for (int i = 1; i < f.length; i++)
      b.writeBytes(f[i]);
    return b.toByteArray();
  }

  private static void httpMessages(byte[] stream, List<byte[]> bodies, List<String> heads) {
    int pos = 0;
    while (pos < stream.length) {
      int end = indexOf(stream, "\r\n\r\n".getBytes(StandardCharsets.US_ASCII), pos);
      if (end < 0)
        throw new IllegalStateException("incomplete HTTP head");
      String head = new String(stream, pos, end - pos, StandardCharsets.ISO_8859_1);
      int len = -1;
      for (String h : head.split("\r\n"))
        if (h.toLowerCase().startsWith("content-length:"))
          len = Integer.parseInt(h.substring(15).trim());
      if (len < 0)
        throw new IllegalStateException("HTTP message without Content-Length: " + head);
      heads.add(head + "\r\n\r\n");
      bodies.add(Arrays.copyOfRange(stream, end + 4, end + 4 + len));
      pos = end + 4 + len;
    }
  }

  private static int indexOf(byte[] hay, byte[] needle, int from) {
    outer: for (int i = from; i <= hay.length - needle.length; i++) {
      for (int j = 0; j < needle.length; j++)
        if (hay[i + j] != needle[j])
          continue outer;
      return i;
    }
    return -1;
  }

  // ------------------------------------------------------------ decoding

  private static final Schema META_SCHEMA = Schema.createMap(Schema.create(Schema.Type.BYTES));

  private String describeRequest(byte[] payload, boolean withHandshake) throws IOException {
    BinaryDecoder in = DecoderFactory.get().binaryDecoder(payload, null);
    StringBuilder sb = new StringBuilder();
    if (withHandshake) {
      HandshakeRequest h = new SpecificDatumReader<>(HandshakeRequest.class).read(null, in);
      sb.append("HandshakeRequest{clientHash=").append(Values.hex(h.getClientHash().bytes()))
          .append(", clientProtocol=")
          .append(h.getClientProtocol() == null ? "null" : "<" + h.getClientProtocol().toString()
              .getBytes(StandardCharsets.UTF_8).length + " bytes, = java-protocol-" + Protocols.versionOf(clientProto)
              + ".json>")
          .append(", serverHash=").append(Values.hex(h.getServerHash().bytes())).append(", meta=")
          .append(h.getMeta()).append("}; ");
    } else {
      sb.append("no handshake (connection established); ");
    }
    Object meta = new GenericDatumReader<>(META_SCHEMA).read(null, in);
    String name = in.readString();
    sb.append("call meta=").append(meta).append(", message=\"").append(name).append("\"");
    if (!name.isEmpty()) {
      Schema req = clientProto.getMessages().get(name).getRequest();
      Object params = new GenericDatumReader<>(req).read(null, in);
      String p = params.toString();
      sb.append(", params=").append(p.length() > 200 ? p.substring(0, 200) + "..." : p);
    }
    sb.append(in.isEnd() ? "" : " [TRAILING BYTES]");
    return sb.toString();
  }

  /** [description, handshake match or "-"] */
  private String[] describeResponse(byte[] payload, boolean withHandshake, String label) throws IOException {
    BinaryDecoder in = DecoderFactory.get().binaryDecoder(payload, null);
    StringBuilder sb = new StringBuilder();
    String match = "-";
    if (withHandshake) {
      HandshakeResponse h = new SpecificDatumReader<>(HandshakeResponse.class).read(null, in);
      match = h.getMatch().toString();
      sb.append("HandshakeResponse{match=").append(match).append(", serverProtocol=")
          .append(h.getServerProtocol() == null ? "null" : "<" + h.getServerProtocol().toString()
              .getBytes(StandardCharsets.UTF_8).length + " bytes, = java-protocol-" + Protocols.versionOf(serverProto)
              + ".json>")
          .append(", serverHash=").append(h.getServerHash() == null ? "null" : Values.hex(h.getServerHash().bytes()))
          .append(", meta=").append(h.getMeta()).append("}");
      if (match.equals("NONE")) {
        sb.append("; nothing follows (the client resends with clientProtocol)");
        sb.append(in.isEnd() ? "" : " [TRAILING BYTES]");
        return new String[] { sb.toString(), match };
      }
      sb.append("; ");
    } else {
      sb.append("no handshake; ");
    }
    if (label.equals("ping")) {
      sb.append("nothing follows (a ping is answered with the handshake alone)");
      sb.append(in.isEnd() ? "" : " [TRAILING BYTES]");
      return new String[] { sb.toString(), match };
    }
    Object meta = new GenericDatumReader<>(META_SCHEMA).read(null, in);
    sb.append("call meta=").append(meta);
    boolean error = in.readBoolean();
    sb.append(", error=").append(error);
    String message = label.substring(0, label.indexOf('('));
    Protocol.Message m = serverProto.getMessages().get(message);
    Schema s = error ? m.getErrors() : m.getResponse();
    if (error) {
      // union index tells which branch: 0 = string (undeclared), 1.. = declared errors
      BinaryDecoder peek = DecoderFactory.get().binaryDecoder(payload, payload.length - in.inputStream().available(),
          in.inputStream().available(), null);
      sb.append(", union branch ").append(peek.readIndex());
    }
    Object v = new GenericDatumReader<>(s).read(null, in);
    String vs = String.valueOf(v);
    sb.append(", value=").append(vs.length() > 200 ? vs.substring(0, 200) + "..." : vs);
    sb.append(in.isEnd() ? "" : " [TRAILING BYTES]");
    return new String[] { sb.toString(), match };
  }

  // --------------------------------------------------------------- relay

  /** A loopback TCP relay that records both directions of each connection. */
  private static final class Relay implements AutoCloseable {
    static final class Conn {
      final ByteArrayOutputStream c2s = new ByteArrayOutputStream(), s2c = new ByteArrayOutputStream();
      final List<Socket> sockets = new ArrayList<>();
    }

    final ServerSocket ss;
    final List<Conn> conns = new ArrayList<>();
    final Thread acceptor;

    Relay(int targetPort) throws IOException {
      ss = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
      acceptor = new Thread(() -> {
        try {
          while (true) {
            Socket client = ss.accept();
            Socket server = new Socket(InetAddress.getLoopbackAddress(), targetPort);
            client.setTcpNoDelay(true);
            server.setTcpNoDelay(true);
            Conn c = new Conn();
            c.sockets.add(client);
            c.sockets.add(server);
            synchronized (conns) {
              conns.add(c);
            }
            pump(client.getInputStream(), server.getOutputStream(), c.c2s);
            pump(server.getInputStream(), client.getOutputStream(), c.s2c);
          }
        } catch (IOException e) {
          // closed
        }
      }, "relay-accept");
      acceptor.setDaemon(true);
      acceptor.start();
    }

    int port() {
      return ss.getLocalPort();
    }

    private static void pump(InputStream in, OutputStream o, ByteArrayOutputStream record) {
      Thread t = new Thread(() -> {
        byte[] buf = new byte[8192];
        try {
          int n;
          while ((n = in.read(buf)) > 0) {
            synchronized (record) {
              record.write(buf, 0, n);
            }
            o.write(buf, 0, n);
            o.flush();
          }
        } catch (IOException e) {
          // connection closed
        } finally {
          try {
            o.close();
          } catch (IOException e) {
            // ignore
          }
        }
      }, "relay-pump");
      t.setDaemon(true);
      t.start();
    }

    @Override
    public void close() throws IOException {
      ss.close();
      synchronized (conns) {
        for (Conn c : conns)
          for (Socket s : c.sockets)
            s.close();
      }
    }
  }
}
