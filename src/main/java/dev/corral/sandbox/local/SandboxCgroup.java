package dev.corral.sandbox.local;

import dev.corral.proto.v1.LimitEnforcement;
import dev.corral.proto.v1.LimitScope;
import dev.corral.proto.v1.SandboxResources;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The cgroup of one local sandbox: it holds every process of the sandbox (they join it before
 * bubblewrap starts, and their children inherit it) and carries the sandbox's memory, process and
 * CPU limits, for all of them together. Memory counts the in-memory /tmp and /workspace too. The
 * freezer stops the whole sandbox at once while corral kills what a call started. Blocking (file
 * writes under /sys/fs/cgroup); removed when the sandbox ends.
 */
final class SandboxCgroup {

  /** cgroup v1: one directory per controller; v2: one directory. */
  enum Version {
    V1,
    V2
  }

  /**
   * The CFS period of a sandbox's CPU quota. Within one period a sandbox of many busy processes may
   * spend its whole quota on every core before it is throttled: with 100 ms (the kernel's and
   * Kubernetes' default) a one-core sandbox held both cores of a two-core host for 50 ms at a time,
   * and its neighbours waited that long.
   */
  private static final long CPU_PERIOD_US = 10_000;

  private final Version version;
  private final Path memory;
  private final Path pids;
  private final Path cpu;
  private final Path freezer;

  private SandboxCgroup(Version version, Path memory, Path pids, Path cpu, Path freezer) {
    this.version = version;
    this.memory = memory;
    this.pids = pids;
    this.cpu = cpu;
    this.freezer = freezer;
  }

  /** Creates the cgroup {@code name} under the parents and gives it {@code resources}' limits. */
  static SandboxCgroup create(Cgroups.Layout layout, String name, SandboxResources resources)
      throws IOException {
    SandboxCgroup cgroup =
        layout.version() == Version.V2
            ? new SandboxCgroup(Version.V2, dir(layout.v2(), name), null, null, null)
            : new SandboxCgroup(
                Version.V1,
                dir(layout.memory(), name),
                dir(layout.pids(), name),
                dir(layout.cpu(), name),
                dir(layout.freezer(), name));
    try {
      cgroup.limit(resources);
      return cgroup;
    } catch (IOException | RuntimeException failure) {
      cgroup.remove();
      throw failure;
    }
  }

  private static Path dir(Path parent, String name) throws IOException {
    Path dir = parent.resolve(name);
    Files.createDirectory(dir);
    return dir;
  }

  private void limit(SandboxResources resources) throws IOException {
    long quota = Math.max(1_000, resources.getCpuMillis() * CPU_PERIOD_US / 1000);
    if (version == Version.V2) {
      write(memory.resolve("memory.max"), resources.getMemoryBytes());
      writeIfPresent(memory.resolve("memory.swap.max"), "0");
      write(memory.resolve("pids.max"), resources.getMaxProcesses());
      write(memory.resolve("cpu.max"), quota + " " + CPU_PERIOD_US);
      return;
    }
    write(memory.resolve("memory.limit_in_bytes"), resources.getMemoryBytes());
    // With swap accounting, memory and swap together stay within the limit: no swapping out.
    writeIfPresent(
        memory.resolve("memory.memsw.limit_in_bytes"), Long.toString(resources.getMemoryBytes()));
    // Without swap accounting (no memsw files) the limit would count RAM only, and what it reclaims
    // could go to swap without bound: the sandbox's pages are not swapped out at all.
    writeIfPresent(memory.resolve("memory.swappiness"), "0");
    write(pids.resolve("pids.max"), resources.getMaxProcesses());
    write(cpu.resolve("cpu.cfs_period_us"), CPU_PERIOD_US);
    write(cpu.resolve("cpu.cfs_quota_us"), quota);
  }

  /** The files a process writes its pid into to join this cgroup (every controller's). */
  List<Path> procsFiles() {
    List<Path> files = new ArrayList<>();
    for (Path dir : dirs()) {
      files.add(dir.resolve("cgroup.procs"));
    }
    return files;
  }

  /** The pids (host numbering) of every process of the sandbox. */
  List<Long> processes() throws IOException {
    List<Long> pids = new ArrayList<>();
    for (String line : Files.readAllLines(memory.resolve("cgroup.procs"))) {
      if (!line.isBlank()) {
        pids.add(Long.parseLong(line.strip()));
      }
    }
    return pids;
  }

  /** Stops every process of the sandbox where it is, until {@link #thaw}; waits up to 500 ms. */
  void freeze() throws IOException {
    if (version == Version.V2) {
      Files.writeString(memory.resolve("cgroup.freeze"), "1");
    } else {
      Files.writeString(freezer.resolve("freezer.state"), "FROZEN");
    }
    long deadline = System.nanoTime() + 500_000_000L;
    while (!frozen() && System.nanoTime() < deadline) {
      java.util.concurrent.locks.LockSupport.parkNanos(200_000);
    }
  }

  void thaw() throws IOException {
    if (version == Version.V2) {
      Files.writeString(memory.resolve("cgroup.freeze"), "0");
    } else {
      Files.writeString(freezer.resolve("freezer.state"), "THAWED");
    }
  }

  private boolean frozen() throws IOException {
    if (version == Version.V2) {
      return Files.readString(memory.resolve("cgroup.events")).contains("frozen 1");
    }
    return Files.readString(freezer.resolve("freezer.state")).strip().equals("FROZEN");
  }

  /** How many times the kernel's OOM killer stopped a process of the sandbox. */
  long oomKills() {
    Path file = memory.resolve(version == Version.V2 ? "memory.events" : "memory.oom_control");
    try {
      for (String line : Files.readAllLines(file)) {
        if (line.startsWith("oom_kill ")) {
          return Long.parseLong(line.substring("oom_kill ".length()).strip());
        }
      }
    } catch (IOException | NumberFormatException e) {
      return 0;
    }
    return 0;
  }

  /**
   * Starts counting {@link #limitHits} afresh, as a call starts; returns the count to compare a
   * later one with. v1: the peak of usage goes back to what is used now, and the count to compare
   * with is 0 (a sandbox that starts a call at its limit, its page cache or files filling it, reads
   * 1 at once: the call's own hit of its limit would not show as a change). v2: the count so far.
   */
  long restartPeak() {
    if (version == Version.V1) {
      for (String peak : List.of("memory.max_usage_in_bytes", "memory.memsw.max_usage_in_bytes")) {
        try {
          writeIfPresent(memory.resolve(peak), "0");
        } catch (IOException e) {
          // the peak stays from before: a shared shortage may read as the sandbox's own
        }
      }
      return 0;
    }
    return limitHits();
  }

  /**
   * How many times the sandbox's memory reached its own limit (not a limit above it, nor the host's
   * memory). v2 counts it as "max" in memory.events. v1's failcnt is not kept for every counter by
   * every kernel (6.18 left it at 0 when memory and swap together ran out), so on v1 this is 1 when
   * the peak since {@link #restartPeak} came within a step of the limit, else 0.
   */
  long limitHits() {
    try {
      if (version == Version.V1) {
        for (String counter : List.of("memory", "memory.memsw")) {
          Path peak = memory.resolve(counter + ".max_usage_in_bytes");
          Path limit = memory.resolve(counter + ".limit_in_bytes");
          if (Files.exists(peak) && Files.exists(limit)) {
            long max = Long.parseLong(Files.readString(limit).strip());
            long reached = Long.parseLong(Files.readString(peak).strip());
            // the kernel charges in batches of pages: a full sandbox may stop short of its limit
            if (reached >= max - Math.max(1L << 20, max / 64)) {
              return 1;
            }
          }
        }
        return 0;
      }
      for (String line : Files.readAllLines(memory.resolve("memory.events"))) {
        if (line.startsWith("max ")) {
          return Long.parseLong(line.substring("max ".length()).strip());
        }
      }
    } catch (IOException | NumberFormatException e) {
      return 0;
    }
    return 0;
  }

  /** Removes the cgroup; false while processes are still in it. */
  boolean remove() {
    boolean removed = true;
    for (Path dir : dirs()) {
      try {
        Files.deleteIfExists(dir);
      } catch (IOException busy) {
        removed = false;
      }
    }
    return removed;
  }

  /**
   * How this cgroup enforces {@code resources}.
   *
   * @param shared the memory all sandboxes of the replica share (0: unbounded)
   */
  List<LimitEnforcement> enforcement(long shared) {
    String v = version == Version.V2 ? "cgroup v2 " : "cgroup v1 ";
    return List.of(
        limit(
            "memory_bytes",
            LimitScope.LIMIT_SCOPE_SANDBOX,
            v
                + (version == Version.V2 ? "memory.max" : "memory.limit_in_bytes")
                + " (its in-memory /tmp and /workspace count too"
                + (shared > 0
                    ? "; all local sandboxes of this replica share " + (shared >> 20) + " MiB"
                    : "")
                + ")"),
        limit("max_processes", LimitScope.LIMIT_SCOPE_SANDBOX, v + "pids.max"),
        limit(
            "cpu_millis",
            LimitScope.LIMIT_SCOPE_SANDBOX,
            v + (version == Version.V2 ? "cpu.max" : "cpu.cfs_quota_us")));
  }

  static LimitEnforcement limit(String limit, LimitScope scope, String mechanism) {
    return LimitEnforcement.newBuilder()
        .setLimit(limit)
        .setScope(scope)
        .setMechanism(mechanism)
        .build();
  }

  private List<Path> dirs() {
    List<Path> dirs = new ArrayList<>();
    for (Path dir : new Path[] {memory, pids, cpu, freezer}) {
      if (dir != null) {
        dirs.add(dir);
      }
    }
    return dirs;
  }

  private static void write(Path file, long value) throws IOException {
    write(file, Long.toString(value));
  }

  private static void write(Path file, String value) throws IOException {
    Files.writeString(file, value, StandardCharsets.US_ASCII);
  }

  private static void writeIfPresent(Path file, String value) throws IOException {
    if (Files.exists(file)) {
      write(file, value);
    }
  }
}
