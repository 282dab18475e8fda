package org.cinerec.flink;

import java.util.Properties;
import org.apache.flink.metrics.Metric;
import org.apache.flink.metrics.MetricConfig;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.metrics.reporter.MetricReporter;
import org.apache.flink.metrics.reporter.MetricReporterFactory;

/**
 * A Flink metric reporter that watches one thing: the Kafka source reader registers a
 * {@code KafkaSourceReader.topic.<t>.partition.<p>.currentOffset} gauge when it is
 * assigned a partition's split (and drops it when the split goes), so the count of those
 * gauges is the partitions the job consumes now — {@link PeerMetrics#PARTITIONS}, what
 * the benchmark waits for before it offers load. Installed by the job's configuration
 * ({@code metrics.reporter.peer.factory.class}); found by Flink's ServiceLoader lookup
 * (META-INF/services).
 */
public final class SourceReporter implements MetricReporter {
  /** The gauge the source reader registers per assigned partition. */
  static final String OFFSET_GAUGE = "currentOffset";

  /** Found by Flink through META-INF/services. */
  public static final class Factory implements MetricReporterFactory {
    @Override
    public MetricReporter createMetricReporter(Properties properties) {
      return new SourceReporter();
    }
  }

  @Override
  public void open(MetricConfig config) {}

  @Override
  public void close() {}

  private static boolean isPartitionOffset(String name, MetricGroup group) {
    return name.equals(OFFSET_GAUGE)
        && group.getMetricIdentifier(name).contains(".KafkaSourceReader.topic.");
  }

  @Override
  public void notifyOfAddedMetric(Metric metric, String name, MetricGroup group) {
    if (isPartitionOffset(name, group)) {
      PeerMetrics.GLOBAL.partitionAdded();
    }
  }

  @Override
  public void notifyOfRemovedMetric(Metric metric, String name, MetricGroup group) {
    if (isPartitionOffset(name, group)) {
      PeerMetrics.GLOBAL.partitionRemoved();
    }
  }
}
