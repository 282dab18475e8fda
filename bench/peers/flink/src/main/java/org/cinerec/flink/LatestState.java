package org.cinerec.flink;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;
import org.cinerec.flink.Types.ChangelogRecord;
import org.cinerec.flink.Types.Event;
import org.cinerec.flink.Types.PairUpdate;
import org.cinerec.flink.Types.ReviewState;

/**
 * Stage 1, keyed by review id: the latest state per review by {@code version}, as
 * {@code Model::apply} keeps it. A state not newer than the one held is stale and
 * changes nothing (so redeliveries and out-of-order versions are harmless); a deletion
 * is kept as a tombstone that older versions cannot resurrect. An advanced state goes
 * to the (user, movie) stage (with a removal from the old pair if the review moved),
 * and to the changelog side output (the recommender's changelog format, which
 * {@code recommender reconcile} replays).
 */
public final class LatestState extends KeyedProcessFunction<String, Event, PairUpdate> {
  /** The advanced states, as changelog records. */
  public static final OutputTag<ChangelogRecord> CHANGELOG =
      new OutputTag<>("changelog", TypeInformation.of(ChangelogRecord.class));

  /** Invariant: the highest-version state seen of this review (tombstones included). */
  private transient ValueState<ReviewState> latest;

  private transient Count advanced;
  private transient Count stale;

  @Override
  public void open(OpenContext ctx) {
    latest =
        getRuntimeContext()
            .getState(new ValueStateDescriptor<>("latest", TypeInformation.of(ReviewState.class)));
    advanced = new Count(getRuntimeContext(), "statesAdvanced");
    stale = new Count(getRuntimeContext(), "statesStale");
  }

  @Override
  public void processElement(Event e, Context ctx, Collector<PairUpdate> out) throws Exception {
    ReviewState s = e.state;
    ReviewState prev = latest.value();
    if (prev != null && prev.version >= s.version) {
      stale.inc();
      PeerMetrics.GLOBAL.stale();
      return;
    }
    latest.update(s);
    advanced.inc();
    if (prev != null && (prev.userId != s.userId || prev.movieId != s.movieId)) {
      PairUpdate gone = new PairUpdate();
      gone.userId = prev.userId;
      gone.movieId = prev.movieId;
      gone.reviewId = s.reviewId;
      gone.remove = true;
      out.collect(gone);
    }
    PairUpdate put = new PairUpdate();
    put.userId = s.userId;
    put.movieId = s.movieId;
    put.reviewId = s.reviewId;
    put.state = s;
    put.kafkaTsMs = e.kafkaTsMs;
    out.collect(put);

    ChangelogRecord c = new ChangelogRecord();
    c.key = Decode.uuidBytes(s);
    c.value = e.payload;
    c.partition = e.partition;
    ctx.output(CHANGELOG, c);
  }
}
