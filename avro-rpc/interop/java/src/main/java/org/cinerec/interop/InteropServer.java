package org.cinerec.interop;

import java.io.InputStream;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;

import org.apache.avro.Protocol;
import org.apache.avro.ipc.Server;
import org.apache.avro.ipc.jetty.HttpServer;
import org.apache.avro.ipc.netty.NettyServer;

/**
 * Serves the interop protocol over the Netty socket transport and HTTP (Jetty), on
 * 127.0.0.1 only.
 *
 * <pre>
 * InteropServer [--proto v1|v2|simple|FILE.avpr] [--netty-port N] [--http-port N]
 *               [--max-seconds S] [--ignore-stdin] [--log-file PATH]
 * </pre>
 *
 * Port 0 (the default) picks a free port. Prints "READY netty=P http=Q" on stdout
 * once both listen. Exits on stdin EOF (unless --ignore-stdin), SIGTERM, or after
 * --max-seconds (default 900). Logs go to stderr, or to --log-file.
 */
public final class InteropServer {
  private InteropServer() {
  }

  public static void main(String[] args) throws Exception {
    String proto = "v1";
    int nettyPort = 0, httpPort = 0;
    long maxSeconds = 900;
    boolean watchStdin = true;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
      case "--proto":
        proto = args[++i];
        break;
      case "--netty-port":
        nettyPort = Integer.parseInt(args[++i]);
        break;
      case "--http-port":
        httpPort = Integer.parseInt(args[++i]);
        break;
      case "--max-seconds":
        maxSeconds = Long.parseLong(args[++i]);
        break;
      case "--ignore-stdin":
        watchStdin = false;
        break;
      case "--log-file":
        // must be set before the first logger is created
        System.setProperty("org.slf4j.simpleLogger.logFile", args[++i]);
        break;
      default:
        System.err.println("usage: InteropServer [--proto v1|v2|FILE] [--netty-port N] [--http-port N]"
            + " [--max-seconds S] [--ignore-stdin] [--log-file PATH]");
        System.exit(2);
      }
    }
    startWatchdog(maxSeconds);

    Protocol local = Protocols.load(proto);
    // One responder per transport, each with its own cache of client protocols.
    // Avro's own simple.avpr gets its test behaviour; everything else is the Interop protocol.
    boolean simple = "Simple".equals(local.getName());
    Server netty = new NettyServer(simple ? new SimpleResponder(local) : new InteropResponder(local),
        new InetSocketAddress("127.0.0.1", nettyPort));
    HttpServer http = new HttpServer(simple ? new SimpleResponder(local) : new InteropResponder(local),
        "127.0.0.1", httpPort);
    http.start();
    netty.start();
    Runtime.getRuntime().addShutdownHook(new Thread(() -> closeQuietly(netty, http), "interop-shutdown"));

    System.out.println("READY netty=" + netty.getPort() + " http=" + http.getPort());
    System.out.flush();
    System.err.println("[interop-server] protocol " + (simple ? "simple" : Protocols.versionOf(local)) + " (" + proto + ") md5 "
        + Values.hex(local.getMD5()));

    if (watchStdin) {
      InputStream in = System.in;
      byte[] buf = new byte[256];
      while (in.read(buf) >= 0) {
        // ignore input; EOF ends the server
      }
      System.err.println("[interop-server] stdin closed, exiting");
      System.exit(0);
    } else {
      Thread.currentThread().join();
    }
  }

  private static void startWatchdog(long maxSeconds) {
    Thread t = new Thread(() -> {
      try {
        TimeUnit.SECONDS.sleep(maxSeconds);
      } catch (InterruptedException e) {
        return;
      }
      System.err.println("[interop-server] --max-seconds " + maxSeconds + " reached, exiting");
      Runtime.getRuntime().halt(3);
    }, "interop-watchdog");
    t.setDaemon(true);
    t.start();
  }

  /** Close both servers, but never let a slow shutdown keep the process alive. */
  private static void closeQuietly(Server... servers) {
    Thread closer = new Thread(() -> {
      for (Server s : servers) {
        try {
          s.close();
        } catch (Throwable t) {
          // shutting down anyway
        }
      }
    }, "interop-close");
    closer.setDaemon(true);
    closer.start();
    try {
      closer.join(1000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
