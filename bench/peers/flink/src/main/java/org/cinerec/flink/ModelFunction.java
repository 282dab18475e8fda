package org.cinerec.flink;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.TimeDomain;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;
import org.cinerec.flink.Types.PairChange;
import org.cinerec.flink.Types.Row;

/**
 * Stage 3: the item-item co-occurrence model of DESIGN.md section 5 and the serving
 * rows it implies. {@code N(i)} = users who like i, {@code C(i,j)} = users who like
 * both, similarity the shrunk cosine {@code C(i,j)/sqrt(N(i)N(j)) * C(i,j)/(C(i,j) +
 * SHRINKAGE)} (model.rs {@code shrunk_cosine}); a user's recommendations are the top
 * {@link #TOP_N} movies they have no live review of, by summed similarity to the movies
 * they like, ties by lower movie id, scores &gt; 0 only (model.rs {@code recommend},
 * {@code top_k}); a movie's similar movies are its top {@link #TOP_N} by similarity.
 *
 * <p>One key holds the whole model: a user's recommendations read {@code N} and
 * {@code C} rows of arbitrary movies, so the model cannot be split by a key without a
 * cross-key read per candidate. cinerec makes the same choice (every instance holds the
 * full model). The state is still Flink keyed state (MapStates under that key), so it
 * is checkpointed and restored by Flink like any other.
 *
 * <p>Rows are not written per event: a like change marks movies and users dirty (in
 * keyed state, so a checkpoint taken before the flush keeps them), and a flush every
 * {@code flushMs} of processing time (and once more at the end of a bounded input, on
 * the final watermark) writes each dirty row whole, as the recommender's flush loop
 * does. Which rows a like change of (u, m) makes dirty: m's N changed, so similarity(m,
 * j) for every current neighbour j; the C entries of m with u's other likes changed;
 * the similar-movies row of every such movie, and the recommendations of every user
 * who likes one of them.
 *
 * <p>A flush is budgeted as the recommender's is ({@code DEFAULT_REFRESH_MAX_USERS} in
 * recommender/src/config.rs): the rows of users whose own events advanced are all
 * written, first; the background refresh (similar-movies rows, then the other dirty
 * users) recomputes at most {@code refreshMaxRows} rows and leaves the rest dirty for
 * the next flush, so a flush stays short however far a like reaches, and every row is
 * still written in the end. The end-of-input flush has no budget: it writes every dirty
 * row, so a bounded run ends with the whole model served.
 */
public final class ModelFunction extends KeyedProcessFunction<Integer, PairChange, Row> {
  /** Recommendations per user and similar movies per movie (model.rs TOP_N). */
  public static final int TOP_N = 20;

  /**
   * The lambda of the similarity's shrinkage factor {@code C/(C + lambda)}: model.rs
   * {@code SHRINKAGE} (why 25 is written there). Both sides must hold the same value or
   * reconcile reports every score.
   */
  public static final double SHRINKAGE = 25.0;

  private final long flushMs;
  private final int refreshMaxRows;

  /** {@code C(i, j)} rows, symmetric: c[i][j] == c[j][i]; absent when 0. */
  private transient MapState<Long, Map<Long, Integer>> c;
  /** {@code N(i)}; absent when 0. */
  private transient MapState<Long, Integer> n;
  /** Movies each user likes (as keys); users without likes are absent. */
  private transient MapState<Long, Map<Long, Boolean>> likes;
  /** Users who like each movie: the reverse index of {@link #likes}. */
  private transient MapState<Long, Map<Long, Boolean>> likers;
  /** Movies each user has a live review of: never recommended to them. */
  private transient MapState<Long, Map<Long, Boolean>> seen;
  /** Movies whose N changed since the last flush. */
  private transient MapState<Long, Boolean> changedN;
  /** Movies whose similar-movies row (and likers' recommendations) may be stale. */
  private transient MapState<Long, Boolean> dirtyMovies;
  /** Users whose recommendations may be stale. */
  private transient MapState<Long, Boolean> dirtyUsers;
  /**
   * Users whose own events advanced since their last row, with those events' Kafka
   * timestamps (ms): their rows go first at the next flush, and carry the timestamps to
   * the sink, which measures the latency once the row is durable.
   */
  private transient MapState<Long, List<Long>> direct;
  /** The pending processing-time flush, if any. */
  private transient ValueState<Long> flushAt;
  /** Whether the end-of-input flush timer is registered. */
  private transient ValueState<Boolean> finalTimer;

  /**
   * A copy of {@link #n} taken at the start of a flush, read by the row computations
   * in its place: a row visits {@code N} of every co-liked movie, and a plain map read
   * costs less than a keyed-state read (key group, namespace, then the entry). No
   * event is processed during a flush, so the copy is exact; null outside a flush.
   */
  private transient Map<Long, Integer> nView;

  private transient Count likeChanges;
  private transient Count rowsOut;

  /**
   * @param flushMs period of the flush of serving rows
   * @param refreshMaxRows most background-refresh rows recomputed per periodic flush
   */
  public ModelFunction(long flushMs, int refreshMaxRows) {
    this.flushMs = flushMs;
    this.refreshMaxRows = refreshMaxRows;
  }

  @Override
  public void open(OpenContext ctx) {
    TypeInformation<Map<Long, Integer>> row = Types.MAP(Types.LONG, Types.INT);
    TypeInformation<Map<Long, Boolean>> set = Types.MAP(Types.LONG, Types.BOOLEAN);
    var rc = getRuntimeContext();
    c = rc.getMapState(new MapStateDescriptor<>("c", Types.LONG, row));
    n = rc.getMapState(new MapStateDescriptor<>("n", Types.LONG, Types.INT));
    likes = rc.getMapState(new MapStateDescriptor<>("likes", Types.LONG, set));
    likers = rc.getMapState(new MapStateDescriptor<>("likers", Types.LONG, set));
    seen = rc.getMapState(new MapStateDescriptor<>("seen", Types.LONG, set));
    changedN = rc.getMapState(new MapStateDescriptor<>("changedN", Types.LONG, Types.BOOLEAN));
    dirtyMovies =
        rc.getMapState(new MapStateDescriptor<>("dirtyMovies", Types.LONG, Types.BOOLEAN));
    dirtyUsers = rc.getMapState(new MapStateDescriptor<>("dirtyUsers", Types.LONG, Types.BOOLEAN));
    direct =
        rc.getMapState(new MapStateDescriptor<>("direct", Types.LONG, Types.LIST(Types.LONG)));
    flushAt = rc.getState(new ValueStateDescriptor<>("flushAt", Types.LONG));
    finalTimer = rc.getState(new ValueStateDescriptor<>("finalTimer", Types.BOOLEAN));
    likeChanges = new Count(rc, "likeChanges");
    rowsOut = new Count(rc, "rowsOut");
  }

  @Override
  public void processElement(PairChange ch, Context ctx, Collector<Row> out) throws Exception {
    long u = ch.userId;
    long m = ch.movieId;
    if (ch.kafkaTsMs > 0) {
      PeerMetrics.GLOBAL.arrived(ch.kafkaTsMs);
    }
    // A live review (liked or not) hides the movie from the user's recommendations.
    if (ch.live) {
      Map<Long, Boolean> s = orEmpty(seen.get(u));
      s.put(m, true);
      seen.put(u, s);
    } else {
      Map<Long, Boolean> s = seen.get(u);
      if (s != null) {
        s.remove(m);
        if (s.isEmpty()) {
          seen.remove(u);
        } else {
          seen.put(u, s);
        }
      }
    }
    dirtyUsers.put(u, true);
    if (ch.kafkaTsMs > 0) {
      List<Long> ts = direct.get(u);
      if (ts == null) {
        ts = new ArrayList<>();
      }
      ts.add(ch.kafkaTsMs);
      direct.put(u, ts);
    }
    Map<Long, Boolean> liked = orEmpty(likes.get(u));
    boolean was = liked.containsKey(m);
    if (ch.liked && !was) {
      like(u, m, liked);
    } else if (!ch.liked && was) {
      unlike(u, m, liked);
    } else {
      schedule(ctx);
      return;
    }
    likeChanges.inc();
    changedN.put(m, true);
    dirtyMovies.put(m, true);
    Map<Long, Boolean> now = likes.get(u);
    if (now != null) {
      for (Long other : now.keySet()) {
        dirtyMovies.put(other, true);
      }
    }
    schedule(ctx);
  }

  private void schedule(Context ctx) throws Exception {
    if (flushAt.value() == null) {
      long at = ctx.timerService().currentProcessingTime() + flushMs;
      ctx.timerService().registerProcessingTimeTimer(at);
      flushAt.update(at);
    }
    if (finalTimer.value() == null) {
      // Fires on the final watermark (Long.MAX_VALUE) a bounded source emits when it
      // ends: processing-time timers still pending then are not fired.
      ctx.timerService().registerEventTimeTimer(Long.MAX_VALUE);
      finalTimer.update(true);
    }
  }

  @Override
  public void onTimer(long ts, OnTimerContext ctx, Collector<Row> out) throws Exception {
    if (ctx.timeDomain() == TimeDomain.PROCESSING_TIME) {
      flushAt.clear();
      flush(out, refreshMaxRows);
      if (!changedN.isEmpty() || !dirtyMovies.isEmpty() || !dirtyUsers.isEmpty()) {
        // Budget spent with rows left: they go at the next tick, events or not.
        schedule(ctx);
      }
    } else {
      finalTimer.clear();
      flush(out, Integer.MAX_VALUE);
    }
  }

  private void like(long u, long m, Map<Long, Boolean> liked) throws Exception {
    for (Long other : liked.keySet()) {
      bump(m, other, 1);
      bump(other, m, 1);
    }
    liked.put(m, true);
    likes.put(u, liked);
    Integer nm = n.get(m);
    n.put(m, nm == null ? 1 : nm + 1);
    Map<Long, Boolean> users = orEmpty(likers.get(m));
    users.put(u, true);
    likers.put(m, users);
  }

  private void unlike(long u, long m, Map<Long, Boolean> liked) throws Exception {
    liked.remove(m);
    for (Long other : liked.keySet()) {
      bump(m, other, -1);
      bump(other, m, -1);
    }
    if (liked.isEmpty()) {
      likes.remove(u);
    } else {
      likes.put(u, liked);
    }
    Integer nm = n.get(m);
    if (nm != null) {
      if (nm <= 1) {
        n.remove(m);
      } else {
        n.put(m, nm - 1);
      }
    }
    Map<Long, Boolean> users = likers.get(m);
    if (users != null) {
      users.remove(u);
      if (users.isEmpty()) {
        likers.remove(m);
      } else {
        likers.put(m, users);
      }
    }
  }

  /** c[i][j] += delta, dropping zero entries and empty rows. */
  private void bump(long i, long j, int delta) throws Exception {
    Map<Long, Integer> row = c.get(i);
    if (row == null) {
      row = new HashMap<>();
    }
    int now = row.getOrDefault(j, 0) + delta;
    if (now <= 0) {
      row.remove(j);
    } else {
      row.put(j, now);
    }
    if (row.isEmpty()) {
      c.remove(i);
    } else {
      c.put(i, row);
    }
  }

  private static Map<Long, Boolean> orEmpty(Map<Long, Boolean> m) {
    return m == null ? new HashMap<>() : m;
  }

  private int nOf(long movie) throws Exception {
    Integer v = nView != null ? nView.get(movie) : n.get(movie);
    return v == null ? 0 : v;
  }

  /**
   * Writes dirty rows whole and forgets their dirty marks. The rows of users whose own
   * events advanced go first, all of them (their latency is the one measured, as the
   * recommender writes those rows first and alone); then at most {@code budget} rows of
   * the background refresh: similar-movies rows of dirty movies (each marking its likers
   * dirty), then other dirty users. A user's row is written once per flush; what the
   * budget leaves stays dirty.
   */
  private void flush(Collector<Row> out, int budget) throws Exception {
    long started = System.nanoTime();
    nView = new HashMap<>();
    for (Map.Entry<Long, Integer> e : n.entries()) {
      nView.put(e.getKey(), e.getValue());
    }
    try {
      flushRows(out, budget, started);
    } finally {
      nView = null;
    }
  }

  private void flushRows(Collector<Row> out, int budget, long started) throws Exception {
    java.util.Set<Long> written = new java.util.HashSet<>();
    List<Map.Entry<Long, List<Long>>> firsts = new ArrayList<>();
    for (Map.Entry<Long, List<Long>> e : direct.entries()) {
      firsts.add(Map.entry(e.getKey(), List.copyOf(e.getValue())));
    }
    direct.clear();
    for (Map.Entry<Long, List<Long>> e : firsts) {
      Row r = recommend(e.getKey());
      r.eventTs = e.getValue().stream().mapToLong(Long::longValue).toArray();
      written.add(e.getKey());
      emit(out, r);
    }
    List<Long> movies = new ArrayList<>();
    for (Long m : changedN.keys()) {
      movies.add(m);
    }
    for (Long m : movies) {
      Map<Long, Integer> row = c.get(m);
      if (row != null) {
        for (Long j : row.keySet()) {
          dirtyMovies.put(j, true);
        }
      }
    }
    changedN.clear();
    movies.clear();
    for (Long m : dirtyMovies.keys()) {
      if (movies.size() >= budget) {
        break;
      }
      movies.add(m);
    }
    for (Long m : movies) {
      dirtyMovies.remove(m);
    }
    int left = budget - movies.size();
    for (Long m : movies) {
      emit(out, similar(m));
      Map<Long, Boolean> users = likers.get(m);
      if (users != null) {
        for (Long v : users.keySet()) {
          dirtyUsers.put(v, true);
        }
      }
    }
    // The direct rows were computed from this same state: they are current.
    for (Long u : written) {
      dirtyUsers.remove(u);
    }
    List<Long> users = new ArrayList<>();
    for (Long u : dirtyUsers.keys()) {
      if (users.size() >= left) {
        break;
      }
      users.add(u);
    }
    for (Long u : users) {
      dirtyUsers.remove(u);
      written.add(u);
      emit(out, recommend(u));
    }
    PeerMetrics.GLOBAL.flushed((System.nanoTime() - started) / 1e9, written.size(), movies.size());
  }

  private void emit(Collector<Row> out, Row r) {
    rowsOut.inc();
    out.collect(r);
  }

  /** The similar-movies row of {@code movie}: model.rs {@code Model::similar}. */
  Row similar(long movie) throws Exception {
    Map<Long, Double> scores = new HashMap<>();
    Map<Long, Integer> row = c.get(movie);
    int ni = nOf(movie);
    if (row != null && ni > 0) {
      for (Map.Entry<Long, Integer> e : row.entrySet()) {
        int nj = nOf(e.getKey());
        if (nj > 0) {
          scores.put(e.getKey(), similarity(e.getValue(), ni, nj));
        }
      }
    }
    return top(Row.SIMILAR, movie, scores);
  }

  /** The recommendations row of {@code user}: model.rs {@code Model::recommend}. */
  Row recommend(long user) throws Exception {
    Map<Long, Double> scores = new HashMap<>();
    Map<Long, Boolean> liked = likes.get(user);
    Map<Long, Boolean> hidden = seen.get(user);
    if (liked != null) {
      for (Long i : liked.keySet()) {
        int ni = nOf(i);
        Map<Long, Integer> row = c.get(i);
        if (ni == 0 || row == null) {
          continue;
        }
        for (Map.Entry<Long, Integer> e : row.entrySet()) {
          long j = e.getKey();
          if (hidden != null && hidden.containsKey(j)) {
            continue;
          }
          int nj = nOf(j);
          if (nj == 0) {
            continue;
          }
          scores.merge(j, similarity(e.getValue(), ni, nj), Double::sum);
        }
      }
    }
    return top(Row.RECOMMENDATIONS, user, scores);
  }

  /**
   * The similarity of two movies from {@code C(i,j)}, {@code N(i)}, {@code N(j)} (both N
   * &gt; 0), evaluated left to right in the same order as model.rs {@code shrunk_cosine},
   * so both sides compute the same doubles.
   */
  static double similarity(int cij, int ni, int nj) {
    double c = cij;
    return c / Math.sqrt((double) ni * (double) nj) * c / (c + SHRINKAGE);
  }

  /** The best {@link #TOP_N} with score &gt; 0, by score then lower id (model.rs top_k). */
  static Row top(int table, long key, Map<Long, Double> scores) {
    List<Map.Entry<Long, Double>> all = new ArrayList<>();
    for (Map.Entry<Long, Double> e : scores.entrySet()) {
      if (e.getValue() > 0.0) {
        all.add(e);
      }
    }
    all.sort(
        (a, b) -> {
          int byScore = Double.compare(b.getValue(), a.getValue());
          return byScore != 0 ? byScore : Long.compare(a.getKey(), b.getKey());
        });
    int k = Math.min(TOP_N, all.size());
    Row r = new Row();
    r.table = table;
    r.key = key;
    r.movies = new long[k];
    r.scores = new double[k];
    for (int x = 0; x < k; x++) {
      r.movies[x] = all.get(x).getKey();
      r.scores[x] = all.get(x).getValue();
    }
    return r;
  }
}
