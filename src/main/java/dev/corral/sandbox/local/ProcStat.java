package dev.corral.sandbox.local;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.OptionalLong;

/**
 * What /proc says of processes, in the kernel's clock ticks since boot (USER_HZ, 100 a second):
 * when each started, and what time it is now on the same clock. Blocking (file reads).
 */
final class ProcStat {

  /** Clock ticks per second of /proc/[pid]/stat; USER_HZ is 100 on every Linux architecture. */
  static final int TICKS_PER_SECOND = 100;

  private ProcStat() {}

  /** Now, in ticks since boot (from /proc/uptime, which has the same clock and 10 ms steps). */
  static long nowTicks() {
    try {
      String uptime = Files.readString(Path.of("/proc/uptime"), StandardCharsets.US_ASCII);
      String seconds = uptime.substring(0, uptime.indexOf(' '));
      int dot = seconds.indexOf('.');
      long whole = Long.parseLong(seconds.substring(0, dot));
      String fraction = (seconds.substring(dot + 1) + "00").substring(0, 2);
      return whole * TICKS_PER_SECOND + Long.parseLong(fraction);
    } catch (IOException | RuntimeException e) {
      throw new IllegalStateException("/proc/uptime is not readable: " + e.getMessage(), e);
    }
  }

  /**
   * When the process started, in ticks since boot; empty if it is gone (or a zombie, whose start no
   * longer matters).
   */
  static OptionalLong startTicks(long pid) {
    String stat;
    try {
      stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"), StandardCharsets.UTF_8);
    } catch (IOException gone) {
      return OptionalLong.empty();
    }
    // pid (comm) state ppid ... : comm may hold spaces and parentheses, so split after the last
    // ')'.
    String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
    if (fields.length < 20 || "Z".equals(fields[0])) {
      return OptionalLong.empty();
    }
    return OptionalLong.of(Long.parseLong(fields[19]));
  }
}
