package dev.corral.model;

import java.nio.charset.StandardCharsets;
import java.util.function.BiConsumer;

/**
 * Splits a server-sent-events byte stream into (event, data) pairs. Chunks may end anywhere, even
 * inside a UTF-8 sequence; lines end with LF, CRLF or CR; a blank line ends an event.
 */
final class SseDecoder {

  /**
   * The longest line and the most data of one event: an answer's events are small deltas, so a
   * longer one is not a Messages API stream (and would be held whole in memory).
   */
  static final int MAX_EVENT_BYTES = 8 * 1024 * 1024;

  /** The most bytes of one stream: far past any answer's, within any max_tokens. */
  static final long MAX_STREAM_BYTES = 128L * 1024 * 1024;

  private final BiConsumer<String, String> onEvent;

  /** The bytes of the line under way (its end not seen yet). */
  private final java.io.ByteArrayOutputStream pending = new java.io.ByteArrayOutputStream();

  private String event = "";
  private final StringBuilder data = new StringBuilder();
  private boolean hasData;
  private boolean lastWasCr;
  private long received;

  SseDecoder(BiConsumer<String, String> onEvent) {
    this.onEvent = onEvent;
  }

  /**
   * @throws ModelException past {@link #MAX_EVENT_BYTES} in a line or an event's data, or past
   *     {@link #MAX_STREAM_BYTES} in all
   */
  void feed(byte[] chunk) {
    received += chunk.length;
    if (received > MAX_STREAM_BYTES) {
      throw tooLarge("the stream passed " + MAX_STREAM_BYTES + " bytes");
    }
    int lineStart = 0; // in chunk; what came before it is pending
    for (int i = 0; i < chunk.length; i++) {
      byte b = chunk[i];
      if (b == '\n' && lastWasCr && i == lineStart && pending.size() == 0) {
        lastWasCr = false;
        lineStart = i + 1;
        continue;
      }
      if (b == '\n' || b == '\r') {
        lastWasCr = b == '\r';
        pending.write(chunk, lineStart, i - lineStart);
        line(pending.toString(StandardCharsets.UTF_8));
        pending.reset();
        lineStart = i + 1;
      } else {
        lastWasCr = false;
      }
    }
    pending.write(chunk, lineStart, chunk.length - lineStart);
    if (pending.size() > MAX_EVENT_BYTES) {
      throw tooLarge("a line passed " + MAX_EVENT_BYTES + " bytes");
    }
  }

  private static ModelException tooLarge(String what) {
    return ModelException.transport(
        "stream_too_large", "the model stream is not one of the Messages API: " + what);
  }

  private void line(String line) {
    if (line.isEmpty()) {
      dispatch();
      return;
    }
    if (line.startsWith(":")) {
      return;
    }
    int colon = line.indexOf(':');
    String field = colon < 0 ? line : line.substring(0, colon);
    String value = colon < 0 ? "" : line.substring(colon + 1);
    if (value.startsWith(" ")) {
      value = value.substring(1);
    }
    if (field.equals("event")) {
      event = value;
    } else if (field.equals("data")) {
      if (hasData) {
        data.append('\n');
      }
      data.append(value);
      hasData = true;
      if (data.length() > MAX_EVENT_BYTES) {
        throw tooLarge("an event's data passed " + MAX_EVENT_BYTES + " characters");
      }
    }
  }

  private void dispatch() {
    if (hasData) {
      onEvent.accept(event.isEmpty() ? "message" : event, data.toString());
    }
    event = "";
    data.setLength(0);
    hasData = false;
  }
}
