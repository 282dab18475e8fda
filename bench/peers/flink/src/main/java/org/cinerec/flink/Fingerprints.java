package org.cinerec.flink;

import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.Set;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;

/**
 * The writer fingerprints of {@code reviews.enriched} payloads that name the contract
 * schema.
 *
 * <p>cinerec's writers (Rust, apache-avro) fingerprint a canonical form that keeps a
 * primitive with a logical type as an object, {@code {"type":"string"}} for a {@code
 * uuid}, where the specification's Parsing Canonical Form (and Java's {@link
 * SchemaNormalization}) reduces it to {@code "string"}. So the same schema has two
 * fingerprints: the specification's, and the one cinerec writes today. The decoder
 * accepts both, computed from the same contract file, so neither is hard-coded.
 */
final class Fingerprints {
  private Fingerprints() {}

  /** The specification's CRC-64-AVRO fingerprint of the Parsing Canonical Form. */
  static long spec(Schema s) {
    return SchemaNormalization.parsingFingerprint64(s);
  }

  /** The fingerprint cinerec's Rust writers put in payloads of {@code s}. */
  static long cinerec(Schema s) {
    StringBuilder out = new StringBuilder();
    write(s, new HashSet<>(), out);
    return SchemaNormalization.fingerprint64(out.toString().getBytes(StandardCharsets.UTF_8));
  }

  /**
   * The Parsing Canonical Form, except that a primitive carrying a logical type stays an
   * object with only its type (what apache-avro's {@code canonical_form} produces).
   * Names and symbols are Avro names ([A-Za-z0-9_.]), so they need no JSON escaping.
   */
  static void write(Schema s, Set<String> named, StringBuilder out) {
    switch (s.getType()) {
      case RECORD, ENUM, FIXED -> {
        String name = s.getFullName();
        if (!named.add(name)) {
          out.append('"').append(name).append('"');
          return;
        }
        out.append("{\"name\":\"").append(name).append("\",\"type\":\"");
        out.append(s.getType().getName()).append('"');
        if (s.getType() == Schema.Type.RECORD) {
          out.append(",\"fields\":[");
          boolean first = true;
          for (Schema.Field f : s.getFields()) {
            out.append(first ? "" : ",").append("{\"name\":\"").append(f.name());
            out.append("\",\"type\":");
            write(f.schema(), named, out);
            out.append('}');
            first = false;
          }
          out.append(']');
        } else if (s.getType() == Schema.Type.ENUM) {
          out.append(",\"symbols\":[");
          boolean first = true;
          for (String sym : s.getEnumSymbols()) {
            out.append(first ? "" : ",").append('"').append(sym).append('"');
            first = false;
          }
          out.append(']');
        } else {
          out.append(",\"size\":").append(s.getFixedSize());
        }
        out.append('}');
      }
      case ARRAY -> {
        out.append("{\"type\":\"array\",\"items\":");
        write(s.getElementType(), named, out);
        out.append('}');
      }
      case MAP -> {
        out.append("{\"type\":\"map\",\"values\":");
        write(s.getValueType(), named, out);
        out.append('}');
      }
      case UNION -> {
        out.append('[');
        boolean first = true;
        for (Schema b : s.getTypes()) {
          out.append(first ? "" : ",");
          write(b, named, out);
          first = false;
        }
        out.append(']');
      }
      default -> {
        String name = s.getType().getName();
        if (s.getProp("logicalType") != null) {
          out.append("{\"type\":\"").append(name).append("\"}");
        } else {
          out.append('"').append(name).append('"');
        }
      }
    }
  }
}
