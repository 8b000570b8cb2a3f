package dev.corral.common;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * How many lines about one thing (a sandbox) may be logged a minute: what a sandbox makes corral
 * log must not flood the logs. Counters and metrics still see every event.
 */
public final class LogBudget {

  private static final long MINUTE = 60_000_000_000L;
  private static final int MAX_KEYS = 10_000;

  /** What to do with one more line. */
  public enum Admission {
    LOG,
    /** The first line over the budget this minute: say that the rest is not logged. */
    LOG_LAST,
    DROP;

    /** What a line ends with: for the last one, that the rest of {@code what} is only counted. */
    public String note(String what) {
      return this == LOG_LAST ? " (its further " + what + " this minute are only counted)" : "";
    }
  }

  private final int perMinute;
  private final Map<String, long[]> windows = new ConcurrentHashMap<>();

  public LogBudget(int perMinute) {
    this.perMinute = perMinute;
  }

  public Admission admit(String key) {
    long now = System.nanoTime();
    if (windows.size() > MAX_KEYS) {
      windows.clear();
    }
    long[] window = windows.computeIfAbsent(key, ignored -> new long[] {now, 0});
    synchronized (window) {
      if (now - window[0] >= MINUTE) {
        window[0] = now;
        window[1] = 0;
      }
      long count = ++window[1];
      if (count <= perMinute) {
        return Admission.LOG;
      }
      return count == perMinute + 1 ? Admission.LOG_LAST : Admission.DROP;
    }
  }

  /** {@code text} cut to {@code max} characters, for a log line. */
  public static String cut(String text, int max) {
    return text.length() <= max ? text : text.substring(0, max) + "...";
  }
}
