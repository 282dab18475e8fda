package org.cinerec.flink;

import org.apache.flink.api.common.accumulators.LongCounter;
import org.apache.flink.api.common.functions.RuntimeContext;
import org.apache.flink.metrics.Counter;

/**
 * One named count, kept twice: a Flink metric (live, per subtask) and an accumulator
 * (summed over subtasks and printed by the job when it finishes).
 */
final class Count {
  private final Counter metric;
  private final LongCounter total = new LongCounter();

  Count(RuntimeContext ctx, String name) {
    metric = ctx.getMetricGroup().counter(name);
    ctx.addAccumulator(name, total);
  }

  void inc() {
    metric.inc();
    total.add(1L);
  }
}
