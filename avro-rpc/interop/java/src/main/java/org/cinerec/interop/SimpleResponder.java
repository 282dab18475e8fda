package org.cinerec.interop;

import java.util.concurrent.atomic.AtomicLong;

import org.apache.avro.AvroRemoteException;
import org.apache.avro.Protocol;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.ipc.generic.GenericResponder;
import org.apache.avro.util.Utf8;

/**
 * Avro's own test protocol {@code simple.avpr}, served the way Avro's Java IPC tests serve it:
 * hello answers "goodbye", echo and echoBytes return their argument, add sums, error throws the
 * declared TestError{message: "an error"}, one-way ack is counted.
 */
final class SimpleResponder extends GenericResponder {
  static final String NS = "org.apache.avro.test.";
  final AtomicLong acks = new AtomicLong();

  SimpleResponder(Protocol local) {
    super(local);
  }

  @Override
  public Object respond(Protocol.Message message, Object request) throws Exception {
    GenericRecord req = (GenericRecord) request;
    switch (message.getName()) {
    case "hello":
      return new Utf8("goodbye");
    case "echo":
      return req.get("record");
    case "echoBytes":
      return req.get("data");
    case "add":
      return (Integer) req.get("arg1") + (Integer) req.get("arg2");
    case "error": {
      GenericRecord e = new GenericData.Record(getLocal().getType(NS + "TestError"));
      e.put("message", new Utf8("an error"));
      throw new AvroRemoteException(e);
    }
    case "ack":
      acks.incrementAndGet();
      return null;
    default:
      throw new IllegalStateException("unhandled message " + message.getName());
    }
  }
}
