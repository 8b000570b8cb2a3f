package dev.corral.model;

import java.nio.charset.StandardCharsets;
import java.util.function.BiConsumer;

/**
 * Splits a server-sent-events byte stream into (event, data) pairs. Chunks may end anywhere, even
 * inside a UTF-8 sequence; lines end with LF, CRLF or CR; a blank line ends an event.
 */
final class SseDecoder {

  private final BiConsumer<String, String> onEvent;
  private byte[] pending = new byte[0];
  private String event = "";
  private final StringBuilder data = new StringBuilder();
  private boolean hasData;
  private boolean lastWasCr;

  SseDecoder(BiConsumer<String, String> onEvent) {
    this.onEvent = onEvent;
  }

  void feed(byte[] chunk) {
    byte[] bytes = concat(pending, chunk);
    int lineStart = 0;
    for (int i = 0; i < bytes.length; i++) {
      byte b = bytes[i];
      if (b == '\n' && lastWasCr && i == lineStart) {
        lastWasCr = false;
        lineStart = i + 1;
        continue;
      }
      if (b == '\n' || b == '\r') {
        lastWasCr = b == '\r';
        line(new String(bytes, lineStart, i - lineStart, StandardCharsets.UTF_8));
        lineStart = i + 1;
      } else {
        lastWasCr = false;
      }
    }
    pending = java.util.Arrays.copyOfRange(bytes, lineStart, bytes.length);
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

  private static byte[] concat(byte[] a, byte[] b) {
    if (a.length == 0) {
      return b;
    }
    byte[] joined = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, joined, a.length, b.length);
    return joined;
  }
}
