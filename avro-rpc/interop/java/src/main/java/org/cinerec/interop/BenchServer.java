package org.cinerec.interop;

import java.io.File;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;

import org.apache.avro.Protocol;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.ipc.Server;
import org.apache.avro.ipc.generic.GenericResponder;
import org.apache.avro.ipc.netty.NettyServer;

/**
 * The Java side of avro-rpc's benchmark ({@code benches/rpc.rs}): Avro's own
 * {@link NettyServer} serving the bench's Greeter protocol with a {@link GenericResponder}
 * whose {@code hello(name)} returns {@code name} — the work the Rust and tonic servers do.
 *
 * <pre>
 * BenchServer --proto path/to/greeter.avpr [--max-seconds S]
 * </pre>
 *
 * Binds 127.0.0.1 on a free port, prints {@code READY netty=<port>} on stdout, exits on stdin
 * EOF or after --max-seconds (default 900, exit 3).
 */
public final class BenchServer {
  private BenchServer() {
  }

  static final class Responder extends GenericResponder {
    Responder(Protocol p) {
      super(p);
    }

    @Override
    public Object respond(Protocol.Message message, Object request) {
      GenericRecord req = (GenericRecord) request;
      switch (message.getName()) {
      case "hello":
        return req.get("name");
      case "wait":
        return req.get("key");
      case "echo":
        return req.get("greeting");
      case "add":
        return (long) (Integer) req.get("a") + (Long) req.get("b");
      default:
        return null;
      }
    }
  }

  public static void main(String[] args) throws Exception {
    String proto = null;
    long maxSeconds = 900;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
      case "--proto":
        proto = args[++i];
        break;
      case "--max-seconds":
        maxSeconds = Long.parseLong(args[++i]);
        break;
      default:
        System.err.println("usage: BenchServer --proto FILE.avpr [--max-seconds S]");
        System.exit(2);
      }
    }
    if (proto == null) {
      System.err.println("usage: BenchServer --proto FILE.avpr [--max-seconds S]");
      System.exit(2);
    }
    final long limit = maxSeconds;
    Thread watchdog = new Thread(() -> {
      try {
        TimeUnit.SECONDS.sleep(limit);
      } catch (InterruptedException e) {
        return;
      }
      Runtime.getRuntime().halt(3);
    }, "bench-watchdog");
    watchdog.setDaemon(true);
    watchdog.start();

    Protocol p = Protocol.parse(new File(proto));
    Server netty = new NettyServer(new Responder(p), new InetSocketAddress("127.0.0.1", 0));
    netty.start();
    System.out.println("READY netty=" + netty.getPort());
    System.out.flush();
    InputStream in = System.in;
    byte[] buf = new byte[256];
    while (in.read(buf) >= 0) {
      // EOF ends the server
    }
    Runtime.getRuntime().halt(0);
  }
}
