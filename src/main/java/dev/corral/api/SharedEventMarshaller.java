package dev.corral.api;

import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.StreamEventsResponse;
import io.grpc.Drainable;
import io.grpc.KnownLength;
import io.grpc.MethodDescriptor;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/**
 * Writes the {@code StreamEvents} message of one event once per event loop, not once per
 * subscriber: every live subscriber of a session on a replica gets the same {@link Event} object
 * from the session's shared window, and a thousand of them each serialized it again. Each thread
 * keeps the bytes of the last event it wrote; a message for the same object (an immutable protobuf,
 * so the same bytes) reuses them. Anything else is written as usual.
 */
final class SharedEventMarshaller
    implements MethodDescriptor.PrototypeMarshaller<StreamEventsResponse> {

  private final MethodDescriptor.PrototypeMarshaller<StreamEventsResponse> delegate;

  /** The last event written on this thread and its message's bytes. */
  private static final ThreadLocal<Written> LAST = new ThreadLocal<>();

  private record Written(Event event, byte[] bytes) {}

  SharedEventMarshaller(MethodDescriptor.PrototypeMarshaller<StreamEventsResponse> delegate) {
    this.delegate = delegate;
  }

  @Override
  public InputStream stream(StreamEventsResponse value) {
    // A message of the event alone (its one field; no unknown fields) is the event's bytes only.
    if (value.getItemCase() != StreamEventsResponse.ItemCase.EVENT
        || !value.getUnknownFields().asMap().isEmpty()) {
      return delegate.stream(value);
    }
    Event event = value.getEvent();
    Written last = LAST.get();
    if (last == null || last.event() != event) {
      last = new Written(event, value.toByteArray());
      LAST.set(last);
    }
    return new Bytes(last.bytes());
  }

  @Override
  public StreamEventsResponse parse(InputStream stream) {
    return delegate.parse(stream);
  }

  @Override
  public StreamEventsResponse getMessagePrototype() {
    return delegate.getMessagePrototype();
  }

  @Override
  public Class<StreamEventsResponse> getMessageClass() {
    return delegate.getMessageClass();
  }

  /**
   * The bytes, with their length known to the transport, which drains them (Vert.x's gRPC bridge
   * takes every message as {@link Drainable}).
   */
  private static final class Bytes extends ByteArrayInputStream implements KnownLength, Drainable {
    Bytes(byte[] bytes) {
      super(bytes);
    }

    @Override
    public synchronized int drainTo(OutputStream target) throws IOException {
      int length = count - pos;
      target.write(buf, pos, length);
      pos = count;
      return length;
    }
  }
}
