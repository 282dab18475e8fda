package org.cinerec.interop;

import java.net.InetSocketAddress;
import java.net.URL;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import org.apache.avro.AvroRemoteException;
import org.apache.avro.Protocol;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.ipc.CallFuture;
import org.apache.avro.ipc.HttpTransceiver;
import org.apache.avro.ipc.Transceiver;
import org.apache.avro.ipc.generic.GenericRequestor;
import org.apache.avro.ipc.netty.NettyTransceiver;

/**
 * Calls every message of the interop protocol and checks the results.
 *
 * <pre>
 * InteropClient --transport netty|http --port N [--host 127.0.0.1]
 *               [--proto v1|v2|FILE.avpr] [--server-proto v1|v2] [--only PREFIX[,PREFIX..]]
 *               [--call-timeout-ms 5000] [--max-seconds 120]
 * </pre>
 *
 * Prints "PASS name" / "FAIL name: reason" per check, then "N passed, N failed";
 * exits 0 only if every check passed. --server-proto (default: same as --proto)
 * says which version the server speaks, which decides the expected values after
 * schema resolution.
 */
public final class InteropClient {
  private final String transport, host;
  private final int port;
  private final Protocol local;
  private final Values values;
  private final String serverVersion;
  private final long callTimeoutMs;
  private final List<String> only;
  private Transceiver transceiver;
  private GenericRequestor requestor;
  private int passed, failed;

  private InteropClient(String transport, String host, int port, Protocol local, String serverVersion,
      long callTimeoutMs, List<String> only) {
    this.transport = transport;
    this.host = host;
    this.port = port;
    this.local = local;
    this.values = new Values(local);
    this.serverVersion = serverVersion;
    this.callTimeoutMs = callTimeoutMs;
    this.only = only;
  }

  public static void main(String[] args) throws Exception {
    String transport = null, host = "127.0.0.1", proto = "v1", serverProto = null;
    int port = -1;
    long callTimeoutMs = 5000, maxSeconds = 120;
    List<String> only = new ArrayList<>();
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
      case "--transport":
        transport = args[++i];
        break;
      case "--host":
        host = args[++i];
        break;
      case "--port":
        port = Integer.parseInt(args[++i]);
        break;
      case "--proto":
        proto = args[++i];
        break;
      case "--server-proto":
        serverProto = args[++i];
        break;
      case "--only":
        for (String s : args[++i].split(","))
          if (!s.isEmpty())
            only.add(s);
        break;
      case "--call-timeout-ms":
        callTimeoutMs = Long.parseLong(args[++i]);
        break;
      case "--max-seconds":
        maxSeconds = Long.parseLong(args[++i]);
        break;
      default:
        usage();
      }
    }
    if (transport == null || port < 0 || !(transport.equals("netty") || transport.equals("http")))
      usage();
    final long limit = maxSeconds;
    Thread watchdog = new Thread(() -> {
      try {
        TimeUnit.SECONDS.sleep(limit);
      } catch (InterruptedException e) {
        return;
      }
      System.out.println("FAIL watchdog: client did not finish within " + limit + " s");
      System.out.flush();
      Runtime.getRuntime().halt(2);
    }, "interop-client-watchdog");
    watchdog.setDaemon(true);
    watchdog.start();

    Protocol local = Protocols.load(proto);
    String sv = serverProto == null ? Protocols.versionOf(local) : serverProto;
    InteropClient c = new InteropClient(transport, host, port, local, sv, callTimeoutMs, only);
    int rc;
    try {
      rc = c.run();
    } catch (Throwable t) {
      System.out.println("FAIL client: " + t);
      rc = 1;
    }
    System.out.flush();
    Runtime.getRuntime().halt(rc);
  }

  private static void usage() {
    System.err.println("usage: InteropClient --transport netty|http --port N [--host H] [--proto v1|v2|FILE]"
        + " [--server-proto v1|v2] [--only PREFIX,..] [--call-timeout-ms MS] [--max-seconds S]");
    System.exit(2);
  }

  Transceiver connect() throws Exception {
    if (transport.equals("netty"))
      return new NettyTransceiver(new InetSocketAddress(host, port), (int) callTimeoutMs);
    HttpTransceiver t = new HttpTransceiver(new URL("http://" + host + ":" + port + "/"));
    t.setTimeout((int) callTimeoutMs);
    return t;
  }

  // ----------------------------------------------------------- plumbing

  interface Check {
    /** null on success, else the reason for failure. */
    String run() throws Exception;
  }

  private void check(String name, Check body) {
    if (!only.isEmpty() && only.stream().noneMatch(name::startsWith))
      return;
    String reason;
    try {
      reason = body.run();
    } catch (Throwable t) {
      reason = "unexpected " + t;
    }
    if (reason == null) {
      passed++;
      System.out.println("PASS " + name);
    } else {
      failed++;
      System.out.println("FAIL " + name + ": " + reason.replace('\n', ' '));
    }
    System.out.flush();
  }

  private GenericRecord params(String message, Object... kv) {
    Schema s = local.getMessages().get(message).getRequest();
    GenericRecord r = new GenericData.Record(s);
    for (int i = 0; i < kv.length; i += 2)
      r.put((String) kv[i], kv[i + 1]);
    return r;
  }

  /** A two-way call with a deadline. Throws what the requestor reports. */
  private Object call(GenericRequestor req, String message, GenericRecord params) throws Exception {
    CallFuture<Object> f = new CallFuture<>();
    req.request(message, params, f);
    Object result = f.get(callTimeoutMs, TimeUnit.MILLISECONDS);
    return result;
  }

  private Object call(String message, Object... kv) throws Exception {
    return call(requestor, message, params(message, kv));
  }

  private static Throwable unwrap(Throwable t) {
    while (t instanceof java.util.concurrent.ExecutionException && t.getCause() != null)
      t = t.getCause();
    return t;
  }

  /** Expects a declared InteropError equal to `expected`. */
  private String expectError(GenericRecord expected, String message, Object... kv) {
    try {
      Object r = call(message, kv);
      return "expected InteropError, got result " + r;
    } catch (Throwable t) {
      t = unwrap(t);
      if (!(t instanceof AvroRemoteException))
        return "expected AvroRemoteException(InteropError), got " + t;
      return Values.diff("error", expected, ((AvroRemoteException) t).getValue());
    }
  }

  // -------------------------------------------------------------- checks

  private int run() throws Exception {
    transceiver = connect();
    requestor = new GenericRequestor(local, transceiver);
    System.err.println("[interop-client] " + transport + " " + host + ":" + port + " client "
        + Protocols.versionOf(local) + " server " + serverVersion);

    // First contact: a ping (empty message name) forces the handshake.
    check("ping", () -> {
      Protocol remote = requestor.getRemote();
      if (remote == null)
        return "no remote protocol after handshake";
      if (!remote.getName().equals("Interop") || !"org.cinerec.interop".equals(remote.getNamespace()))
        return "remote protocol is " + remote.getNamespace() + "." + remote.getName();
      String rv = Protocols.versionOf(remote);
      if (!rv.equals(serverVersion))
        return "server announced protocol " + rv + ", expected " + serverVersion;
      return null;
    });

    check("nop", () -> {
      Object r = call("nop");
      return r == null ? null : "expected null, got " + r;
    });

    long[][] adds = { { 40, 2, 42 }, { -5, 3, -2 }, { 1L << 40, -(1L << 41), -(1L << 40) },
        { Long.MAX_VALUE, 1, Long.MIN_VALUE } };
    String[] addNames = { "add.small", "add.negative", "add.large", "add.wrap" };
    for (int i = 0; i < adds.length; i++) {
      long[] a = adds[i];
      check(addNames[i], () -> Values.diff("result", a[2], call("add", "a", a[0], "b", a[1])));
    }

    for (String which : Values.ITEM_NAMES) {
      check("echo." + which, () -> Values.diff("item", values.echoExpected(which, serverVersion),
          call("echo", "item", values.item(which))));
    }
    for (String which : Values.ITEM_NAMES) {
      check("summarize." + which, () -> Values.diff("summary", values.summarize(values.item(which)),
          call("summarize", "item", values.item(which))));
    }

    check("range.small", () -> Values.diff("parts", rangeExpected(5, 3), call("range", "start", 5L, "count", 3)));
    check("range.empty", () -> Values.diff("parts", rangeExpected(0, 0), call("range", "start", 0L, "count", 0)));
    check("range.large",
        () -> Values.diff("parts", rangeExpected(-2, 1000), call("range", "start", -2L, "count", 1000)));
    check("range.error.negative", () -> expectError(values.error(400, "count out of range: -1"), "range", "start",
        0L, "count", -1));
    check("range.error.too-big", () -> expectError(values.error(400, "count out of range: 10001"), "range",
        "start", 0L, "count", 10001));

    check("fail.ok", () -> Values.diff("result", "ok: fine", call("fail", "code", 0, "message", "fine")));
    check("fail.declared-404",
        () -> expectError(values.error(404, "not found"), "fail", "code", 404, "message", "not found"));
    check("fail.declared-503",
        () -> expectError(values.error(503, "unavailable"), "fail", "code", 503, "message", "unavailable"));
    check("fail.undeclared", () -> {
      try {
        Object r = call("fail", "code", -1, "message", "boom");
        return "expected an error, got result " + r;
      } catch (Throwable t) {
        t = unwrap(t);
        // GenericRequestor turns the "string" branch of the error union into AvroRuntimeException(text).
        if (!(t instanceof org.apache.avro.AvroRuntimeException))
          return "expected AvroRuntimeException(\"undeclared: boom\"), got " + t;
        return "undeclared: boom".equals(t.getMessage()) ? null
            : "expected message \"undeclared: boom\", got \"" + t.getMessage() + "\"";
      }
    });

    String channel = "chk-" + transport + "-" + UUID.randomUUID();
    check("drain.empty", () -> Values.diff("events", Collections.emptyList(), call("drain", "channel", channel)));
    check("notify.one-way", () -> {
      if (!local.getMessages().get("notify").isOneWay())
        return "notify is not one-way in the local protocol";
      for (String e : new String[] { "e1", "e2", "e3" }) {
        CallFuture<Object> f = new CallFuture<>();
        requestor.request("notify", params("notify", "channel", channel, "event", e), f);
        // one-way: the future completes (with null) as soon as the request is written
        f.get(callTimeoutMs, TimeUnit.MILLISECONDS);
      }
      // Servers may run calls concurrently, so poll until all three arrived.
      List<String> got = new ArrayList<>();
      long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(callTimeoutMs);
      while (got.size() < 3 && System.nanoTime() < deadline) {
        for (Object o : (List<?>) call("drain", "channel", channel))
          got.add(o.toString());
        if (got.size() < 3)
          Thread.sleep(20);
      }
      Collections.sort(got);
      if (!got.equals(List.of("e1", "e2", "e3")))
        return "drain after notify e1,e2,e3 gave " + got;
      List<?> after = (List<?>) call("drain", "channel", channel);
      return after.isEmpty() ? null : "second drain not empty: " + after;
    });

    check("concurrent", () -> {
      int n = 32;
      List<CallFuture<Object>> fs = new ArrayList<>();
      for (int i = 0; i < n; i++) {
        CallFuture<Object> f = new CallFuture<>();
        requestor.request("add", params("add", "a", (long) i, "b", 1000L * i), f);
        fs.add(f);
      }
      for (int i = 0; i < n; i++) {
        Object r = fs.get(i).get(callTimeoutMs, TimeUnit.MILLISECONDS);
        String d = Values.diff("add#" + i, 1001L * i, r);
        if (d != null)
          return d;
      }
      return null;
    });

    // A second connection: for the server the client's protocol hash is now known.
    check("reconnect", () -> {
      Transceiver t2 = connect();
      try {
        GenericRequestor r2 = new GenericRequestor(local, t2);
        return Values.diff("result", 7L, call(r2, "add", params("add", "a", 3L, "b", 4L)));
      } finally {
        t2.close();
      }
    });

    // The same JVM, now with a client protocol the server has never seen,
    // while it already knows the server's hash (REMOTE_HASHES in Avro's
    // Requestor is per JVM, keyed by the remote's name): the handshake sends
    // the right server hash and no client protocol, so the server answers
    // NONE, and Requestor.setRemote parses the serverProtocol of that answer.
    // It is what a long-lived JVM sees after the server restarts (its cache
    // of client protocols gone) or when it talks two protocol versions.
    check("new-protocol", () -> {
      Protocol fresh = Protocol.parse(local.toString());
      fresh.addProp("cinerec.rehash", UUID.randomUUID().toString());
      if (fresh.getMD5() == null || java.util.Arrays.equals(fresh.getMD5(), local.getMD5()))
        return "the rehashed protocol has the same MD5 as the local one";
      Transceiver t3 = connect();
      try {
        GenericRequestor r3 = new GenericRequestor(fresh, t3);
        GenericRecord p = new GenericData.Record(fresh.getMessages().get("add").getRequest());
        p.put("a", 3L);
        p.put("b", 4L);
        String d = Values.diff("first", 7L, call(r3, "add", p));
        if (d != null)
          return d;
        p.put("a", 5L);
        // The call after the NONE round trip, on the same requestor.
        return Values.diff("second", 9L, call(r3, "add", p));
      } finally {
        t3.close();
      }
    });

    try {
      transceiver.close();
    } catch (Exception e) {
      // ignore
    }
    System.out.println(passed + " passed, " + failed + " failed");
    return failed == 0 && passed > 0 ? 0 : 1;
  }

  /** range(start, count) as this client sees it from a server of serverVersion. */
  private List<GenericRecord> rangeExpected(long start, int count) {
    List<GenericRecord> parts = values.range(start, count);
    if (Protocols.versionOf(local).equals("v1") && serverVersion.equals("v2"))
      for (GenericRecord p : parts)
        p.put("legacy", Values.LEGACY_DEFAULT);
    return parts;
  }
}
