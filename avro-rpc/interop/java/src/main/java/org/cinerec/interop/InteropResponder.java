package org.cinerec.interop;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.avro.AvroRemoteException;
import org.apache.avro.Protocol;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.ipc.generic.GenericResponder;
import org.apache.avro.util.Utf8;

/** The deterministic server implementation of the interop protocol (either version). */
final class InteropResponder extends GenericResponder {
  private final Values values;
  private final Map<String, List<String>> events = new ConcurrentHashMap<>();

  InteropResponder(Protocol local) {
    super(local);
    this.values = new Values(local);
  }

  @Override
  public Object respond(Protocol.Message message, Object request) throws Exception {
    GenericRecord req = (GenericRecord) request;
    switch (message.getName()) {
    case "echo":
      return req.get("item");
    case "summarize":
      return values.summarize((GenericRecord) req.get("item"));
    case "add":
      return (Long) req.get("a") + (Long) req.get("b");
    case "range": {
      int count = (Integer) req.get("count");
      if (count < 0 || count > 10000)
        throw new AvroRemoteException(values.error(400, "count out of range: " + count));
      return values.range((Long) req.get("start"), count);
    }
    case "fail": {
      int code = (Integer) req.get("code");
      String msg = req.get("message").toString();
      if (code == 0)
        return "ok: " + msg;
      if (code > 0)
        throw new AvroRemoteException(values.error(code, msg));
      // Not a declared error: goes on the wire as the "string" branch of the error union.
      throw new AvroRemoteException(new Utf8("undeclared: " + msg));
    }
    case "notify": {
      List<String> list = events.computeIfAbsent(req.get("channel").toString(), k -> new ArrayList<>());
      synchronized (list) {
        list.add(req.get("event").toString());
      }
      return null;
    }
    case "drain": {
      List<String> list = events.remove(req.get("channel").toString());
      if (list == null)
        return new ArrayList<String>();
      synchronized (list) {
        return new ArrayList<>(list);
      }
    }
    case "nop":
      return null;
    default:
      throw new IllegalStateException("unhandled message " + message.getName());
    }
  }
}
