package dev.corral.sandbox.local;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * What /proc says of processes: their parent and session, when each started (in the kernel's clock
 * ticks since boot), and which host pid a process of a sandbox's pid namespace has. Blocking (file
 * reads).
 */
final class ProcStat {

  /** More than a sandbox may hold (its max_processes is at most this). */
  private static final int MAX_DESCENDANTS = 1 << 16;

  private ProcStat() {}

  /**
   * Of a live process: its parent, its session (the pid of its leader), when it started, and
   * whether it is stopped (by a signal or a tracer).
   */
  record Stat(long parent, long session, long startTicks, boolean stopped) {}

  /**
   * The process's parent, session and start; empty if it is gone, or a zombie (which matters no
   * more). A zombie leader whose other threads still run (its main thread called {@code exit} on
   * its own) is live: it runs code as any process does, and a SIGKILL to its pid ends them all.
   */
  static Optional<Stat> of(long pid) {
    String stat;
    try {
      // comm is any bytes the process chose (not UTF-8, a newline): read byte for byte
      stat =
          new String(
              Files.readAllBytes(Path.of("/proc", Long.toString(pid), "stat")),
              StandardCharsets.ISO_8859_1);
    } catch (IOException gone) {
      return Optional.empty();
    }
    // "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses, so the
    // fields are split after the last ')'.
    String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
    if (fields.length < 20 || "Z".equals(fields[0]) && !threadsRun(pid)) {
      return Optional.empty();
    }
    return Optional.of(
        new Stat(
            Long.parseLong(fields[1]),
            Long.parseLong(fields[3]),
            Long.parseLong(fields[19]),
            "T".equals(fields[0]) || "t".equals(fields[0])));
  }

  /**
   * Whether a zombie leader has a thread that still runs (the kernel keeps the leader while it
   * does): one whose own state is neither zombie nor dead.
   */
  private static boolean threadsRun(long pid) {
    try (DirectoryStream<Path> tasks =
        Files.newDirectoryStream(Path.of("/proc", Long.toString(pid), "task"))) {
      for (Path task : tasks) {
        String stat;
        try {
          stat = new String(Files.readAllBytes(task.resolve("stat")), StandardCharsets.ISO_8859_1);
        } catch (IOException gone) {
          continue;
        }
        String state = stat.substring(stat.lastIndexOf(')') + 2).split(" ", 2)[0];
        if (!state.equals("Z") && !state.equals("X")) {
          return true;
        }
      }
      return false;
    } catch (IOException gone) {
      return false;
    }
  }

  /**
   * Every descendant of {@code root}, from the kernel's list of each one's children (no scan of
   * every process of the host); a process that forks while it is read may be missed.
   */
  static List<Long> descendants(long root) {
    List<Long> found = new ArrayList<>();
    Deque<Long> next = new ArrayDeque<>(children(root));
    while (!next.isEmpty() && found.size() < MAX_DESCENDANTS) {
      long pid = next.pop();
      found.add(pid);
      next.addAll(children(pid));
    }
    return found;
  }

  /** The children of every thread of {@code pid}. */
  private static List<Long> children(long pid) {
    List<Long> children = new ArrayList<>();
    try (DirectoryStream<Path> tasks =
        Files.newDirectoryStream(Path.of("/proc", Long.toString(pid), "task"))) {
      for (Path task : tasks) {
        for (String child : Files.readString(task.resolve("children")).trim().split(" ")) {
          if (!child.isEmpty()) {
            children.add(Long.parseLong(child));
          }
        }
      }
    } catch (IOException | RuntimeException gone) {
      // it ended meanwhile
    }
    return children;
  }

  /**
   * The host pid of the direct child of {@code parent} that is {@code nsPid} in its own pid
   * namespace; empty if there is none.
   */
  static OptionalLong childWithNamespacePid(long parent, long nsPid) {
    for (long child : children(parent)) {
      if (namespacePid(child) == nsPid) {
        return OptionalLong.of(child);
      }
    }
    return OptionalLong.empty();
  }

  /** The process's pid in its innermost pid namespace (the last of its NSpid line), or -1. */
  private static long namespacePid(long pid) {
    try {
      // byte for byte, as stat: its Name line is whatever bytes the process chose
      String status =
          new String(
              Files.readAllBytes(Path.of("/proc", Long.toString(pid), "status")),
              StandardCharsets.ISO_8859_1);
      for (String line : status.split("\n")) {
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
