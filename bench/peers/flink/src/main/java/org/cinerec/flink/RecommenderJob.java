package org.cinerec.flink;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.core.execution.CheckpointingMode;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.cinerec.flink.Types.ChangelogRecord;
import org.cinerec.flink.Types.DeadLetter;
import org.cinerec.flink.Types.Event;
import org.cinerec.flink.Types.PairChange;
import org.cinerec.flink.Types.PairUpdate;
import org.cinerec.flink.Types.RawRecord;
import org.cinerec.flink.Types.Row;

/**
 * The recommender's job on Apache Flink, in a local MiniCluster: {@code
 * reviews.enriched} → decode (poison → {@code <topic>.dlq}) → latest state per review
 * (keyed by review) → effective like per (user, movie) (keyed by pair) → the model and
 * its serving rows (one key) → Cassandra ({@code recommendations_by_user}, {@code
 * similar_movies} in the job's own keyspace). The advanced review states also go to a
 * compacted changelog topic in the recommender's changelog format, which {@code
 * recommender reconcile --changelog-topic} replays to compare likes, N and C.
 *
 * <p>Run {@code bench/peers/flink/run --help} for the flags.
 */
public final class RecommenderJob {
  private RecommenderJob() {}

  static final String USAGE =
      String.join(
          "\n",
          "cinerec Flink peer: the recommender's job on Apache Flink (local MiniCluster)",
          "",
          "flags (defaults in brackets):",
          "  --brokers HOST:PORT        Kafka bootstrap servers [127.0.0.1:19092]",
          "  --topic NAME               source topic [reviews.enriched]",
          "  --group NAME               consumer group [cinerec-flink-peer]",
          "  --cql HOST:PORT            Cassandra contact point [127.0.0.1:19042]",
          "  --datacenter NAME          Cassandra local datacenter [datacenter1]",
          "  --keyspace NAME            serving keyspace, created if missing [recommender_flink]",
          "  --changelog-topic NAME     review-state changelog [<keyspace>-review-states-changelog]",
          "  --dlq-topic NAME           dead letters [<topic>.dlq]",
          "  --parallelism N            parallelism of decode and the keyed stages [1]",
          "  --checkpoint-ms N          checkpoint interval, at-least-once [2000]",
          "  --checkpoint-dir DIR       checkpoint storage [$HOME/.cache/cinerec/flink/checkpoints]",
          "  --flush-ms N               serving-row flush interval [100]",
          "  --refresh-max-rows N       background rows per flush (the recommender's) [300]",
          "  --max-in-flight N          concurrent Cassandra writes [64]",
          "  --buffer-timeout-ms N      longest a network buffer waits to fill [10]",
          "  --unbounded                keep reading after the end (stop with --seconds)",
          "  --seconds N                stop after N seconds at most (0 = no limit) [0]",
          "  --metrics-addr HOST:PORT   serve GET /metrics (Prometheus text) there [off]",
          "",
          "Bounded (the default): reads the topic from the earliest offset to the end offsets",
          "it finds at start, flushes every row, and exits 0.");

  /** Parsed flags. */
  static final class Options {
    String brokers = "127.0.0.1:19092";
    String topic = "reviews.enriched";
    String group = "cinerec-flink-peer";
    String cql = "127.0.0.1:19042";
    String datacenter = "datacenter1";
    String keyspace = "recommender_flink";
    String changelogTopic;
    String dlqTopic;
    int parallelism = 1;
    long checkpointMs = 2000;
    String checkpointDir =
        Path.of(System.getProperty("user.home"), ".cache", "cinerec", "flink", "checkpoints")
            .toString();
    long flushMs = 100;
    int refreshMaxRows = 300;
    int maxInFlight = 64;
    int bufferTimeoutMs = 10;
    boolean bounded = true;
    long seconds = 0;
    String metricsAddr;

    static Options parse(String[] args) {
      Options o = new Options();
      for (int i = 0; i < args.length; i++) {
        String flag = args[i];
        if (flag.equals("--help") || flag.equals("-h")) {
          System.out.println(USAGE);
          System.exit(0);
        }
        if (flag.equals("--unbounded")) {
          o.bounded = false;
          continue;
        }
        if (i + 1 >= args.length) {
          throw new IllegalArgumentException(flag + " needs a value (see --help)");
        }
        String v = args[++i];
        switch (flag) {
          case "--brokers" -> o.brokers = v;
          case "--topic" -> o.topic = v;
          case "--group" -> o.group = v;
          case "--cql" -> o.cql = v;
          case "--datacenter" -> o.datacenter = v;
          case "--keyspace" -> o.keyspace = v;
          case "--changelog-topic" -> o.changelogTopic = v;
          case "--dlq-topic" -> o.dlqTopic = v;
          case "--parallelism" -> o.parallelism = positive(flag, v);
          case "--checkpoint-ms" -> o.checkpointMs = positive(flag, v);
          case "--checkpoint-dir" -> o.checkpointDir = v;
          case "--flush-ms" -> o.flushMs = positive(flag, v);
          case "--refresh-max-rows" -> o.refreshMaxRows = positive(flag, v);
          case "--max-in-flight" -> o.maxInFlight = positive(flag, v);
          case "--buffer-timeout-ms" -> o.bufferTimeoutMs = positive(flag, v);
          case "--seconds" -> o.seconds = Long.parseLong(v);
          case "--metrics-addr" -> o.metricsAddr = v;
          default -> throw new IllegalArgumentException("unknown flag " + flag + " (see --help)");
        }
      }
      if (!o.keyspace.matches("[a-z][a-z0-9_]{0,47}")) {
        throw new IllegalArgumentException(
            "keyspace " + o.keyspace + " must be 1-48 of [a-z0-9_], starting with a letter");
      }
      if (o.changelogTopic == null) {
        o.changelogTopic = o.keyspace + "-review-states-changelog";
      }
      if (o.dlqTopic == null) {
        o.dlqTopic = o.topic + ".dlq";
      }
      if (!o.bounded && o.seconds <= 0) {
        throw new IllegalArgumentException("--unbounded needs --seconds N");
      }
      return o;
    }

    private static int positive(String flag, String v) {
      int n;
      try {
        n = Integer.parseInt(v);
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException(flag + " " + v + " is not a number");
      }
      if (n < 1) {
        throw new IllegalArgumentException(flag + " must be at least 1, not " + v);
      }
      return n;
    }

    String cqlHost() {
      return cql.substring(0, cql.lastIndexOf(':'));
    }

    int cqlPort() {
      return Integer.parseInt(cql.substring(cql.lastIndexOf(':') + 1));
    }
  }

  /** Kafka records as {@link RawRecord}s: decoding happens downstream, where it is counted. */
  static final class RawDeserializer implements KafkaRecordDeserializationSchema<RawRecord> {
    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> rec, Collector<RawRecord> out) {
      RawRecord r = new RawRecord();
      r.topic = rec.topic();
      r.partition = rec.partition();
      r.offset = rec.offset();
      r.key = rec.key();
      r.value = rec.value();
      r.timestampMs = rec.timestamp();
      out.collect(r);
    }

    @Override
    public TypeInformation<RawRecord> getProducedType() {
      return TypeInformation.of(RawRecord.class);
    }
  }

  /** Changelog records to the source's partition (mod the changelog's partition count). */
  static final class ChangelogSerializer
      implements KafkaRecordSerializationSchema<ChangelogRecord> {
    private final String topic;

    ChangelogSerializer(String topic) {
      this.topic = topic;
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(
        ChangelogRecord r, KafkaSinkContext ctx, Long timestamp) {
      int[] parts = ctx.getPartitionsForTopic(topic);
      Integer p = parts.length == 0 ? null : parts[Math.floorMod(r.partition, parts.length)];
      return new ProducerRecord<>(
          topic,
          p,
          r.key,
          r.value,
          List.of(new RecordHeader("cinerec.writer", "flink".getBytes(StandardCharsets.UTF_8))));
    }
  }

  /** Dead letters with the same headers as cinerec's DLQ (service-kit/src/kafka/dlq.rs). */
  static final class DeadLetterSerializer implements KafkaRecordSerializationSchema<DeadLetter> {
    private final String topic;

    DeadLetterSerializer(String topic) {
      this.topic = topic;
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(
        DeadLetter d, KafkaSinkContext ctx, Long timestamp) {
      var h =
          List.of(
              new RecordHeader("cinerec.error", utf8(d.error)),
              new RecordHeader("cinerec.source.topic", utf8(d.topic)),
              new RecordHeader("cinerec.source.partition", utf8(Integer.toString(d.partition))),
              new RecordHeader("cinerec.source.offset", utf8(Long.toString(d.offset))));
      return new ProducerRecord<>(topic, null, d.key, d.value, List.copyOf(h));
    }

    private static byte[] utf8(String s) {
      return (s == null ? "" : s).getBytes(StandardCharsets.UTF_8);
    }
  }

  /** Creates the changelog (compacted, as many partitions as the source) and the DLQ. */
  static void ensureTopics(Options o) throws Exception {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, o.brokers);
    try (Admin admin = Admin.create(p)) {
      Map<String, TopicDescription> source =
          admin.describeTopics(Set.of(o.topic)).allTopicNames().get(30, TimeUnit.SECONDS);
      int partitions = source.get(o.topic).partitions().size();
      Map<String, String> compacted = new HashMap<>();
      compacted.put("cleanup.policy", "compact");
      for (NewTopic t :
          List.of(
              new NewTopic(o.changelogTopic, partitions, (short) 1).configs(compacted),
              new NewTopic(o.dlqTopic, 1, (short) 1))) {
        try {
          admin.createTopics(List.of(t)).all().get(30, TimeUnit.SECONDS);
        } catch (java.util.concurrent.ExecutionException e) {
          if (!(e.getCause() instanceof TopicExistsException)) {
            throw e;
          }
        }
      }
    }
  }

  /** Keeps {@link PeerMetrics#RUNNING} current (a daemon thread, every 200 ms). */
  static void watchStatus(JobClient job) {
    Thread t =
        new Thread(
            () -> {
              while (true) {
                try {
                  var status = job.getJobStatus().get(5, TimeUnit.SECONDS);
                  PeerMetrics.GLOBAL.running(
                      status == org.apache.flink.api.common.JobStatus.RUNNING);
                  if (status.isGloballyTerminalState()) {
                    return;
                  }
                  Thread.sleep(200);
                } catch (InterruptedException e) {
                  return;
                } catch (Exception e) {
                  PeerMetrics.GLOBAL.running(false);
                  try {
                    Thread.sleep(200);
                  } catch (InterruptedException stop) {
                    return;
                  }
                }
              }
            },
            "peer-job-status");
    t.setDaemon(true);
    t.start();
  }

  public static void main(String[] args) throws Exception {
    Options o;
    try {
      o = Options.parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println("flink-peer: " + e.getMessage());
      System.exit(2);
      return;
    }
    long started = System.nanoTime();
    if (o.metricsAddr != null) {
      PeerMetrics.serve(o.metricsAddr);
    }
    CassandraSink.migrate(o.cqlHost(), o.cqlPort(), o.datacenter, o.keyspace);
    ensureTopics(o);

    Configuration conf = new Configuration();
    // Heap state: the model is a few hash maps per key and must be read whole by every
    // flush; RocksDB would serialize each access (see README).
    conf.set(StateBackendOptions.STATE_BACKEND, "hashmap");
    conf.set(CheckpointingOptions.CHECKPOINT_STORAGE, "filesystem");
    Path dir = Path.of(o.checkpointDir).toAbsolutePath();
    Files.createDirectories(dir);
    conf.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, dir.toUri().toString());
    conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
    conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 3);
    conf.set(
        RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, java.time.Duration.ofSeconds(1));
    // The partitions the source holds, for readiness (SourceReporter).
    conf.set(
        ConfigOptions.key("metrics.reporter.peer.factory.class").stringType().noDefaultValue(),
        SourceReporter.Factory.class.getName());
    StreamExecutionEnvironment env =
        StreamExecutionEnvironment.createLocalEnvironment(o.parallelism, conf);
    // At-least-once: barriers are not aligned (no waiting on the slower input), and the
    // sinks are idempotent, so a replay after a restore rewrites the same rows.
    env.enableCheckpointing(o.checkpointMs, CheckpointingMode.AT_LEAST_ONCE);
    // A record crosses three keyed exchanges to reach the model stage, and each holds a
    // buffer until it is full or this much time has passed (Flink's default: 100 ms).
    // At low rates buffers never fill, so the default alone put p50 at 100-250 ms.
    // Flink's docs ("Controlling Latency") suggest 5 or 10 ms to minimize latency.
    env.setBufferTimeout(o.bufferTimeoutMs);

    var source =
        KafkaSource.<RawRecord>builder()
            .setBootstrapServers(o.brokers)
            .setTopics(o.topic)
            .setGroupId(o.group)
            .setStartingOffsets(OffsetsInitializer.earliest())
            .setDeserializer(new RawDeserializer());
    if (o.bounded) {
      source.setBounded(OffsetsInitializer.latest());
    }
    DataStream<RawRecord> raw =
        env.fromSource(source.build(), WatermarkStrategy.noWatermarks(), "kafka: " + o.topic);

    SingleOutputStreamOperator<Event> events = raw.process(new Decode()).name("decode");
    events
        .getSideOutput(Decode.DEAD)
        .sinkTo(
            KafkaSink.<DeadLetter>builder()
                .setBootstrapServers(o.brokers)
                .setRecordSerializer(new DeadLetterSerializer(o.dlqTopic))
                .setDeliveryGuarantee(DeliveryGuarantee.AT_LEAST_ONCE)
                .build())
        .name("kafka: " + o.dlqTopic);

    SingleOutputStreamOperator<PairUpdate> states =
        events
            .keyBy(e -> e.state.reviewId, Types.STRING)
            .process(new LatestState())
            .name("latest state per review");
    states
        .getSideOutput(LatestState.CHANGELOG)
        .sinkTo(
            KafkaSink.<ChangelogRecord>builder()
                .setBootstrapServers(o.brokers)
                .setRecordSerializer(new ChangelogSerializer(o.changelogTopic))
                .setDeliveryGuarantee(DeliveryGuarantee.AT_LEAST_ONCE)
                .build())
        .name("kafka: " + o.changelogTopic);

    SingleOutputStreamOperator<PairChange> pairs =
        states
            .keyBy(PairUpdate::pairKey, Types.STRING)
            .process(new PairLikes())
            .name("like per (user, movie)");
    SingleOutputStreamOperator<Row> rows =
        pairs
            .keyBy(p -> 0, Types.INT)
            .process(new ModelFunction(o.flushMs, o.refreshMaxRows))
            .name("model: N, C, top-20")
            .setParallelism(1)
            .setMaxParallelism(1);
    rows.sinkTo(
            new CassandraSink(
                o.cqlHost(), o.cqlPort(), o.datacenter, o.keyspace, o.maxInFlight))
        .name("cassandra: " + o.keyspace)
        .setParallelism(1);

    JobClient job = env.executeAsync("cinerec recommender (Flink peer)");
    watchStatus(job);
    JobExecutionResult result;
    try {
      result =
          o.seconds > 0
              ? job.getJobExecutionResult().get(o.seconds, TimeUnit.SECONDS)
              : job.getJobExecutionResult().get();
    } catch (TimeoutException e) {
      System.err.println("flink-peer: " + o.seconds + " s elapsed: cancelling");
      job.cancel().get(60, TimeUnit.SECONDS);
      result = null;
    }
    double secs = (System.nanoTime() - started) / 1e9;
    System.out.printf(
        "flink-peer: %s in %.1f s (job %s, keyspace %s, changelog %s)%n",
        result == null ? "stopped" : "finished",
        secs,
        job.getJobID(),
        o.keyspace,
        o.changelogTopic);
    if (result != null) {
      for (var e : new java.util.TreeMap<>(result.getAllAccumulatorResults()).entrySet()) {
        System.out.printf("flink-peer: %s = %s%n", e.getKey(), e.getValue());
      }
    }
    System.exit(0);
  }
}
