package org.cinerec.interop;

import java.net.InetSocketAddress;
import java.net.URL;
import java.nio.ByteBuffer;
import java.util.Objects;
import java.util.concurrent.ExecutionException;
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
import org.apache.avro.util.Utf8;

/**
 * A Java client of Avro's {@code simple.avpr} against any server that behaves like
 * {@link SimpleResponder}: six checks (hello, echo, add, echoBytes, error, ack then add).
 *
 * <pre>
 * SimpleClient --transport netty|http --port N [--host 127.0.0.1] [--call-timeout-ms 5000]
 * </pre>
 *
 * Prints {@code PASS name} / {@code FAIL name: why}, then {@code <n> passed, <m> failed}; exit
 * 0 only if all passed.
 */
public final class SimpleClient {
  private static final String NS = SimpleResponder.NS;
  private final Protocol local;
  private final GenericRequestor requestor;
  private final long timeoutMs;
  private int passed;
  private int failed;

  private SimpleClient(Protocol local, Transceiver t, long timeoutMs) throws Exception {
    this.local = local;
    this.requestor = new GenericRequestor(local, t);
    this.timeoutMs = timeoutMs;
  }

  interface Check {
    String run() throws Exception;
  }

  private void check(String name, Check body) {
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

  private Object call(String message, Object... kv) throws Exception {
    Schema s = local.getMessages().get(message).getRequest();
    GenericRecord r = new GenericData.Record(s);
    for (int i = 0; i < kv.length; i += 2)
      r.put((String) kv[i], kv[i + 1]);
    if (local.getMessages().get(message).isOneWay()) {
      requestor.request(message, r);
      return null;
    }
    CallFuture<Object> f = new CallFuture<>();
    requestor.request(message, r, f);
    return f.get(timeoutMs, TimeUnit.MILLISECONDS);
  }

  private static String expect(Object expected, Object got) {
    return Objects.equals(expected, got) ? null : "expected " + expected + ", got " + got;
  }

  private void run() {
    check("simple.hello", () -> expect(new Utf8("goodbye"), call("hello", "greeting", new Utf8("bonjour"))));
    check("simple.echo", () -> {
      GenericRecord rec = new GenericData.Record(local.getType(NS + "TestRecord"));
      rec.put("name", new Utf8("foo"));
      rec.put("kind", new GenericData.EnumSymbol(local.getType(NS + "Kind"), "BAR"));
      rec.put("hash", new GenericData.Fixed(local.getType(NS + "MD5"), "0123456789abcdef".getBytes("US-ASCII")));
      return expect(rec, call("echo", "record", rec));
    });
    check("simple.add", () -> expect(3, call("add", "arg1", 1, "arg2", 2)));
    check("simple.echoBytes", () -> {
      ByteBuffer b = ByteBuffer.wrap(new byte[] { 0, 1, 2, (byte) 0xfe, (byte) 0xff });
      return expect(b, call("echoBytes", "data", b.duplicate()));
    });
    check("simple.error", () -> {
      try {
        return "expected TestError, got result " + call("error");
      } catch (ExecutionException | AvroRemoteException e) {
        Throwable t = e instanceof ExecutionException ? e.getCause() : e;
        if (!(t instanceof AvroRemoteException))
          return "expected AvroRemoteException, got " + t;
        Object v = ((AvroRemoteException) t).getValue();
        if (!(v instanceof GenericRecord) || !((GenericRecord) v).getSchema().getFullName().equals(NS + "TestError"))
          return "expected a TestError record, got " + v;
        return expect(new Utf8("an error"), ((GenericRecord) v).get("message"));
      }
    });
    check("simple.ack", () -> {
      call("ack");
      return expect(5, call("add", "arg1", 2, "arg2", 3));
    });
  }

  public static void main(String[] args) throws Exception {
    String transport = null;
    String host = "127.0.0.1";
    int port = -1;
    long timeoutMs = 5000;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
      case "--transport":
        transport = args[++i];
        break;
      case "--port":
        port = Integer.parseInt(args[++i]);
        break;
      case "--host":
        host = args[++i];
        break;
      case "--call-timeout-ms":
        timeoutMs = Long.parseLong(args[++i]);
        break;
      default:
        System.err.println("usage: SimpleClient --transport netty|http --port N [--host H] [--call-timeout-ms MS]");
        System.exit(2);
      }
    }
    if (port < 0 || !("netty".equals(transport) || "http".equals(transport))) {
      System.err.println("usage: SimpleClient --transport netty|http --port N [--host H] [--call-timeout-ms MS]");
      System.exit(2);
    }
    Protocol local = Protocols.load("simple");
    Transceiver t;
    if (transport.equals("netty")) {
      t = new NettyTransceiver(new InetSocketAddress(host, port), (int) timeoutMs);
    } else {
      HttpTransceiver h = new HttpTransceiver(new URL("http://" + host + ":" + port + "/"));
      h.setTimeout((int) timeoutMs);
      t = h;
    }
    SimpleClient c = new SimpleClient(local, t, timeoutMs);
    c.run();
    t.close();
    System.out.println(c.passed + " passed, " + c.failed + " failed");
    System.out.flush();
    System.exit(c.failed == 0 && c.passed > 0 ? 0 : 1);
  }
}
