package org.cinerec.flink;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;
import org.cinerec.flink.Types.PairChange;
import org.cinerec.flink.Types.PairUpdate;
import org.cinerec.flink.Types.ReviewState;

/**
 * Stage 2, keyed by (user, movie): a user may have several live reviews of one movie;
 * the one with the greatest (changed_at, version, review_id) is the user's rating of it,
 * and the user likes the movie when that rating is at least {@link #LIKE_THRESHOLD}
 * (recommender/src/model.rs, "What counts as a user's rating of a movie"). Emits a
 * {@link PairChange} with the pair's (has a live review, likes) on every advanced state,
 * changed or not (an unchanged one only rewrites the user's row, which is how the
 * recommender treats every advanced event), and on a removal that changes it.
 */
public final class PairLikes extends KeyedProcessFunction<String, PairUpdate, PairChange> {
  /** Ratings at or above this are likes (model.rs LIKE_THRESHOLD). */
  public static final float LIKE_THRESHOLD = 4.0f;

  private static final int NONE = 0;
  private static final int LIVE = 1;
  private static final int LIKED = 2;

  /** The latest state of every live review currently on this pair. */
  private transient MapState<String, ReviewState> reviews;

  /** Invariant: NONE, LIVE or LIKED as computed from {@link #reviews} (null = NONE). */
  private transient ValueState<Integer> status;

  @Override
  public void open(OpenContext ctx) {
    reviews =
        getRuntimeContext()
            .getMapState(
                new MapStateDescriptor<>(
                    "reviews", Types.STRING, TypeInformation.of(ReviewState.class)));
    status = getRuntimeContext().getState(new ValueStateDescriptor<>("status", Types.INT));
  }

  @Override
  public void processElement(PairUpdate u, Context ctx, Collector<PairChange> out)
      throws Exception {
    if (u.remove || u.state.deleted) {
      // A tombstone rates nothing; stage 1 keeps it, so older versions stay stale.
      reviews.remove(u.reviewId);
    } else {
      reviews.put(u.reviewId, u.state);
    }
    ReviewState best = null;
    for (ReviewState r : reviews.values()) {
      if (best == null || r.compareRecency(best) > 0) {
        best = r;
      }
    }
    int now = best == null ? NONE : (best.rating >= LIKE_THRESHOLD ? LIKED : LIVE);
    Integer was = status.value();
    boolean changed = !(was != null && was == now || was == null && now == NONE);
    if (!changed && u.kafkaTsMs == 0) {
      // A removal that changes nothing: no event of this user to account for.
      return;
    }
    if (changed) {
      if (now == NONE) {
        status.clear();
      } else {
        status.update(now);
      }
    }
    PairChange c = new PairChange();
    c.userId = u.userId;
    c.movieId = u.movieId;
    c.live = now != NONE;
    c.liked = now == LIKED;
    c.kafkaTsMs = u.kafkaTsMs;
    out.collect(c);
  }
}
