package dev.corral.sandbox.local;

import dev.corral.common.DaemonThreads;
import dev.corral.common.FailedPreconditionException;
import dev.corral.common.ResourceExhaustedException;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.sandbox.driver.ExecResult;
import dev.corral.sandbox.driver.Limits;
import dev.corral.sandbox.driver.SandboxCommand;
import dev.corral.sandbox.driver.SandboxConfig;
import dev.corral.sandbox.driver.SandboxDriver;
import dev.corral.sandbox.driver.SandboxLostException;
import dev.corral.sandbox.driver.SandboxSetup;
import io.quarkus.runtime.ShutdownEvent;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import org.jboss.logging.Logger;

/**
 * Sandboxes on this host with bubblewrap. Each runs as its own unprivileged user id (when corral
 * runs as root), with every namespace unshared (no network), a new session, no capability,
 * read-only system directories, a private size-limited /workspace and /tmp, an empty environment
 * (started through {@code env -i}) and process, file-size, memory and CPU limits.
 */
@ApplicationScoped
public class LocalDriver implements SandboxDriver {

  private static final Logger LOGGER = Logger.getLogger(LocalDriver.class);
  private static final String INSTALL_HINT =
      "bubblewrap is not installed on this host: install it (apt-get install -y bubblewrap, or dnf"
          + " install bubblewrap), or give the environment the kubernetes driver";
  private static final List<String> ETC_ENTRIES =
      List.of(
          "alternatives",
          "ld.so.cache",
          "ld.so.conf",
          "ld.so.conf.d",
          "passwd",
          "group",
          "nsswitch.conf",
          "localtime",
          "mime.types",
          "perl",
          "ssl",
          "bash.bashrc",
          "inputrc");
  private static final Duration START_TIMEOUT = Duration.ofSeconds(20);

  private final SandboxConfig config;
  private final String host;
  private final Map<String, LocalSandbox> sandboxes = new ConcurrentHashMap<>();

  /** Started, never used sandboxes by their limits, claimed by provisioning. */
  private final Map<SandboxResources, java.util.Deque<LocalSandbox>> warm =
      new ConcurrentHashMap<>();

  private volatile boolean stopping;
  private final Limits limits;
  private final BitSet usedUids = new BitSet();
  private final ExecutorService io;
  private final ScheduledExecutorService timer;
  private final boolean root;
  private final Clock clock;

  LocalDriver(SandboxConfig config, dev.corral.common.Replica replica, Limits limits, Clock clock) {
    this.config = config;
    this.clock = clock;
    this.limits = limits;
    this.host = replica.id();
    this.io = Executors.newCachedThreadPool(DaemonThreads.named("corral-sandbox-io"));
    this.timer =
        Executors.newSingleThreadScheduledExecutor(DaemonThreads.named("corral-sandbox-timer"));
    this.root = "0".equals(currentUid());
  }

  /** Warms sandboxes with the default limits, the ones sessions without an environment use. */
  void warmUp(@Observes io.quarkus.runtime.StartupEvent event) {
    if (Files.isExecutable(Path.of(config.local().bwrap()))) {
      refill(limits.resolve(SandboxResources.getDefaultInstance()));
    }
  }

  void stop(@Observes ShutdownEvent event) {
    stopping = true;
    warm.values().forEach(pool -> pool.forEach(LocalSandbox::kill));
    sandboxes.values().forEach(LocalSandbox::kill);
    sandboxes.clear();
    io.shutdownNow();
    timer.shutdownNow();
  }

  /** The replica this driver's sandboxes live on. */
  public String host() {
    return host;
  }

  /** The sandboxes that run here now, with when each was provisioned. */
  public Map<String, java.time.Instant> hosted() {
    Map<String, java.time.Instant> hosted = new java.util.HashMap<>();
    sandboxes.forEach((id, sandbox) -> hosted.put(id, sandbox.assignedAt()));
    return hosted;
  }

  /** Whether the sandbox runs here. */
  public boolean hosts(String sandboxId) {
    LocalSandbox sandbox = sandboxes.get(sandboxId);
    return sandbox != null && sandbox.alive();
  }

  @Override
  public Uni<String> provision(SandboxSpec spec) {
    boolean plain = spec.environment().getSetupCommandsCount() == 0;
    return Uni.createFrom()
        .item(() -> plain ? claimWarm(spec.resources()) : null)
        .runSubscriptionOn(io)
        .flatMap(warm -> warm != null ? Uni.createFrom().item(warm) : startCold(spec))
        .map(sandbox -> assign(sandbox, spec, plain));
  }

  @Override
  public Uni<ExecResult> run(String sandboxId, String host, SandboxCommand command) {
    return Uni.createFrom()
        .item(() -> sandbox(sandboxId))
        .flatMap(sandbox -> runOn(sandbox, sandboxId, command));
  }

  private Uni<ExecResult> runOn(LocalSandbox sandbox, String sandboxId, SandboxCommand command) {
    return Uni.createFrom()
        .item(() -> sandbox.run(command))
        .runSubscriptionOn(io)
        .ifNoItem()
        .after(command.timeout().plus(Duration.ofSeconds(30)))
        .failWith(() -> new SandboxLostException(sandboxId, "it stopped answering"));
  }

  @Override
  public Uni<Void> restartShell(String sandboxId, String host) {
    return Uni.createFrom()
        .item(
            () -> {
              sandbox(sandboxId).restartShell();
              return (Void) null;
            })
        .runSubscriptionOn(io);
  }

  @Override
  public Uni<Void> release(String sandboxId, String host) {
    return Uni.createFrom()
        .item(
            () -> {
              LocalSandbox sandbox = sandboxes.remove(sandboxId);
              if (sandbox != null) {
                discard(sandbox);
              }
              return (Void) null;
            })
        .runSubscriptionOn(io);
  }

  private LocalSandbox sandbox(String sandboxId) {
    LocalSandbox sandbox = sandboxes.get(sandboxId);
    if (sandbox == null || !sandbox.alive()) {
      throw new SandboxLostException(sandboxId, "it no longer runs on " + host);
    }
    return sandbox;
  }

  /** Starts bubblewrap, waits for its shell and runs the setup commands. */
  private Uni<LocalSandbox> startCold(SandboxSpec spec) {
    return Uni.createFrom()
        .item(() -> launchWithin(spec.resources()))
        .runSubscriptionOn(io)
        .call(
            sandbox ->
                SandboxSetup.run(spec, command -> runOn(sandbox, "(setting up)", command))
                    .onFailure()
                    .invoke(failure -> discard(sandbox)));
  }

  /** Blocking: a new sandbox, if this replica may run one more. */
  private LocalSandbox launchWithin(SandboxResources resources) {
    if (!Files.isExecutable(Path.of(config.local().bwrap()))) {
      throw new FailedPreconditionException(INSTALL_HINT);
    }
    if (running() >= config.local().maxSandboxes()) {
      throw new ResourceExhaustedException(
          "this replica runs " + running() + " local sandboxes, its limit");
    }
    return launch(resources);
  }

  /** Makes a started sandbox the sandbox of {@code spec}, until its lifetime ends. */
  private String assign(LocalSandbox sandbox, SandboxSpec spec, boolean plain) {
    sandbox.assign(spec.sandboxId(), clock.instant());
    sandboxes.put(spec.sandboxId(), sandbox);
    timer.schedule(
        () -> release(spec.sandboxId(), host).subscribe().with(ignored -> {}),
        spec.resources().getLifetimeSeconds(),
        java.util.concurrent.TimeUnit.SECONDS);
    if (plain) {
      refill(spec.resources());
    }
    return host;
  }

  /** Starts a sandbox with {@code resources} and waits until its shell answers. */
  private LocalSandbox launch(SandboxResources resources) {
    int uid = root ? allocateUid() : -1;
    Process process;
    try {
      ProcessBuilder builder =
          new ProcessBuilder(command(resources, uid)).redirectErrorStream(true);
      builder.environment().clear();
      process = builder.start();
    } catch (IOException e) {
      freeUid(uid);
      throw new FailedPreconditionException("the sandbox could not start: " + e.getMessage());
    }
    LocalSandbox sandbox = new LocalSandbox(process, uid, timer, clock.instant());
    try {
      ExecResult ready =
          sandbox.run(new SandboxCommand("true", List.of(), true, START_TIMEOUT, 4096, false));
      if (ready.exitCode() != 0) {
        throw new SandboxLostException("(starting)", text(ready));
      }
      return sandbox;
    } catch (SandboxLostException lost) {
      discard(sandbox);
      throw new FailedPreconditionException("the sandbox could not start: " + lost.getMessage());
    }
  }

  /** A started, never used sandbox with exactly these limits, if one waits. */
  private LocalSandbox claimWarm(SandboxResources resources) {
    java.util.Deque<LocalSandbox> pool = warm.get(resources);
    for (LocalSandbox sandbox = pool == null ? null : pool.pollFirst();
        sandbox != null;
        sandbox = pool.pollFirst()) {
      if (sandbox.alive()) {
        return sandbox;
      }
      discard(sandbox);
    }
    return null;
  }

  /**
   * Tops up the warm sandboxes with these limits, in the background, within the replica's limit.
   */
  private void refill(SandboxResources resources) {
    int size = config.local().warmPoolSize();
    if (size <= 0) {
      return;
    }
    java.util.Deque<LocalSandbox> pool =
        warm.computeIfAbsent(resources, key -> new java.util.concurrent.ConcurrentLinkedDeque<>());
    io.execute(
        () -> {
          synchronized (pool) {
            while (pool.size() < size && running() < config.local().maxSandboxes() && !stopping) {
              try {
                pool.addLast(launch(resources));
              } catch (RuntimeException failure) {
                LOGGER.warnf("a warm local sandbox could not start: %s", failure.getMessage());
                return;
              }
            }
          }
        });
  }

  /** Sandboxes this replica runs, in use or warm. */
  private int running() {
    return sandboxes.size() + warm.values().stream().mapToInt(java.util.Deque::size).sum();
  }

  private void discard(LocalSandbox sandbox) {
    sandbox.kill();
    freeUid(sandbox.uid());
  }

  /** env -i [setpriv to the sandbox's uid] prlimit ... bwrap ... bash (the supervisor loop). */
  List<String> command(SandboxResources resources, int uid) {
    List<String> argv = new ArrayList<>(List.of("/usr/bin/env", "-i"));
    if (uid >= 0) {
      argv.addAll(
          List.of(
              "/usr/bin/setpriv",
              "--reuid=" + uid,
              "--regid=" + uid,
              "--clear-groups",
              "--inh-caps=-all",
              "--bounding-set=-all",
              "--"));
    }
    argv.addAll(
        List.of(
            "/usr/bin/prlimit",
            "--nproc=" + resources.getMaxProcesses(),
            "--fsize=" + resources.getDiskBytes(),
            "--as=" + resources.getMemoryBytes(),
            "--cpu=" + Math.max(60, resources.getLifetimeSeconds()),
            "--nofile=4096",
            "--core=0",
            "--",
            config.local().bwrap(),
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--hostname",
            "sandbox",
            "--ro-bind",
            "/usr",
            "/usr"));
    for (String top : List.of("bin", "lib", "lib32", "lib64", "libx32", "sbin")) {
      systemDirectory(argv, Path.of("/", top));
    }
    argv.addAll(List.of("--dir", "/etc"));
    for (String entry : ETC_ENTRIES) {
      if (Files.exists(Path.of("/etc", entry))) {
        argv.addAll(List.of("--ro-bind", "/etc/" + entry, "/etc/" + entry));
      }
    }
    argv.addAll(
        List.of(
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--size",
            Long.toString(resources.getDiskBytes()),
            "--tmpfs",
            "/tmp",
            "--size",
            Long.toString(resources.getDiskBytes()),
            "--tmpfs",
            "/workspace",
            // The root (and so /etc) becomes read-only; /tmp and /workspace stay writable.
            "--remount-ro",
            "/",
            "--chdir",
            "/workspace",
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/local/bin:/usr/bin:/bin",
            "--setenv",
            "HOME",
            "/workspace",
            "--setenv",
            "LANG",
            "C.UTF-8",
            "--setenv",
            "TERM",
            "dumb",
            "/bin/bash",
            "--noprofile",
            "--norc",
            "-c",
            LocalSandbox.SUPERVISOR));
    return argv;
  }

  /** Merged-/usr systems link /bin and friends into /usr; others need them bound read-only. */
  private static void systemDirectory(List<String> argv, Path path) {
    if (Files.isSymbolicLink(path)) {
      try {
        argv.addAll(List.of("--symlink", Files.readSymbolicLink(path).toString(), path.toString()));
      } catch (IOException e) {
        LOGGER.debugf("cannot read the link %s: %s", path, e.getMessage());
      }
    } else if (Files.isDirectory(path)) {
      argv.addAll(List.of("--ro-bind", path.toString(), path.toString()));
    }
  }

  private synchronized int allocateUid() {
    int count = config.local().uidCount();
    int start = ThreadLocalRandom.current().nextInt(count);
    for (int i = 0; i < count; i++) {
      int slot = (start + i) % count;
      if (!usedUids.get(slot)) {
        usedUids.set(slot);
        return config.local().uidBase() + slot;
      }
    }
    throw new ResourceExhaustedException("no sandbox user id is free");
  }

  private synchronized void freeUid(int uid) {
    if (uid >= 0) {
      usedUids.clear(uid - config.local().uidBase());
    }
  }

  private static String text(ExecResult result) {
    return new String(result.output(), StandardCharsets.UTF_8).strip();
  }

  private static String currentUid() {
    try {
      return Files.getAttribute(Path.of("/proc/self"), "unix:uid").toString();
    } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
      return "";
    }
  }
}
