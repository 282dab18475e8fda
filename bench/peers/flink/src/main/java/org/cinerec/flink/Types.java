package org.cinerec.flink;

/**
 * The records that flow between the job's operators. Each is a Flink POJO (public
 * fields, a public no-argument constructor), so Flink serializes it with its own
 * PojoSerializer rather than falling back to Kryo.
 */
public final class Types {
  private Types() {}

  /** One Kafka record of {@code reviews.enriched}, as read (not yet decoded). */
  public static class RawRecord {
    public String topic;
    public int partition;
    public long offset;
    public byte[] key;
    public byte[] value;
    /** The record's Kafka timestamp, ms since the epoch (where the latency starts). */
    public long timestampMs;

    public RawRecord() {}
  }

  /**
   * One review's state, as the recommender's {@code ReviewState}
   * (recommender/src/model.rs): a deletion is a tombstone that rates nothing.
   */
  public static class ReviewState {
    /** The review's UUID, canonical text form. */
    public String reviewId;
    /** The UUID as an unsigned 128-bit number, high half (tie-breaks compare it unsigned). */
    public long idHigh;
    /** Low half of the UUID. */
    public long idLow;
    public long userId;
    public long movieId;
    /** 0.5-5.0; 0 on a tombstone. */
    public float rating;
    /** Per review, strictly increasing with each change. */
    public long version;
    /** When review-svc accepted this version, µs since the epoch. */
    public long changedAtUs;
    public boolean deleted;

    public ReviewState() {}

    /**
     * The order among live reviews of one (user, movie): the greatest
     * (changed_at, version, review_id) wins, as {@code ReviewState::recency}.
     */
    public int compareRecency(ReviewState o) {
      int c = Long.compare(changedAtUs, o.changedAtUs);
      if (c != 0) {
        return c;
      }
      c = Long.compare(version, o.version);
      if (c != 0) {
        return c;
      }
      c = Long.compareUnsigned(idHigh, o.idHigh);
      return c != 0 ? c : Long.compareUnsigned(idLow, o.idLow);
    }
  }

  /** A decoded, validated event with what its changelog record needs. */
  public static class Event {
    public ReviewState state;
    /** The source partition (the changelog record goes to the same one). */
    public int partition;
    /** The original single-object-encoded payload (the changelog's value). */
    public byte[] payload;
    /** The Kafka timestamp of its record, ms. */
    public long kafkaTsMs;

    public Event() {}
  }

  /**
   * What the latest-state stage tells the (user, movie) stage: review {@code reviewId}
   * now has {@code state} on this pair, or ({@code remove}) no longer belongs to it.
   */
  public static class PairUpdate {
    public long userId;
    public long movieId;
    public String reviewId;
    public boolean remove;
    public ReviewState state;
    /** The advancing event's Kafka timestamp, ms; 0 on a removal from the old pair. */
    public long kafkaTsMs;

    public PairUpdate() {}

    public String pairKey() {
      return userId + "/" + movieId;
    }
  }

  /**
   * A (user, movie)'s effective rating after an advanced state: has a live review, likes
   * it. Sent on every advance, changed or not, so the user's row is rewritten and the
   * event's latency measured as the recommender does for every advanced event; an
   * unchanged one changes nothing in the model.
   */
  public static class PairChange {
    public long userId;
    public long movieId;
    public boolean live;
    public boolean liked;
    /** The advancing event's Kafka timestamp, ms; 0 when no event of this user advanced. */
    public long kafkaTsMs;

    public PairChange() {}
  }

  /** A changelog record: key = the review id's 16 bytes, value = the payload. */
  public static class ChangelogRecord {
    public byte[] key;
    public byte[] value;
    public int partition;

    public ChangelogRecord() {}
  }

  /** A record that cannot be processed, bound for {@code <topic>.dlq}. */
  public static class DeadLetter {
    public String topic;
    public int partition;
    public long offset;
    public byte[] key;
    public byte[] value;
    public String error;

    public DeadLetter() {}
  }

  /** One serving row, whole: writing it twice is harmless (an idempotent upsert). */
  public static class Row {
    public static final int RECOMMENDATIONS = 0;
    public static final int SIMILAR = 1;

    /** {@link #RECOMMENDATIONS} (key = user) or {@link #SIMILAR} (key = movie). */
    public int table;
    public long key;
    /** Best first. */
    public long[] movies;
    /** Summed similarity (recommendations) or similarity (similar movies). */
    public double[] scores;
    /**
     * On a recommendations row: the Kafka timestamps (ms) of the events of this user that
     * advanced since its previous row; once the row is durable they are done ({@link
     * PeerMetrics#rowDurable}). Null otherwise.
     */
    public long[] eventTs;

    public Row() {}
  }
}
