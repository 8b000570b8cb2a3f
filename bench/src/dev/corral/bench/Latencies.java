package dev.corral.bench;

import java.util.Arrays;

/** Recorded latencies in nanoseconds, with percentiles. Thread-confined; merge to combine. */
final class Latencies {

  private long[] values = new long[1024];
  private int size;

  void record(long nanos) {
    if (size == values.length) {
      values = Arrays.copyOf(values, size * 2);
    }
    values[size++] = nanos;
  }

  void merge(Latencies other) {
    for (int i = 0; i < other.size; i++) {
      record(other.values[i]);
    }
  }

  int count() {
    return size;
  }

  /** The p-th percentile (0 < p <= 100) in milliseconds. */
  double percentileMillis(double p) {
    long[] sorted = Arrays.copyOf(values, size);
    Arrays.sort(sorted);
    int index = (int) Math.ceil(p / 100.0 * size) - 1;
    return sorted[Math.max(0, Math.min(index, size - 1))] / 1_000_000.0;
  }

  String summary() {
    return String.format(
        "p50 %.3f ms, p99 %.3f ms (n=%d)", percentileMillis(50), percentileMillis(99), size);
  }

  String summary95() {
    return String.format(
        "p50 %.1f ms, p95 %.1f ms, p99 %.1f ms (n=%d)",
        percentileMillis(50), percentileMillis(95), percentileMillis(99), size);
  }
}
