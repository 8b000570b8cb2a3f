package dev.corral.common;

import java.util.HashMap;
import java.util.Map;

/**
 * Requests under way, counted by a key (a tenant, or a tenant and a host), each key with a ceiling.
 * A key's count is kept only while it is above zero.
 */
public final class InFlightCounts {

  private final Map<String, Integer> counts = new HashMap<>();

  /** Counts one more for {@code key}, unless it has {@code max} already. */
  public synchronized boolean enter(String key, int max) {
    int now = counts.getOrDefault(key, 0);
    if (now >= max) {
      return false;
    }
    counts.put(key, now + 1);
    return true;
  }

  /** Counts one less for {@code key} (after an {@link #enter} that returned true). */
  public synchronized void leave(String key) {
    int left = counts.getOrDefault(key, 1) - 1;
    if (left <= 0) {
      counts.remove(key);
    } else {
      counts.put(key, left);
    }
  }

  /** Requests under way, all keys together. */
  public synchronized int total() {
    return counts.values().stream().mapToInt(Integer::intValue).sum();
  }
}
