package dev.corral.sandbox.local;

import dev.corral.common.Replica;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.sandbox.driver.SandboxConfig;
import io.quarkus.runtime.ShutdownEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;
import org.jboss.logging.Logger;

/**
 * Whether local sandboxes get cgroups of their own, and where. As root, on cgroup v1 each
 * controller (memory, pids, cpu, freezer) gets a directory for this replica below corral's own
 * cgroup, so sandboxes stay within whatever limits corral itself runs under; on cgroup v2 (unified)
 * the directory is {@code /sys/fs/cgroup/corral.sandboxes/<replica>} with those controllers
 * enabled. A delegated v2 directory can be given instead ({@code
 * corral.sandbox.local.cgroup-parent}). Otherwise sandboxes fall back to per-process rlimits, and
 * the server says so once at startup.
 */
@ApplicationScoped
public class Cgroups {

  private static final Logger LOGGER = Logger.getLogger(Cgroups.class);
  private static final Path ROOT = Path.of("/sys/fs/cgroup");

  /** Where sandbox cgroups are made: the v1 controllers' directories, or one v2 directory. */
  record Layout(
      SandboxCgroup.Version version, Path memory, Path pids, Path cpu, Path freezer, Path v2) {}

  private final Optional<Layout> layout;
  private final String unavailable;
  private final long budget;

  Cgroups(SandboxConfig config, Replica replica) {
    String name = "corral-" + shortHash(replica.id());
    Layout found = null;
    String why;
    try {
      found = detect(config, name);
      why = null;
    } catch (IOException | RuntimeException failure) {
      why = failure.getMessage();
    }
    long budget = 0;
    if (found != null) {
      long wanted = memoryBudget(config);
      try {
        budget = share(found, wanted);
      } catch (IOException | RuntimeException failure) {
        // each sandbox keeps its own limits; only their sum is unbounded
        LOGGER.warnf(
            "local sandboxes get no shared memory limit (%s): together they may use more than"
                + " the %d MiB meant for them",
            failure.getMessage(), wanted >> 20);
      }
    }
    this.layout = Optional.ofNullable(found);
    this.unavailable = why;
    this.budget = budget;
    if (found == null) {
      LOGGER.warnf(
          "local sandboxes get no cgroups (%s): memory_bytes is enforced per process (RLIMIT_AS),"
              + " max_processes per user (RLIMIT_NPROC) and cpu_millis not at all. Run corral as"
              + " root, or give it a delegated cgroup v2 directory"
              + " (CORRAL_SANDBOX_LOCAL_CGROUP_PARENT).",
          why);
    } else {
      removeLeftovers(found);
      LOGGER.infof(
          "local sandboxes get cgroups: %s; they share %d MiB of memory",
          describe(found), budget >> 20);
    }
  }

  /** Whether sandboxes get cgroups; otherwise they fall back to rlimits. */
  public boolean available() {
    return layout.isPresent();
  }

  /** Bytes of memory all sandboxes of this replica share (0 without cgroups). */
  long budget() {
    return budget;
  }

  /** Why sandboxes get no cgroups, when they do not. */
  String unavailable() {
    return unavailable;
  }

  /** A new cgroup for a sandbox with {@code resources}; empty without cgroups. */
  Optional<SandboxCgroup> create(String name, SandboxResources resources) throws IOException {
    if (layout.isEmpty()) {
      return Optional.empty();
    }
    return Optional.of(SandboxCgroup.create(layout.get(), name, resources));
  }

  /** Removes this replica's (then empty) cgroup directories. */
  void stop(@Observes ShutdownEvent event) {
    layout.ifPresent(found -> dirs(found).forEach(Cgroups::removeEmpty));
  }

  private static Stream<Path> dirs(Layout layout) {
    return Stream.of(layout.memory(), layout.pids(), layout.cpu(), layout.freezer(), layout.v2())
        .filter(dir -> dir != null);
  }

  /**
   * Removes sandbox cgroups that no process uses any more, left by replicas that were killed (a
   * cgroup with processes cannot be removed, so a live sandbox is never touched).
   */
  private static void removeLeftovers(Layout layout) {
    dirs(layout)
        .map(Path::getParent)
        .forEach(
            parent -> {
              try (Stream<Path> replicas = Files.list(parent)) {
                replicas
                    .filter(dir -> dir.getFileName().toString().startsWith("corral-"))
                    .forEach(Cgroups::removeEmptySandboxes);
              } catch (IOException e) {
                LOGGER.debugf("cgroups under %s not listed: %s", parent, e.getMessage());
              }
            });
  }

  private static void removeEmptySandboxes(Path replica) {
    try (Stream<Path> sandboxes = Files.list(replica)) {
      sandboxes
          .filter(dir -> dir.getFileName().toString().startsWith("sbx-"))
          .forEach(Cgroups::removeEmpty);
    } catch (IOException e) {
      LOGGER.debugf("cgroups under %s not listed: %s", replica, e.getMessage());
    }
  }

  private static Layout detect(SandboxConfig config, String name) throws IOException {
    if (!config.local().cgroups()) {
      throw new IllegalStateException("turned off by corral.sandbox.local.cgroups");
    }
    Optional<String> parent = config.local().cgroupParent();
    if (parent.isPresent()) {
      return v2(Path.of(parent.get()), name);
    }
    if (!"0".equals(currentUid())) {
      throw new IllegalStateException("corral does not run as root");
    }
    if (Files.exists(ROOT.resolve("cgroup.controllers"))) {
      return v2(ROOT.resolve("corral.sandboxes"), name);
    }
    return new Layout(
        SandboxCgroup.Version.V1,
        v1("memory", name),
        v1("pids", name),
        v1("cpu", name),
        v1("freezer", name),
        null);
  }

  /** The replica's directory below corral's own cgroup in one v1 hierarchy. */
  private static Path v1(String controller, String name) throws IOException {
    Path hierarchy = ROOT.resolve(controller);
    if (!Files.isDirectory(hierarchy) || !Files.exists(hierarchy.resolve("cgroup.procs"))) {
      throw new IllegalStateException("no cgroup v1 " + controller + " hierarchy");
    }
    Path dir = hierarchy.resolve(ownPath(controller)).resolve(name);
    Files.createDirectories(dir);
    if (!Files.isWritable(dir.resolve("cgroup.procs"))) {
      throw new IllegalStateException(dir + " is not writable");
    }
    if ("memory".equals(controller)) {
      Files.writeString(dir.resolve("memory.use_hierarchy"), "1");
    }
    return dir;
  }

  /** The replica's directory in a v2 parent, with the controllers sandboxes need. */
  private static Layout v2(Path parent, String name) throws IOException {
    Files.createDirectories(parent);
    enable(parent);
    Path dir = parent.resolve(name);
    Files.createDirectories(dir);
    enable(dir);
    return new Layout(SandboxCgroup.Version.V2, null, null, null, null, dir);
  }

  private static void enable(Path dir) throws IOException {
    String available = Files.readString(dir.resolve("cgroup.controllers"));
    for (String controller : List.of("memory", "pids", "cpu")) {
      if (!available.contains(controller)) {
        throw new IllegalStateException(dir + " offers no " + controller + " controller");
      }
    }
    Files.writeString(dir.resolve("cgroup.subtree_control"), "+memory +pids +cpu");
  }

  /** corral's own cgroup in a v1 hierarchy (from /proc/self/cgroup), relative to its root. */
  private static String ownPath(String controller) throws IOException {
    for (String line : Files.readAllLines(Path.of("/proc/self/cgroup"))) {
      String[] parts = line.split(":", 3);
      if (parts.length == 3 && List.of(parts[1].split(",")).contains(controller)) {
        return parts[2].startsWith("/") ? parts[2].substring(1) : parts[2];
      }
    }
    return "";
  }

  /** The configured budget, or the host's memory less what everything else needs. */
  static long memoryBudget(SandboxConfig config) {
    if (config.local().memoryBudget().isPresent()) {
      long configured = config.local().memoryBudget().get();
      if (configured < (64L << 20)) {
        throw new IllegalArgumentException(
            "corral.sandbox.local.memory-budget must be at least 64 MiB, the least a sandbox has");
      }
      return configured;
    }
    long total = hostMemory();
    return total - Math.max(1L << 30, total / 4);
  }

  /** The host's memory (MemTotal), in bytes. */
  private static long hostMemory() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
        if (line.startsWith("MemTotal:")) {
          return Long.parseLong(line.replaceAll("[^0-9]", "")) << 10;
        }
      }
    } catch (IOException | NumberFormatException e) {
      throw new IllegalStateException("/proc/meminfo could not be read: " + e.getMessage());
    }
    throw new IllegalStateException("/proc/meminfo has no MemTotal");
  }

  /**
   * Gives the replica's cgroup the memory all its sandboxes share, and keeps their pages from swap
   * as each sandbox's own limit does. Returns the budget.
   */
  private static long share(Layout layout, long budget) throws IOException {
    if (budget < (64L << 20)) {
      throw new IllegalStateException(
          "the host has too little memory for a sandbox of 64 MiB beside corral ("
              + (budget >> 20)
              + " MiB would be left)");
    }
    if (layout.version() == SandboxCgroup.Version.V2) {
      Files.writeString(layout.v2().resolve("memory.max"), Long.toString(budget));
      Path swap = layout.v2().resolve("memory.swap.max");
      if (Files.exists(swap)) {
        Files.writeString(swap, "0");
      }
      return budget;
    }
    Path memory = layout.memory();
    Path limit = memory.resolve("memory.limit_in_bytes");
    Path memsw = memory.resolve("memory.memsw.limit_in_bytes");
    // memory may never pass memory and swap together: raising a smaller budget an earlier run
    // left, memory and swap go first; lowering, memory does
    List<Path> order =
        !Files.exists(memsw)
            ? List.of(limit)
            : budget > Long.parseLong(Files.readString(limit, StandardCharsets.US_ASCII).strip())
                ? List.of(memsw, limit)
                : List.of(limit, memsw);
    for (Path file : order) {
      Files.writeString(file, Long.toString(budget));
    }
    Path swappiness = memory.resolve("memory.swappiness");
    if (Files.exists(swappiness)) {
      Files.writeString(swappiness, "0");
    }
    return budget;
  }

  private static String describe(Layout layout) {
    return layout.version() == SandboxCgroup.Version.V2
        ? "cgroup v2 under " + layout.v2()
        : "cgroup v1 under " + layout.memory() + " (and pids, cpu, freezer)";
  }

  private static void removeEmpty(Path dir) {
    try (Stream<Path> children = Files.list(dir)) {
      children.filter(Files::isDirectory).forEach(Cgroups::removeEmpty);
    } catch (IOException e) {
      return;
    }
    try {
      Files.deleteIfExists(dir);
    } catch (IOException busy) {
      LOGGER.debugf("cgroup %s is still in use: %s", dir, busy.getMessage());
    }
  }

  private static String shortHash(String text) {
    try {
      byte[] digest =
          MessageDigest.getInstance("SHA-256").digest(text.getBytes(StandardCharsets.UTF_8));
      return HexFormat.of().formatHex(digest, 0, 6);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  static String currentUid() {
    try {
      return Files.getAttribute(Path.of("/proc/self"), "unix:uid").toString();
    } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
      return "";
    }
  }
}
