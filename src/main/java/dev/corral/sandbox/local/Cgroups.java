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
    this.layout = Optional.ofNullable(found);
    this.unavailable = why;
    if (found == null) {
      LOGGER.warnf(
          "local sandboxes get no cgroups (%s): memory_bytes is enforced per process (RLIMIT_AS),"
              + " max_processes per user (RLIMIT_NPROC) and cpu_millis not at all. Run corral as"
              + " root, or give it a delegated cgroup v2 directory"
              + " (CORRAL_SANDBOX_LOCAL_CGROUP_PARENT).",
          why);
    } else {
      removeLeftovers(found);
      LOGGER.infof("local sandboxes get cgroups: %s", describe(found));
    }
  }

  /** Whether sandboxes get cgroups; otherwise they fall back to rlimits. */
  public boolean available() {
    return layout.isPresent();
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
