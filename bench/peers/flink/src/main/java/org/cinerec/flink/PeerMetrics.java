package org.cinerec.flink;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.math.BigDecimal;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.DoubleAdder;

/**
 * The figures {@code cinerec-bench recommender --peer flink} compares with the
 * recommender's, in the Prometheus text format on {@code --metrics-addr} ({@code GET
 * /metrics}): the same latency histogram (the same definition and bucket bounds as
 * {@code recommender_event_latency_seconds}), events finished by outcome, Cassandra
 * writes, and what readiness needs (the Kafka partitions the source holds).
 *
 * <p>One instance per JVM: the MiniCluster runs every operator in this process and class
 * loader, so operators record into the static {@link #GLOBAL} directly. Every field is
 * lock-free (atomics); a scrape reads them without stopping the job.
 */
public final class PeerMetrics {
  /**
   * The bucket bounds, seconds: service-kit's {@code metrics_handle} list (50 µs to 10 s),
   * so both histograms are cut at the same points and their quantiles compare exactly.
   */
  static final double[] BOUNDS = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0
  };

  /** Record timestamp → its user's row durable in Cassandra. */
  static final String LATENCY = "flink_peer_event_latency_seconds";
  /** Events finished, by outcome ({@code done}, {@code stale}, {@code dead_letter}). */
  static final String EVENTS = "flink_peer_events_total";
  /** Successful Cassandra writes (both serving tables). */
  static final String WRITES = "flink_peer_cassandra_writes_total";
  /** Kafka partitions the source's readers hold now. */
  static final String PARTITIONS = "flink_peer_source_partitions";
  /** 1 while the job is RUNNING. */
  static final String RUNNING = "flink_peer_job_running";

  /** The process's metrics. */
  public static final PeerMetrics GLOBAL = new PeerMetrics();

  /** Record timestamp → the model stage has it (where the rest of the latency goes). */
  static final String ARRIVAL = "flink_peer_model_arrival_seconds";
  /** One flush of the model stage: computing every dirty row. */
  static final String FLUSH = "flink_peer_flush_seconds";
  /** Rows the model stage emitted, by table. */
  static final String ROWS = "flink_peer_rows_total";

  /** A Prometheus histogram over {@link #BOUNDS}. */
  static final class Histogram {
    /** Non-cumulative counts per bucket; the last one is {@code +Inf}. */
    private final AtomicLongArray buckets = new AtomicLongArray(BOUNDS.length + 1);
    private final DoubleAdder sum = new DoubleAdder();

    void observe(double secs) {
      int b = 0;
      while (b < BOUNDS.length && secs > BOUNDS[b]) {
        b++;
      }
      buckets.incrementAndGet(b);
      sum.add(secs);
    }

    void render(StringBuilder out, String name, String help) {
      out.append("# HELP ").append(name).append(' ').append(help).append('\n');
      out.append("# TYPE ").append(name).append(" histogram\n");
      long cumulative = 0;
      for (int b = 0; b <= BOUNDS.length; b++) {
        cumulative += buckets.get(b);
        String le =
            b < BOUNDS.length
                ? new BigDecimal(Double.toString(BOUNDS[b])).toPlainString()
                : "+Inf";
        out.append(name).append("_bucket{le=\"").append(le).append("\"} ");
        out.append(cumulative).append('\n');
      }
      out.append(name).append("_sum ").append(sum.sum()).append('\n');
      out.append(name).append("_count ").append(cumulative).append('\n');
    }
  }

  private final Histogram latency = new Histogram();
  private final Histogram arrival = new Histogram();
  private final Histogram flush = new Histogram();
  private final AtomicLong userRows = new AtomicLong();
  private final AtomicLong movieRows = new AtomicLong();
  private final AtomicLong done = new AtomicLong();
  private final AtomicLong stale = new AtomicLong();
  private final AtomicLong dead = new AtomicLong();
  private final AtomicLong writes = new AtomicLong();
  private final AtomicInteger partitions = new AtomicInteger();
  private volatile boolean running;

  /**
   * A recommendations row carrying {@code kafkaTsMs} (the Kafka timestamps of the events
   * whose state advanced since the user's previous row) is durable: each of those events
   * is done, its latency now minus its timestamp, in whole milliseconds as the recommender
   * measures it (recommender/src/pipeline/flush.rs).
   */
  void rowDurable(long[] kafkaTsMs) {
    if (kafkaTsMs == null) {
      return;
    }
    long now = System.currentTimeMillis();
    for (long ts : kafkaTsMs) {
      latency.observe(Math.max(0L, now - ts) / 1000.0);
      done.incrementAndGet();
    }
  }

  /** An event with Kafka timestamp {@code kafkaTsMs} reached the model stage. */
  void arrived(long kafkaTsMs) {
    arrival.observe(Math.max(0L, System.currentTimeMillis() - kafkaTsMs) / 1000.0);
  }

  /** A flush took {@code secs} and emitted these rows. */
  void flushed(double secs, long users, long movies) {
    flush.observe(secs);
    userRows.addAndGet(users);
    movieRows.addAndGet(movies);
  }

  void stale() {
    stale.incrementAndGet();
  }

  void deadLettered() {
    dead.incrementAndGet();
  }

  void written() {
    writes.incrementAndGet();
  }

  void partitionAdded() {
    partitions.incrementAndGet();
  }

  void partitionRemoved() {
    partitions.decrementAndGet();
  }

  void running(boolean now) {
    running = now;
  }

  /** The page, in the Prometheus text exposition format 0.0.4. */
  String render() {
    StringBuilder out = new StringBuilder(4096);
    latency.render(
        out, LATENCY, "Kafka timestamp of an event to its user's recommendations row durable");
    arrival.render(out, ARRIVAL, "Kafka timestamp of an event to the model stage receiving it");
    flush.render(out, FLUSH, "One flush of the model stage (every dirty row computed)");
    out.append("# TYPE ").append(ROWS).append(" counter\n");
    out.append(ROWS).append("{table=\"recommendations_by_user\"} ").append(userRows.get());
    out.append('\n');
    out.append(ROWS).append("{table=\"similar_movies\"} ").append(movieRows.get()).append('\n');
    out.append("# TYPE ").append(EVENTS).append(" counter\n");
    out.append(EVENTS).append("{outcome=\"done\"} ").append(done.get()).append('\n');
    out.append(EVENTS).append("{outcome=\"stale\"} ").append(stale.get()).append('\n');
    out.append(EVENTS).append("{outcome=\"dead_letter\"} ").append(dead.get()).append('\n');
    out.append("# TYPE ").append(WRITES).append(" counter\n");
    out.append(WRITES).append(' ').append(writes.get()).append('\n');
    out.append("# TYPE ").append(PARTITIONS).append(" gauge\n");
    out.append(PARTITIONS).append(' ').append(partitions.get()).append('\n');
    out.append("# TYPE ").append(RUNNING).append(" gauge\n");
    out.append(RUNNING).append(' ').append(running ? 1 : 0).append('\n');
    return out.toString();
  }

  /** Serves {@code GET /metrics} on {@code hostPort} (a daemon thread) until the JVM exits. */
  static void serve(String hostPort) throws IOException {
    int colon = hostPort.lastIndexOf(':');
    if (colon < 0) {
      throw new IllegalArgumentException("--metrics-addr " + hostPort + " is not HOST:PORT");
    }
    var addr =
        new InetSocketAddress(
            hostPort.substring(0, colon), Integer.parseInt(hostPort.substring(colon + 1)));
    HttpServer server = HttpServer.create(addr, 16);
    server.createContext(
        "/metrics",
        exchange -> {
          byte[] body = GLOBAL.render().getBytes(StandardCharsets.UTF_8);
          exchange.getResponseHeaders().set("Content-Type", "text/plain; version=0.0.4");
          exchange.sendResponseHeaders(200, body.length);
          try (OutputStream os = exchange.getResponseBody()) {
            os.write(body);
          }
        });
    server.setExecutor(
        Executors.newSingleThreadExecutor(
            r -> {
              Thread t = new Thread(r, "peer-metrics");
              t.setDaemon(true);
              return t;
            }));
    server.start();
  }
}
