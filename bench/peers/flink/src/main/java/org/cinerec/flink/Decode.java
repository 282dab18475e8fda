package org.cinerec.flink;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.util.UUID;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;
import org.cinerec.flink.Types.DeadLetter;
import org.cinerec.flink.Types.Event;
import org.cinerec.flink.Types.RawRecord;
import org.cinerec.flink.Types.ReviewState;

/**
 * Decodes {@code reviews.enriched} payloads: Avro single-object encoding (C3 01, the
 * writer schema's CRC-64-AVRO fingerprint, then the datum) against the contract file
 * {@code protocols/review_enriched.avsc} (packed into the jar by the pom), then the
 * recommender's validation (rating finite and within 0-5, version at least 1). A record
 * that fails goes to the dead-letter side output with the reason, and is counted: it
 * never stops the job and is never silently dropped.
 */
public final class Decode extends ProcessFunction<RawRecord, Event> {
  /** Where undecodable or invalid records go. */
  public static final OutputTag<DeadLetter> DEAD =
      new OutputTag<>("dead-letters", org.apache.flink.api.common.typeinfo.TypeInformation.of(DeadLetter.class));

  /** The contract file's name inside the jar. */
  static final String SCHEMA_RESOURCE = "/review_enriched.avsc";

  private transient BinaryMessageDecoder<GenericRecord> decoder;
  private transient Count decoded;
  private transient Count dead;

  /** The reader schema: the contract file. */
  static Schema schema() throws IOException {
    try (InputStream in = Decode.class.getResourceAsStream(SCHEMA_RESOURCE)) {
      if (in == null) {
        throw new IOException(SCHEMA_RESOURCE + " is not in the jar: rebuild it with the pom");
      }
      return new Schema.Parser().parse(in);
    }
  }

  @Override
  public void open(OpenContext ctx) throws Exception {
    decoder = new BinaryMessageDecoder<>(GenericData.get(), schema());
    decoded = new Count(getRuntimeContext(), "eventsDecoded");
    dead = new Count(getRuntimeContext(), "eventsDeadLettered");
  }

  @Override
  public void processElement(RawRecord r, Context ctx, Collector<Event> out) {
    try {
      Event e = new Event();
      e.state = parse(r.value);
      e.partition = r.partition;
      e.payload = r.value;
      decoded.inc();
      out.collect(e);
    } catch (Invalid | RuntimeException | IOException err) {
      DeadLetter d = new DeadLetter();
      d.topic = r.topic;
      d.partition = r.partition;
      d.offset = r.offset;
      d.key = r.key;
      d.value = r.value;
      d.error = err.getMessage() == null ? err.getClass().getSimpleName() : err.getMessage();
      dead.inc();
      ctx.output(DEAD, d);
    }
  }

  /** Why a decoded record is still unusable. */
  static final class Invalid extends Exception {
    Invalid(String why) {
      super(why);
    }
  }

  /** The review state of one payload, or why there is none. */
  ReviewState parse(byte[] payload) throws IOException, Invalid {
    if (payload == null) {
      throw new Invalid("empty payload");
    }
    GenericRecord rec;
    try {
      rec = decoder.decode(ByteBuffer.wrap(payload));
    } catch (IOException | RuntimeException e) {
      throw new Invalid("undecodable EnrichedReview: " + e);
    }
    UUID id;
    try {
      id = UUID.fromString(String.valueOf(rec.get("review_id")));
    } catch (IllegalArgumentException e) {
      throw new Invalid("review_id is not a UUID: " + rec.get("review_id"));
    }
    ReviewState s = new ReviewState();
    s.reviewId = id.toString();
    s.idHigh = id.getMostSignificantBits();
    s.idLow = id.getLeastSignificantBits();
    s.userId = (Long) rec.get("user_id");
    s.movieId = (Long) rec.get("movie_id");
    s.version = (Long) rec.get("version");
    s.changedAtUs = (Long) rec.get("changed_at");
    Object rating = rec.get("rating");
    // A null rating is a tombstone, whatever `deleted` says (pipeline::review_state).
    s.deleted = (Boolean) rec.get("deleted") || rating == null;
    if (rating != null) {
      float r = (Float) rating;
      if (!Float.isFinite(r) || r < 0.0f || r > 5.0f) {
        throw new Invalid("invalid rating " + r + " of review " + id);
      }
      s.rating = s.deleted ? 0.0f : r;
    }
    if (s.version < 1) {
      throw new Invalid("invalid version " + s.version + " of review " + id);
    }
    return s;
  }

  /** The 16 big-endian bytes of a UUID: the changelog's record key. */
  static byte[] uuidBytes(ReviewState s) {
    return ByteBuffer.allocate(16).putLong(s.idHigh).putLong(s.idLow).array();
  }
}
