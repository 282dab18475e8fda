package org.cinerec.interop;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.avro.Protocol;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericEnumSymbol;
import org.apache.avro.generic.GenericFixed;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.util.Utf8;

/**
 * The deterministic values of the interop contract: the test items, the server's
 * computations, and what a client of one version expects from a server of another.
 * README.md documents the same values; keep them in step.
 */
final class Values {
  static final String[] ITEM_NAMES = { "canonical", "minimal", "extremes", "textual" };
  static final String LEGACY_DEFAULT = "legacy-default";
  static final int PRIORITY_DEFAULT = 7;

  private final Protocol proto;
  private final boolean v2;

  Values(Protocol proto) {
    this.proto = proto;
    this.v2 = Protocols.versionOf(proto).equals("v2");
  }

  Schema type(String name) {
    return Protocols.type(proto, name);
  }

  // ---------------------------------------------------------------- items

  GenericRecord part(String name, long weight, String legacy) {
    GenericRecord r = new GenericData.Record(type("Part"));
    r.put("name", name);
    r.put("weight", weight);
    if (!v2)
      r.put("legacy", legacy);
    return r;
  }

  GenericData.Fixed token(byte[] b) {
    return new GenericData.Fixed(type("Token"), b);
  }

  GenericData.EnumSymbol kind(String symbol) {
    return new GenericData.EnumSymbol(type("Kind"), symbol);
  }

  static byte[] bytes(int... v) {
    byte[] b = new byte[v.length];
    for (int i = 0; i < v.length; i++)
      b[i] = (byte) v[i];
    return b;
  }

  GenericRecord item(String which) {
    Schema s = type("Item");
    GenericRecord r = new GenericData.Record(s);
    List<GenericRecord> parts = new ArrayList<>();
    List<Object> tags = new ArrayList<>();
    Map<Object, Object> attrs = new LinkedHashMap<>();
    switch (which) {
    case "canonical":
      r.put("id", 1234567890123L);
      r.put("name", "h\u00e9llo w\u00f6rld \u2713");
      put(r, "priority", 3);
      r.put("score", 3.25d);
      r.put("ratio", 0.5f);
      r.put("count", -42);
      r.put("flag", true);
      r.put("kind", kind("GAMMA"));
      r.put("token", token(bytes(0x00, 0x01, 0x02, 0x03, 0xfc, 0xfd, 0xfe, 0xff)));
      r.put("payload", ByteBuffer.wrap(bytes(0x00, 0xff, 0x10, 0x20, 0x7f, 0x80)));
      r.put("main", part("main", 10, "L-main"));
      parts.add(part("a", 1, "L-a"));
      parts.add(part("b", -2, "L-b"));
      parts.add(part("c", 300, "L-c"));
      tags.add("x");
      tags.add("y");
      tags.add("z");
      attrs.put(new Utf8("one"), 1L);
      attrs.put(new Utf8("two"), 2L);
      attrs.put(new Utf8("big"), 1L << 40);
      r.put("note", "a note");
      r.put("extra", part("x", 5, "L-x"));
      break;
    case "minimal":
      r.put("id", 0L);
      r.put("name", "");
      put(r, "priority", 0);
      r.put("score", 0.0d);
      r.put("ratio", 0.0f);
      r.put("count", 0);
      r.put("flag", false);
      r.put("kind", kind("ALPHA"));
      r.put("token", token(new byte[8]));
      r.put("payload", ByteBuffer.wrap(new byte[0]));
      r.put("main", part("", 0, ""));
      r.put("note", null);
      r.put("extra", null);
      break;
    case "extremes":
      r.put("id", Long.MIN_VALUE);
      r.put("name", "\u00fcn\u00efc\u00f6d\u00e9 \u2713 \uD83D\uDE00");
      put(r, "priority", Integer.MIN_VALUE);
      r.put("score", -1.5e300d);
      r.put("ratio", -0.25f);
      r.put("count", Integer.MAX_VALUE);
      r.put("flag", true);
      r.put("kind", kind("DELTA"));
      r.put("token", token(bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)));
      byte[] all = new byte[256];
      for (int i = 0; i < 256; i++)
        all[i] = (byte) i;
      r.put("payload", ByteBuffer.wrap(all));
      r.put("main", part("m", Long.MAX_VALUE, "L-m"));
      for (int i = 0; i < 200; i++)
        parts.add(part("p" + i, i - 100, "L-p" + i));
      tags.add("");
      tags.add("a b");
      tags.add("\u00fc");
      attrs.put(new Utf8(""), -1L);
      attrs.put(new Utf8("max"), Long.MAX_VALUE);
      r.put("note", "");
      r.put("extra", Long.MIN_VALUE);
      break;
    case "textual":
      r.put("id", 7L);
      r.put("name", "textual");
      put(r, "priority", 1);
      r.put("score", 0.1d);
      r.put("ratio", 0.1f);
      r.put("count", 3);
      r.put("flag", false);
      r.put("kind", kind("BETA"));
      r.put("token", token("TOKEN-01".getBytes(StandardCharsets.US_ASCII)));
      r.put("payload", ByteBuffer.wrap("hello".getBytes(StandardCharsets.US_ASCII)));
      r.put("main", part("t", 7, "L-t"));
      parts.add(part("only", -7, "L-only"));
      tags.add("t");
      attrs.put(new Utf8("k"), -5L);
      r.put("note", null);
      r.put("extra", "extra text");
      break;
    default:
      throw new IllegalArgumentException("unknown item " + which);
    }
    r.put("parts", parts);
    r.put("tags", tags);
    r.put("attrs", attrs);
    return r;
  }

  private void put(GenericRecord r, String field, Object value) {
    if (r.getSchema().getField(field) != null)
      r.put(field, value);
  }

  /**
   * What a client of this version gets back from echo(item) served by a server of
   * version serverVersion: fields the server does not know come back as this
   * version's defaults (v1 client / v2 server: every Part.legacy is
   * "legacy-default"; v2 client / v1 server: priority is 7).
   */
  GenericRecord echoExpected(String which, String serverVersion) {
    GenericRecord r = item(which);
    boolean sv2 = serverVersion.equals("v2");
    if (v2 && !sv2)
      r.put("priority", PRIORITY_DEFAULT);
    if (!v2 && sv2) {
      resetLegacy((GenericRecord) r.get("main"));
      for (Object p : (List<?>) r.get("parts"))
        resetLegacy((GenericRecord) p);
      if (r.get("extra") instanceof GenericRecord)
        resetLegacy((GenericRecord) r.get("extra"));
    }
    return r;
  }

  private static void resetLegacy(GenericRecord part) {
    part.put("legacy", LEGACY_DEFAULT);
  }

  // ------------------------------------------------------- computations

  /** summarize(item): every field of Summary is a function of the v1 fields only. */
  GenericRecord summarize(GenericRecord item) {
    GenericRecord s = new GenericData.Record(type("Summary"));
    s.put("id", (Long) item.get("id"));
    s.put("nameUtf8Len", str(item.get("name")).getBytes(StandardCharsets.UTF_8).length);
    List<?> parts = (List<?>) item.get("parts");
    s.put("partCount", parts.size());
    long weightSum = (Long) ((GenericRecord) item.get("main")).get("weight");
    for (Object p : parts)
      weightSum += (Long) ((GenericRecord) p).get("weight");
    s.put("weightSum", weightSum);
    List<String> tags = new ArrayList<>();
    for (Object t : (List<?>) item.get("tags"))
      tags.add(str(t));
    s.put("tagsJoined", String.join(",", tags));
    long attrSum = 0;
    for (Object v : ((Map<?, ?>) item.get("attrs")).values())
      attrSum += (Long) v;
    s.put("attrSum", attrSum);
    s.put("payloadLen", ((ByteBuffer) item.get("payload")).remaining());
    s.put("tokenHex", hex(((GenericFixed) item.get("token")).bytes()));
    s.put("scoreTimesCount", (Double) item.get("score") * (double) (Integer) item.get("count"));
    s.put("ratioDoubled", (Float) item.get("ratio") * 2.0f);
    s.put("flagNegated", !(Boolean) item.get("flag"));
    List<String> symbols = type("Kind").getEnumSymbols();
    int ordinal = symbols.indexOf(item.get("kind").toString());
    s.put("nextKind", kind(symbols.get((ordinal + 1) % symbols.size())));
    Object note = item.get("note");
    s.put("noteOrDefault", note == null ? "<none>" : str(note));
    Object extra = item.get("extra");
    String branch;
    if (extra == null)
      branch = "null";
    else if (extra instanceof Long)
      branch = "long";
    else if (extra instanceof CharSequence)
      branch = "string";
    else if (extra instanceof GenericRecord)
      branch = "Part";
    else
      throw new IllegalArgumentException("unexpected extra " + extra.getClass());
    s.put("extraBranch", branch);
    return s;
  }

  /** range(start, count): Part i = {name "part-(start+i)", weight (start+i)*10, legacy "legacy-(start+i)"}. */
  List<GenericRecord> range(long start, int count) {
    List<GenericRecord> out = new ArrayList<>(count);
    for (int i = 0; i < count; i++) {
      long n = start + i;
      out.add(part("part-" + n, n * 10, "legacy-" + n));
    }
    return out;
  }

  /** The InteropError fail(code > 0, message) throws, and range throws with code 400. */
  GenericRecord error(int code, String message) {
    GenericRecord e = new GenericData.Record(type("InteropError"));
    e.put("code", code);
    e.put("message", message);
    e.put("retryable", code >= 500);
    e.put("detail", code % 2 != 0 ? "detail for " + code : null);
    return e;
  }

  static String str(Object o) {
    return o == null ? null : o.toString();
  }

  static String hex(byte[] b) {
    StringBuilder sb = new StringBuilder(b.length * 2);
    for (byte x : b)
      sb.append(Character.forDigit((x >> 4) & 0xf, 16)).append(Character.forDigit(x & 0xf, 16));
    return sb.toString();
  }

  // ------------------------------------------------------------ compare

  /** null if equal, else a description of the first difference. Strings compare as text, floats bitwise. */
  static String diff(String path, Object expected, Object actual) {
    if (expected == null || actual == null)
      return expected == actual ? null : path + ": expected " + show(expected) + ", got " + show(actual);
    if (expected instanceof CharSequence) {
      if (!(actual instanceof CharSequence) || !expected.toString().equals(actual.toString()))
        return path + ": expected " + show(expected) + ", got " + show(actual);
      return null;
    }
    if (expected instanceof GenericRecord) {
      if (!(actual instanceof GenericRecord))
        return path + ": expected record, got " + show(actual);
      GenericRecord e = (GenericRecord) expected, a = (GenericRecord) actual;
      if (!e.getSchema().getFullName().equals(a.getSchema().getFullName()))
        return path + ": expected record " + e.getSchema().getFullName() + ", got " + a.getSchema().getFullName();
      for (Schema.Field f : e.getSchema().getFields()) {
        if (a.getSchema().getField(f.name()) == null)
          return path + "." + f.name() + ": missing in actual";
        String d = diff(path + "." + f.name(), e.get(f.name()), a.get(f.name()));
        if (d != null)
          return d;
      }
      return null;
    }
    if (expected instanceof GenericEnumSymbol) {
      return actual instanceof GenericEnumSymbol && expected.toString().equals(actual.toString()) ? null
          : path + ": expected enum " + expected + ", got " + show(actual);
    }
    if (expected instanceof GenericFixed) {
      if (!(actual instanceof GenericFixed))
        return path + ": expected fixed, got " + show(actual);
      String eh = hex(((GenericFixed) expected).bytes()), ah = hex(((GenericFixed) actual).bytes());
      return eh.equals(ah) ? null : path + ": expected fixed " + eh + ", got " + ah;
    }
    if (expected instanceof ByteBuffer) {
      if (!(actual instanceof ByteBuffer))
        return path + ": expected bytes, got " + show(actual);
      String eh = hex(toArray((ByteBuffer) expected)), ah = hex(toArray((ByteBuffer) actual));
      return eh.equals(ah) ? null : path + ": expected bytes " + eh + ", got " + ah;
    }
    if (expected instanceof List) {
      if (!(actual instanceof List))
        return path + ": expected array, got " + show(actual);
      List<?> e = (List<?>) expected, a = (List<?>) actual;
      if (e.size() != a.size())
        return path + ": expected " + e.size() + " elements, got " + a.size();
      for (int i = 0; i < e.size(); i++) {
        String d = diff(path + "[" + i + "]", e.get(i), a.get(i));
        if (d != null)
          return d;
      }
      return null;
    }
    if (expected instanceof Map) {
      if (!(actual instanceof Map))
        return path + ": expected map, got " + show(actual);
      Map<String, Object> e = stringKeys((Map<?, ?>) expected), a = stringKeys((Map<?, ?>) actual);
      if (!e.keySet().equals(a.keySet()))
        return path + ": expected keys " + e.keySet() + ", got " + a.keySet();
      for (Map.Entry<String, Object> en : e.entrySet()) {
        String d = diff(path + "{" + en.getKey() + "}", en.getValue(), a.get(en.getKey()));
        if (d != null)
          return d;
      }
      return null;
    }
    if (expected instanceof Double) {
      return actual instanceof Double
          && Double.doubleToRawLongBits((Double) expected) == Double.doubleToRawLongBits((Double) actual) ? null
              : path + ": expected double " + expected + ", got " + show(actual);
    }
    if (expected instanceof Float) {
      return actual instanceof Float
          && Float.floatToRawIntBits((Float) expected) == Float.floatToRawIntBits((Float) actual) ? null
              : path + ": expected float " + expected + ", got " + show(actual);
    }
    return expected.equals(actual) ? null : path + ": expected " + show(expected) + ", got " + show(actual);
  }

  private static Map<String, Object> stringKeys(Map<?, ?> m) {
    Map<String, Object> out = new LinkedHashMap<>();
    for (Map.Entry<?, ?> e : m.entrySet())
      out.put(e.getKey().toString(), e.getValue());
    return out;
  }

  static byte[] toArray(ByteBuffer b) {
    ByteBuffer d = b.duplicate();
    byte[] out = new byte[d.remaining()];
    d.get(out);
    return out;
  }

  private static String show(Object o) {
    if (o == null)
      return "null";
    String s = o instanceof CharSequence ? "\"" + o + "\"" : o.toString();
    if (s.length() > 120)
      s = s.substring(0, 120) + "...";
    return s + " (" + o.getClass().getSimpleName() + ")";
  }
}
