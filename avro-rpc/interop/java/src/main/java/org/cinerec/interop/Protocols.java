package org.cinerec.interop;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;

import org.apache.avro.Protocol;
import org.apache.avro.Schema;

/** Loads the interop protocols. "v1"/"v2"/"simple" come from the classpath; anything else is a file path. */
final class Protocols {
  static final String NS = "org.cinerec.interop.";

  private Protocols() {
  }

  static Protocol load(String which) throws IOException {
    switch (which) {
    case "v1":
      return resource("interop.avpr");
    case "v2":
      return resource("interop-v2.avpr");
    case "simple":
      return resource("simple.avpr");
    default:
      return Protocol.parse(new File(which));
    }
  }

  private static Protocol resource(String name) throws IOException {
    try (InputStream in = Protocols.class.getClassLoader().getResourceAsStream(name)) {
      if (in == null)
        throw new IOException("protocol resource not on classpath: " + name);
      return Protocol.parse(new String(in.readAllBytes(), StandardCharsets.UTF_8));
    }
  }

  /** "v2" if the protocol's Item has the v2-only field "priority", else "v1". */
  static String versionOf(Protocol p) {
    return type(p, "Item").getField("priority") != null ? "v2" : "v1";
  }

  static Schema type(Protocol p, String simpleName) {
    Schema s = p.getType(NS + simpleName);
    if (s == null)
      throw new IllegalArgumentException("protocol has no type " + NS + simpleName);
    return s;
  }
}
