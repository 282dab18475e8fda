package org.cinerec.flink;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.UUID;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.io.DecoderFactory;
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
 * {@code protocols/review_enriched.avsc} (packed into the jar by the pom; the
 * fingerprints accepted are in {@link Fingerprints}), then the
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

  /** The single-object encoding's marker, C3 01. */
  private static final int MARKER_0 = 0xC3;

  private static final int MARKER_1 = 0x01;

  private transient long[] fingerprints;
  private transient GenericDatumReader<GenericRecord> reader;
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
    Schema contract = schema();
    long spec = Fingerprints.spec(contract);
    long cinerec = Fingerprints.cinerec(contract);
    // Payloads name their writer by fingerprint; both forms name the contract schema
    // (see Fingerprints). Any other fingerprint is an unknown writer: a dead letter.
    fingerprints = new long[] {spec, cinerec};
    reader = new GenericDatumReader<>(contract, contract);
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
      e.kafkaTsMs = r.timestampMs;
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
      PeerMetrics.GLOBAL.deadLettered();
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
    if (payload.length < 10
        || (payload[0] & 0xFF) != MARKER_0
        || (payload[1] & 0xFF) != MARKER_1) {
      throw new Invalid("undecodable EnrichedReview: not Avro single-object encoding");
    }
    long fp = ByteBuffer.wrap(payload, 2, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    if (fp != fingerprints[0] && fp != fingerprints[1]) {
      throw new Invalid(
          "undecodable EnrichedReview: unknown writer schema " + Long.toHexString(fp));
    }
    GenericRecord rec;
    try {
      var in = DecoderFactory.get().binaryDecoder(payload, 10, payload.length - 10, null);
      rec = reader.read(null, in);
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
