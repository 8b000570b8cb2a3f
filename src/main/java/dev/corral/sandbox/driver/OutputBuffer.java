package dev.corral.sandbox.driver;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;

/**
 * Collects command output up to a cap: either the first {@code cap} bytes, or (keepTail) the last
 * {@code cap} bytes, in a ring. Always counts the total.
 */
public final class OutputBuffer extends OutputStream {

  private final int cap;
  private final boolean keepTail;
  private final ByteArrayOutputStream head;
  private final byte[] ring;
  private long total;

  public OutputBuffer(int cap, boolean keepTail) {
    this.cap = cap;
    this.keepTail = keepTail;
    this.head = keepTail ? null : new ByteArrayOutputStream();
    this.ring = keepTail ? new byte[cap] : null;
  }

  @Override
  public synchronized void write(int b) {
    write(new byte[] {(byte) b}, 0, 1);
  }

  @Override
  public synchronized void write(byte[] bytes, int offset, int length) {
    if (keepTail) {
      for (int i = 0; i < length; i++) {
        ring[(int) ((total + i) % cap)] = bytes[offset + i];
      }
    } else if (head.size() < cap) {
      head.write(bytes, offset, Math.min(length, cap - head.size()));
    }
    total += length;
  }

  public synchronized long total() {
    return total;
  }

  public synchronized byte[] bytes() {
    if (!keepTail) {
      return head.toByteArray();
    }
    int size = (int) Math.min(total, cap);
    byte[] out = new byte[size];
    long start = total - size;
    for (int i = 0; i < size; i++) {
      out[i] = ring[(int) ((start + i) % cap)];
    }
    return out;
  }
}
