package dev.corral.egress;

import io.vertx.core.buffer.Buffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The body of one HTTP/1.1 request read off a raw connection: as many bytes as its Content-Length
 * says, or its chunked encoding decoded. It takes the bytes as they come and hands back the body's
 * data; what follows the body (a second request on the connection) is never taken for the body.
 */
final class RequestBody {

  /** A chunk-size line longer than this is not HTTP. */
  private static final int MAX_LINE = 1024;

  private enum State {
    SIZE,
    DATA,
    DATA_END,
    TRAILER,
    DONE
  }

  private final boolean chunked;
  private long remaining;
  private State state;
  private final StringBuilder line = new StringBuilder();
  private int taken;

  private RequestBody(boolean chunked, long length) {
    this.chunked = chunked;
    this.remaining = length;
    this.state = chunked ? State.SIZE : length == 0 ? State.DONE : State.DATA;
  }

  /**
   * The body framing of a request with these header lines (the first line is the request line).
   *
   * @throws IllegalArgumentException if the framing is malformed or ambiguous
   */
  static RequestBody of(String[] lines) {
    String length = null;
    String encoding = null;
    for (int i = 1; i < lines.length; i++) {
      int colon = lines[i].indexOf(':');
      if (colon < 0) {
        continue;
      }
      String name = lines[i].substring(0, colon).trim().toLowerCase(Locale.ROOT);
      String value = lines[i].substring(colon + 1).trim();
      if (name.equals("content-length")) {
        if (length != null && !length.equals(value)) {
          throw new IllegalArgumentException("the request has two Content-Length headers");
        }
        length = value;
      } else if (name.equals("transfer-encoding")) {
        if (encoding != null) {
          throw new IllegalArgumentException("the request has two Transfer-Encoding headers");
        }
        encoding = value.toLowerCase(Locale.ROOT);
      }
    }
    if (encoding != null) {
      if (length != null || !encoding.equals("chunked")) {
        throw new IllegalArgumentException(
            "the request's Transfer-Encoding must be chunked alone, without Content-Length");
      }
      return new RequestBody(true, 0);
    }
    if (length == null) {
      return new RequestBody(false, 0);
    }
    if (!length.matches("[0-9]{1,15}")) {
      throw new IllegalArgumentException("the request's Content-Length is not a number");
    }
    return new RequestBody(false, Long.parseLong(length));
  }

  boolean chunked() {
    return chunked;
  }

  /** The Content-Length of a request that is not chunked. */
  long length() {
    return chunked ? -1 : remaining;
  }

  boolean done() {
    return state == State.DONE;
  }

  /**
   * The body's data in {@code bytes}; bytes after the body's end are dropped.
   *
   * @throws IllegalArgumentException if the chunked encoding is malformed
   */
  List<Buffer> feed(Buffer bytes) {
    List<Buffer> data = new ArrayList<>(2);
    int at = 0;
    taken = 0;
    while (at < bytes.length() && state != State.DONE) {
      switch (state) {
        case DATA -> {
          int take = (int) Math.min(remaining, bytes.length() - at);
          data.add(bytes.getBuffer(at, at + take));
          at += take;
          remaining -= take;
          if (remaining == 0) {
            state = chunked ? State.DATA_END : State.DONE;
          }
        }
        case SIZE, DATA_END, TRAILER -> {
          char c = (char) (bytes.getByte(at++) & 0xff);
          if (c != '\n') {
            line.append(c);
            if (line.length() > MAX_LINE) {
              throw new IllegalArgumentException("a chunk line of the request is too long");
            }
            continue;
          }
          String text = line.toString();
          line.setLength(0);
          if (text.endsWith("\r")) {
            text = text.substring(0, text.length() - 1);
          }
          endOfLine(text);
        }
        default -> throw new IllegalStateException(state.name());
      }
    }
    taken = at;
    return data;
  }

  /** How many of the bytes last fed were the body's, framing included (the rest come after it). */
  int taken() {
    return taken;
  }

  private void endOfLine(String text) {
    switch (state) {
      case SIZE -> {
        int extension = text.indexOf(';');
        String size = (extension < 0 ? text : text.substring(0, extension)).trim();
        if (!size.matches("[0-9a-fA-F]{1,12}")) {
          throw new IllegalArgumentException("a chunk size of the request is not hexadecimal");
        }
        remaining = Long.parseLong(size, 16);
        state = remaining == 0 ? State.TRAILER : State.DATA;
      }
      case DATA_END -> {
        if (!text.isEmpty()) {
          throw new IllegalArgumentException("a chunk of the request is longer than its size");
        }
        state = State.SIZE;
      }
      case TRAILER -> {
        if (text.isEmpty()) {
          state = State.DONE;
        }
      }
      default -> throw new IllegalStateException(state.name());
    }
  }
}
