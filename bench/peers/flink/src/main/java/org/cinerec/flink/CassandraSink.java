package org.cinerec.flink;

import com.datastax.oss.driver.api.core.ConsistencyLevel;
import com.datastax.oss.driver.api.core.CqlSession;
import com.datastax.oss.driver.api.core.config.DefaultDriverOption;
import com.datastax.oss.driver.api.core.config.DriverConfigLoader;
import com.datastax.oss.driver.api.core.cql.BoundStatement;
import com.datastax.oss.driver.api.core.cql.PreparedStatement;
import java.io.IOException;
import java.io.Serializable;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.metrics.Counter;
import org.cinerec.flink.Types.Row;

/**
 * The serving-table sink, written with the Apache Cassandra Java driver (there is no
 * Flink Cassandra connector for Flink 2.x). Every row is an idempotent whole-row
 * upsert ({@code INSERT}, the same statements and columns as recommender/src/store.rs)
 * with a client-side timestamp taken when the row reaches the sink, so a retried write
 * keeps its timestamp and can never override a later value of the same row, and a
 * replay after a restore (at-least-once) writes later timestamps that win.
 *
 * <p>Writes are asynchronous, at most {@code maxInFlight} at a time, each retried with
 * exponential backoff; {@link SinkWriter#flush} (called before every checkpoint
 * completes, and at the end of input) waits for every write in flight, so a completed
 * checkpoint means every row emitted before its barrier is in Cassandra. A write that
 * still fails after {@link #ATTEMPTS} attempts fails the job, which restarts from the
 * last checkpoint and writes the rows again.
 */
public final class CassandraSink implements Sink<Row> {
  /** Attempts of one write before the job fails. */
  static final int ATTEMPTS = 8;

  private final String host;
  private final int port;
  private final String datacenter;
  private final String keyspace;
  private final int maxInFlight;

  public CassandraSink(String host, int port, String datacenter, String keyspace, int maxInFlight) {
    this.host = host;
    this.port = port;
    this.datacenter = datacenter;
    this.keyspace = keyspace;
    this.maxInFlight = maxInFlight;
  }

  /** A session with the job's request timeout. */
  static CqlSession connect(String host, int port, String datacenter) {
    DriverConfigLoader config =
        DriverConfigLoader.programmaticBuilder()
            .withDuration(DefaultDriverOption.REQUEST_TIMEOUT, Duration.ofSeconds(10))
            .withString(DefaultDriverOption.REQUEST_CONSISTENCY, "LOCAL_QUORUM")
            .build();
    return CqlSession.builder()
        .addContactPoint(new InetSocketAddress(host, port))
        .withLocalDatacenter(datacenter)
        .withConfigLoader(config)
        .build();
  }

  /** The recommender's serving tables (recommender/src/store.rs {@code schema}), if missing. */
  static List<String> schema(String ks) {
    List<String> out = new ArrayList<>();
    out.add(
        "CREATE KEYSPACE IF NOT EXISTS "
            + ks
            + " WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}");
    out.add(
        "CREATE TABLE IF NOT EXISTS "
            + ks
            + ".recommendations_by_user (user_id bigint PRIMARY KEY, movie_ids list<bigint>,"
            + " scores list<double>, from_model int, computed_at bigint)");
    out.add(
        "CREATE TABLE IF NOT EXISTS "
            + ks
            + ".similar_movies (movie_id bigint PRIMARY KEY, movie_ids list<bigint>,"
            + " scores list<double>, computed_at bigint)");
    out.add(
        "CREATE TABLE IF NOT EXISTS "
            + ks
            + ".trending_by_genre (genre text PRIMARY KEY, movie_ids list<bigint>, counts"
            + " list<int>, window_start bigint, window_end bigint, computed_at bigint)");
    return out;
  }

  /** Creates the keyspace and tables when missing (run once, before the job). */
  static void migrate(String host, int port, String datacenter, String ks) {
    try (CqlSession s = connect(host, port, datacenter)) {
      for (String cql : schema(ks)) {
        s.execute(
            com.datastax.oss.driver.api.core.cql.SimpleStatement.newInstance(cql)
                .setTimeout(Duration.ofSeconds(60)));
      }
      s.checkSchemaAgreement();
    }
  }

  @Override
  public SinkWriter<Row> createWriter(WriterInitContext context) throws IOException {
    return new Writer(this, context);
  }

  /** Microsecond timestamps, strictly increasing within the writer. */
  static final class Clock implements Serializable {
    private final AtomicLong last = new AtomicLong();

    long next() {
      long now = System.currentTimeMillis() * 1000L;
      return last.accumulateAndGet(now, (prev, wall) -> Math.max(prev + 1, wall));
    }
  }

  static final class Writer implements SinkWriter<Row> {
    private final CqlSession session;
    private final PreparedStatement recs;
    private final PreparedStatement similar;
    private final Semaphore slots;
    private final int maxInFlight;
    private final ScheduledExecutorService retries =
        Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, "cassandra-sink-retry");
              t.setDaemon(true);
              return t;
            });
    private final Clock clock = new Clock();
    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    private final Counter writes;
    private final Counter retried;

    Writer(CassandraSink cfg, WriterInitContext ctx) {
      session = connect(cfg.host, cfg.port, cfg.datacenter);
      String ks = cfg.keyspace;
      recs =
          session.prepare(
              "INSERT INTO "
                  + ks
                  + ".recommendations_by_user (user_id, movie_ids, scores, from_model,"
                  + " computed_at) VALUES (?, ?, ?, ?, ?)");
      similar =
          session.prepare(
              "INSERT INTO "
                  + ks
                  + ".similar_movies (movie_id, movie_ids, scores, computed_at) VALUES (?, ?, ?,"
                  + " ?)");
      maxInFlight = Math.max(1, cfg.maxInFlight);
      slots = new Semaphore(maxInFlight);
      writes = ctx.metricGroup().counter("cassandraWrites");
      retried = ctx.metricGroup().counter("cassandraRetries");
    }

    @Override
    public void write(Row row, Context context) throws IOException, InterruptedException {
      rethrow();
      List<Long> movies = new ArrayList<>(row.movies.length);
      for (long m : row.movies) {
        movies.add(m);
      }
      List<Double> scores = new ArrayList<>(row.scores.length);
      for (double s : row.scores) {
        scores.add(s);
      }
      long now = clock.next();
      BoundStatement b =
          row.table == Row.RECOMMENDATIONS
              ? recs.bind(row.key, movies, scores, movies.size(), now)
              : similar.bind(row.key, movies, scores, now);
      b = b.setQueryTimestamp(now).setIdempotent(true).setConsistencyLevel(ConsistencyLevel.LOCAL_QUORUM);
      slots.acquire();
      send(b, row.eventTs, 1);
    }

    /** Writes {@code b}; once it is durable, the events in {@code eventTs} are done. */
    private void send(BoundStatement b, long[] eventTs, int attempt) {
      session
          .executeAsync(b)
          .whenComplete(
              (rs, err) -> {
                if (err == null) {
                  writes.inc();
                  PeerMetrics.GLOBAL.written();
                  PeerMetrics.GLOBAL.rowDurable(eventTs);
                  slots.release();
                } else if (attempt < ATTEMPTS) {
                  retried.inc();
                  long delay = Math.min(5_000L, 50L << (attempt - 1));
                  retries.schedule(() -> send(b, eventTs, attempt + 1), delay, TimeUnit.MILLISECONDS);
                } else {
                  failure.compareAndSet(null, err);
                  slots.release();
                }
              });
    }

    private void rethrow() throws IOException {
      Throwable t = failure.get();
      if (t != null) {
        throw new IOException("a Cassandra write failed " + ATTEMPTS + " times: " + t, t);
      }
    }

    @Override
    public void flush(boolean endOfInput) throws IOException, InterruptedException {
      // Every write in flight lands (or fails) before the checkpoint completes.
      slots.acquire(maxInFlight);
      slots.release(maxInFlight);
      rethrow();
    }

    @Override
    public void close() throws Exception {
      retries.shutdownNow();
      session.close();
    }
  }
}
