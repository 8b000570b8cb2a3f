package dev.corral.sandbox.local;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * What /proc says of processes: their parent and session, when each started (in the kernel's clock
 * ticks since boot), and which host pid a process of a sandbox's pid namespace has. Blocking (file
 * reads).
 */
final class ProcStat {

  private ProcStat() {}

  /** Of a live process: its parent, its session (the pid of its leader) and when it started. */
  record Stat(long parent, long session, long startTicks) {}

  /**
   * The process's parent, session and start; empty if it is gone, or a zombie (which matters no
   * more).
   */
  static Optional<Stat> of(long pid) {
    String stat;
    try {
      stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"), StandardCharsets.UTF_8);
    } catch (IOException gone) {
      return Optional.empty();
    }
    // "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses, so the
    // fields are split after the last ')'.
    String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
    if (fields.length < 20 || "Z".equals(fields[0])) {
      return Optional.empty();
    }
    return Optional.of(
        new Stat(Long.parseLong(fields[1]), Long.parseLong(fields[3]), Long.parseLong(fields[19])));
  }

  /**
   * The host pid of the direct child of {@code parent} that is {@code nsPid} in its own pid
   * namespace; empty if there is none.
   */
  static OptionalLong childWithNamespacePid(long parent, long nsPid) {
    String children;
    try {
      children =
          Files.readString(
              Path.of("/proc", Long.toString(parent), "task", Long.toString(parent), "children"));
    } catch (IOException unsupported) {
      return OptionalLong.empty();
    }
    for (String child : children.trim().split(" ")) {
      if (!child.isEmpty() && namespacePid(Long.parseLong(child)) == nsPid) {
        return OptionalLong.of(Long.parseLong(child));
      }
    }
    return OptionalLong.empty();
  }

  /** The process's pid in its innermost pid namespace (the last of its NSpid line), or -1. */
  private static long namespacePid(long pid) {
    try {
      for (String line : Files.readAllLines(Path.of("/proc", Long.toString(pid), "status"))) {
        if (line.startsWith("NSpid:")) {
          String[] pids = line.substring("NSpid:".length()).trim().split("\\s+");
          return Long.parseLong(pids[pids.length - 1]);
        }
      }
    } catch (IOException | NumberFormatException gone) {
      return -1;
    }
    return -1;
  }
}
