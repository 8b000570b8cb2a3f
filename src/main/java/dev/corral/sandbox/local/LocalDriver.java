package dev.corral.sandbox.local;

import dev.corral.common.DaemonThreads;
import dev.corral.common.FailedPreconditionException;
import dev.corral.common.Replica;
import dev.corral.common.ResourceExhaustedException;
import dev.corral.egress.EgressConfig;
import dev.corral.egress.EgressProxy;
import dev.corral.proto.v1.LimitEnforcement;
import dev.corral.proto.v1.LimitScope;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.sandbox.driver.ExecResult;
import dev.corral.sandbox.driver.Limits;
import dev.corral.sandbox.driver.SandboxCommand;
import dev.corral.sandbox.driver.SandboxConfig;
import dev.corral.sandbox.driver.SandboxDriver;
import dev.corral.sandbox.driver.SandboxLostException;
import dev.corral.sandbox.driver.SandboxSetup;
import dev.corral.sandbox.driver.ShellNotResetException;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Deque;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.jboss.logging.Logger;

/**
 * Sandboxes on this host with bubblewrap ({@link Bubblewrap}): each runs as its own unprivileged
 * user id (when corral runs as root) in a cgroup of its own that carries its limits ({@link
 * Cgroups}), with every namespace unshared (no network), an empty environment, a read-only root,
 * and a launcher as pid 1 that runs each call as a process ({@link LocalSandbox}). A few sandboxes
 * per set of limits are kept started, so that provisioning an environment without setup commands
 * claims one at once.
 */
@ApplicationScoped
public class LocalDriver implements SandboxDriver {

  private static final Logger LOGGER = Logger.getLogger(LocalDriver.class);
  private static final String INSTALL_HINT =
      "bubblewrap is not installed on this host: install it (apt-get install -y bubblewrap, or dnf"
          + " install bubblewrap), or give the environment the kubernetes driver";
  private static final Duration START_TIMEOUT = Duration.ofSeconds(20);
  private static final SecureRandom RANDOM = new SecureRandom();

  private final SandboxConfig config;
  private final Limits limits;
  private final Cgroups cgroups;
  private final EgressProxy egress;
  private final int proxyPort;
  private final MeterRegistry metrics;
  private final Clock clock;
  private final String host;
  private final String launcher;

  /** The file of the {@link SyscallFilter} every sandbox runs under; empty on other machines. */
  private final Optional<Path> syscallFilter;

  private final boolean root;
  private final ExecutorService io;
  private final ScheduledExecutorService timer;
  private final Map<String, LocalSandbox> sandboxes = new ConcurrentHashMap<>();

  /** Started, never used sandboxes by their limits, claimed by provisioning. */
  private final Map<SandboxResources, Deque<LocalSandbox>> warm = new ConcurrentHashMap<>();

  /** Kinds of limits whose (empty) warm pools are kept, beyond which the empty ones go. */
  private static final int MAX_WARM_KINDS = 16;

  /** When each warm pool was last claimed from or asked for, to end the idlest first. */
  private final Map<SandboxResources, Long> warmUsed = new ConcurrentHashMap<>();

  private final BitSet usedUids = new BitSet();
  private volatile boolean stopping;

  LocalDriver(
      SandboxConfig config,
      Replica replica,
      Limits limits,
      Cgroups cgroups,
      EgressProxy egress,
      EgressConfig egressConfig,
      Clock clock,
      MeterRegistry metrics) {
    this.egress = egress;
    this.proxyPort = egressConfig.sandboxPort();
    this.metrics = metrics;
    Gauge.builder("corral.sandbox.warm", this, LocalDriver::warmCount)
        .description("Started sandboxes waiting in the warm pool")
        .tag("driver", "local")
        .register(metrics);
    this.config = config;
    this.limits = limits;
    this.cgroups = cgroups;
    this.clock = clock;
    this.host = replica.id();
    this.launcher = launcherScript();
    this.syscallFilter = syscallFilterFile();
    this.root = "0".equals(Cgroups.currentUid());
    this.io = Executors.newCachedThreadPool(DaemonThreads.named("corral-sandbox-io"));
    this.timer =
        Executors.newSingleThreadScheduledExecutor(DaemonThreads.named("corral-sandbox-timer"));
  }

  /** Warms sandboxes with the default limits, the ones sessions without an environment use. */
  void warmUp(@Observes StartupEvent event) {
    // the cgroups are set up now: a memory budget that cannot be stops the start, not a sandbox
    cgroups.available();
    if (Files.isExecutable(Path.of(config.local().bwrap()))) {
      refill(limits.resolve(SandboxResources.getDefaultInstance()));
    }
  }

  void stop(@Observes ShutdownEvent event) {
    stopping = true;
    List<LocalSandbox> all = new ArrayList<>(sandboxes.values());
    warm.values().forEach(all::addAll);
    sandboxes.clear();
    warm.clear();
    timer.shutdownNow();
    all.forEach(this::discard);
    // Their processes die at once, but not in no time: their cgroups go once they have.
    long deadline = System.nanoTime() + 2_000_000_000L;
    for (LocalSandbox sandbox : all) {
      while (sandbox.cgroup().isPresent()
          && !sandbox.cgroup().get().remove()
          && System.nanoTime() < deadline) {
        java.util.concurrent.locks.LockSupport.parkNanos(10_000_000);
      }
    }
    io.shutdownNow();
  }

  /** The replica this driver's sandboxes live on. */
  public String host() {
    return host;
  }

  /** The sandboxes that run here now, with when each was provisioned. */
  public Map<String, Instant> hosted() {
    Map<String, Instant> hosted = new HashMap<>();
    sandboxes.forEach((id, sandbox) -> hosted.put(id, sandbox.assignedAt()));
    return hosted;
  }

  /** Whether the sandbox runs here. */
  public boolean hosts(String sandboxId) {
    LocalSandbox sandbox = sandboxes.get(sandboxId);
    return sandbox != null && sandbox.alive();
  }

  @Override
  public Uni<Provisioned> provision(SandboxSpec spec) {
    boolean plain = spec.environment().getSetupCommandsCount() == 0;
    ColdStart start = new ColdStart(spec); // a warm sandbox taken, or a cold start
    return Uni.createFrom()
        .item(
            () -> {
              start.requireNotGivenUp();
              LocalSandbox warm = plain ? claimWarm(spec.resources()) : null;
              return warm == null ? null : start.launched(warm);
            })
        .runSubscriptionOn(io)
        .flatMap(
            warm ->
                warm != null
                    ? serveEgress(warm, spec)
                        .onFailure()
                        .invoke(failure -> start.failed())
                        .map(sandbox -> start.assigned(sandbox, plain))
                    : startCold(spec, plain, start))
        .onItemOrFailure()
        .invoke((item, failure) -> start.end(false))
        .onCancellation()
        .invoke(() -> start.end(true));
  }

  /**
   * Opens the sandbox's way out, if its spec grants one: the egress proxy starts serving the socket
   * in the directory the sandbox has bound at /run/corral. Without a grant there is no socket, and
   * the sandbox has no network at all.
   */
  private Uni<LocalSandbox> serveEgress(LocalSandbox sandbox, SandboxSpec spec) {
    if (spec.egress().isEmpty()) {
      return Uni.createFrom().item(sandbox);
    }
    if (sandbox.egress().isEmpty()) {
      discard(sandbox, spec);
      return Uni.createFrom()
          .failure(
              new FailedPreconditionException(
                  "this replica cannot give local sandboxes network: its egress proxy needs"
                      + " Netty's epoll transport (Linux x86_64)"));
    }
    return egress
        .serve(sandbox.egress().get(), spec.egress().get())
        .replaceWith(sandbox)
        .onFailure()
        .invoke(failure -> discard(sandbox, spec));
  }

  @Override
  public Uni<ExecResult> run(String sandboxId, String host, SandboxCommand command) {
    return Uni.createFrom().item(() -> sandbox(sandboxId)).flatMap(sandbox -> sandbox.run(command));
  }

  @Override
  public Uni<Void> restartShell(String sandboxId, String host) {
    return Uni.createFrom()
        .item(() -> sandbox(sandboxId))
        .flatMap(
            sandbox ->
                sandbox
                    .restart(SandboxCommand.resetShell())
                    // a reset that did not run to its end (its bash was one the stop was killing)
                    // is run once more, now that nothing else runs: the shell must be reset when
                    // corral says it was
                    .flatMap(
                        reset ->
                            reset.exitCode() == 0 && !reset.timedOut()
                                ? Uni.createFrom().item(reset)
                                : Uni.createFrom()
                                    .voidItem()
                                    .invoke(
                                        () ->
                                            LOGGER.warnf(
                                                "sandbox %s: the shell's reset exited with %d;"
                                                    + " run again",
                                                sandboxId, reset.exitCode()))
                                    .flatMap(again -> sandbox.run(SandboxCommand.resetShell()))))
        .invoke(reset -> ShellNotResetException.check(sandboxId, reset))
        .replaceWithVoid();
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

  /**
   * Starts bubblewrap, waits for its launcher, opens its way out, runs the setup commands (which
   * may need the network the environment grants) and makes it the sandbox of {@code spec}. From
   * before it starts until it is assigned or ended it counts toward the replica's limit: setup
   * commands can run for as long as a call may.
   */
  private Uni<Provisioned> startCold(SandboxSpec spec, boolean plain, ColdStart start) {
    return Uni.createFrom()
        .item(
            () -> {
              start.reserve();
              return start.launched(launch(spec.resources()));
            })
        .runSubscriptionOn(io)
        .flatMap(
            sandbox -> serveEgress(sandbox, spec).onFailure().invoke(failure -> start.failed()))
        .call(
            sandbox ->
                SandboxSetup.run(spec, config.setupTimeout(), sandbox::run)
                    .onFailure()
                    .invoke(
                        failure -> {
                          start.failed();
                          discard(sandbox, spec);
                        }))
        .map(sandbox -> start.assigned(sandbox, plain))
        .onItemOrFailure()
        .invoke((item, failure) -> start.end(false))
        .onCancellation()
        .invoke(() -> start.end(true));
  }

  /**
   * One start's place in the replica's count (a cold start's) and its sandbox until assigned (a
   * launched or a warm one), so that a provision given up at any moment (its client gone) leaves
   * neither behind: what is reserved, launched or taken after it was given up is given back at
   * once.
   */
  private final class ColdStart {
    private final SandboxSpec spec;
    private boolean reserved;
    private boolean over;
    private LocalSandbox sandbox; // launched, and neither assigned nor discarded yet

    ColdStart(SandboxSpec spec) {
      this.spec = spec;
    }

    synchronized void requireNotGivenUp() {
      if (over) {
        throw new java.util.concurrent.CancellationException("the provision was given up");
      }
    }

    /** Blocking. */
    void reserve() {
      reserveStart();
      synchronized (this) {
        if (!over) {
          reserved = true;
          return;
        }
      }
      starting.decrementAndGet();
      throw new java.util.concurrent.CancellationException("the provision was given up");
    }

    /** Blocking. */
    LocalSandbox launched(LocalSandbox launched) {
      synchronized (this) {
        if (!over) {
          sandbox = launched;
          return launched;
        }
      }
      discard(launched, spec);
      throw new java.util.concurrent.CancellationException("the provision was given up");
    }

    /** A failure's own handler ended the sandbox. */
    synchronized void failed() {
      sandbox = null;
    }

    /** Once given up, the sandbox is ended by {@link #end} instead; assigned, it is released. */
    synchronized Provisioned assigned(LocalSandbox assigned, boolean plain) {
      if (over) {
        throw new java.util.concurrent.CancellationException("the provision was given up");
      }
      sandbox = null;
      return assign(assigned, spec, plain);
    }

    void end(boolean givenUp) {
      boolean release;
      LocalSandbox left;
      synchronized (this) {
        if (over) {
          return;
        }
        over = true;
        release = reserved;
        left = givenUp ? sandbox : null;
        sandbox = null;
      }
      if (release) {
        starting.decrementAndGet();
      }
      if (left != null) {
        io.execute(() -> discard(left, spec));
      }
    }
  }

  /** Ends a sandbox that was being provisioned for {@code spec}, and its egress. */
  private void discard(LocalSandbox sandbox, SandboxSpec spec) {
    egress.stop(spec.sandboxId());
    discard(sandbox);
  }

  /** Blocking: room for one more sandbox starting, if this replica may run one more. */
  private void reserveStart() {
    if (!Files.isExecutable(Path.of(config.local().bwrap()))) {
      throw new FailedPreconditionException(INSTALL_HINT);
    }
    synchronized (starting) {
      // a warm sandbox waiting for limits nobody asks for never stands in the way of one asked for
      while (running() >= config.local().maxSandboxes()) {
        if (!endIdlestWarm(null)) {
          throw new ResourceExhaustedException(
              "this replica runs " + running() + " local sandboxes, its limit");
        }
      }
      starting.incrementAndGet();
    }
  }

  /** Makes a started sandbox the sandbox of {@code spec}. */
  private Provisioned assign(LocalSandbox sandbox, SandboxSpec spec, boolean plain) {
    sandbox.assign(spec.sandboxId(), clock.instant());
    sandboxes.put(spec.sandboxId(), sandbox);
    if (plain) {
      refill(spec.resources());
    }
    return new Provisioned(host, enforcement(sandbox));
  }

  /** Blocking: starts a sandbox with {@code resources} and waits until its launcher answers. */
  private LocalSandbox launch(SandboxResources resources) {
    int uid = root ? allocateUid() : -1;
    Optional<SandboxCgroup> cgroup;
    try {
      cgroup = cgroups.create("sbx-" + randomSuffix(), resources);
    } catch (IOException | RuntimeException failure) {
      freeUid(uid);
      throw new FailedPreconditionException(
          "the sandbox's cgroup could not be made: " + failure.getMessage());
    }
    Optional<Path> egressDirectory;
    try {
      egressDirectory =
          egress.available()
              ? Optional.of(egress.directoryFor("sbx-" + randomSuffix(), uid))
              : Optional.empty();
    } catch (RuntimeException failure) {
      freeUid(uid);
      cgroup.ifPresent(this::removeLater);
      throw new FailedPreconditionException(
          "the sandbox's egress socket directory could not be made: " + failure.getMessage());
    }
    List<String> argv =
        Bubblewrap.command(
            config.local().bwrap(),
            resources,
            uid,
            cgroup.map(SandboxCgroup::procsFiles).orElse(List.of()),
            egressDirectory,
            proxyPort,
            launcher,
            syscallFilter);
    try {
      return LocalSandbox.start(
          argv, cgroup, egressDirectory, uid, START_TIMEOUT, io, timer, clock.instant());
    } catch (RuntimeException failure) {
      freeUid(uid);
      cgroup.ifPresent(this::removeLater);
      egressDirectory.ifPresent(EgressProxy::removeDirectory);
      throw failure;
    }
  }

  /** How a local sandbox enforces its limits: with its cgroup, or per process without one. */
  private List<LimitEnforcement> enforcement(LocalSandbox sandbox) {
    List<LimitEnforcement> enforced = new ArrayList<>();
    if (sandbox.cgroup().isPresent()) {
      enforced.addAll(sandbox.cgroup().get().enforcement(cgroups.budget()));
    } else {
      enforced.add(
          SandboxCgroup.limit(
              "memory_bytes",
              LimitScope.LIMIT_SCOPE_PROCESS,
              "RLIMIT_AS of each process (no cgroup: " + cgroups.unavailable() + ")"));
      enforced.add(
          root
              ? SandboxCgroup.limit(
                  "max_processes",
                  LimitScope.LIMIT_SCOPE_SANDBOX,
                  "RLIMIT_NPROC of the sandbox's own user")
              : SandboxCgroup.limit(
                  "max_processes",
                  LimitScope.LIMIT_SCOPE_USER,
                  "RLIMIT_NPROC of corral's user, which corral and every sandbox share"));
      enforced.add(
          SandboxCgroup.limit(
              "cpu_millis", LimitScope.LIMIT_SCOPE_NONE, "not enforced without a cgroup"));
    }
    enforced.add(
        SandboxCgroup.limit(
            "disk_bytes",
            LimitScope.LIMIT_SCOPE_SANDBOX,
            "size of each of the /workspace, /tmp and /dev/shm tmpfs, so at most three times it"
                + " in all"
                + (sandbox.cgroup().isPresent()
                    ? "; their pages also count against memory_bytes"
                    : "; without a cgroup, against no memory limit")));
    enforced.add(
        SandboxCgroup.limit(
            "call_timeout_ms",
            LimitScope.LIMIT_SCOPE_CALL,
            "corral stops every process the call started"));
    enforced.add(
        SandboxCgroup.limit(
            "lifetime_seconds", LimitScope.LIMIT_SCOPE_SANDBOX, "corral releases the sandbox"));
    return enforced;
  }

  /** A started, never used sandbox with exactly these limits, if one waits. */
  private LocalSandbox claimWarm(SandboxResources resources) {
    Deque<LocalSandbox> pool = warm.get(resources);
    if (pool != null) {
      warmUsed.put(resources, System.nanoTime());
    }
    for (LocalSandbox sandbox = pool == null ? null : pool.pollFirst();
        sandbox != null;
        sandbox = pool.pollFirst()) {
      if (sandbox.alive()) {
        warmClaim("hit");
        return sandbox;
      }
      discard(sandbox);
    }
    warmClaim("miss");
    return null;
  }

  /** Warm sandboxes waiting for {@code resources} (for tests). */
  int warmFor(SandboxResources resources) {
    Deque<LocalSandbox> pool = warm.get(resources);
    return pool == null ? 0 : pool.size();
  }

  /** Kinds of limits that have a warm pool now, empty or not (for tests). */
  int warmKinds() {
    return warm.size();
  }

  private double warmCount() {
    return warm.values().stream().mapToInt(Deque::size).sum();
  }

  private void warmClaim(String outcome) {
    metrics
        .counter("corral.sandbox.warm_claims", "driver", "local", "outcome", outcome)
        .increment();
  }

  /**
   * Tops up the warm sandboxes with these limits, in the background, within the replica's limit.
   */
  private void refill(SandboxResources resources) {
    int size = config.local().warmPoolSize();
    if (size <= 0) {
      return;
    }
    warmUsed.putIfAbsent(resources, System.nanoTime());
    Deque<LocalSandbox> pool =
        warm.computeIfAbsent(resources, key -> new ConcurrentLinkedDeque<>());
    io.execute(
        () -> {
          synchronized (pool) {
            while (pool.size() < size && running() < config.local().maxSandboxes() && !stopping) {
              // the limits asked for most recently stay warm: at most four kinds' worth wait
              if (warmCount() >= 4.0 * size && !endIdlestWarm(resources)) {
                return;
              }
              LocalSandbox started;
              try {
                started = launch(resources);
              } catch (RuntimeException failure) {
                LOGGER.warnf("a warm local sandbox could not start: %s", failure.getMessage());
                return;
              }
              if (warm.get(resources) != pool) {
                discard(started); // its pool was let go meanwhile: nobody would claim it
                return;
              }
              pool.addLast(started);
            }
          }
        });
    if (warm.size() > MAX_WARM_KINDS) {
      io.execute(() -> forgetEmptyWarmPools(resources));
    }
  }

  /**
   * Lets the empty warm pools go, but {@code keep}'s: a client that provisions with ever new limits
   * would otherwise grow the pools' maps without bound. Each pool is let go under its lock, which
   * its refill holds while it adds, so that no sandbox is added to a pool nobody claims from.
   */
  private void forgetEmptyWarmPools(SandboxResources keep) {
    for (Map.Entry<SandboxResources, Deque<LocalSandbox>> entry : warm.entrySet()) {
      if (entry.getKey().equals(keep)) {
        continue; // being refilled: it was just asked for
      }
      Deque<LocalSandbox> pool = entry.getValue();
      synchronized (pool) {
        if (pool.isEmpty() && warm.remove(entry.getKey(), pool)) {
          warmUsed.remove(entry.getKey());
        }
      }
    }
  }

  /**
   * Ends one warm sandbox of the pool asked for least recently (other than {@code keep}'s), so that
   * another may start; false if none waits.
   */
  private boolean endIdlestWarm(SandboxResources keep) {
    while (true) {
      Optional<Deque<LocalSandbox>> idlest =
          warm.entrySet().stream()
              .filter(pool -> !pool.getValue().isEmpty() && !pool.getKey().equals(keep))
              .min(
                  java.util.Comparator.comparingLong(
                      pool -> warmUsed.getOrDefault(pool.getKey(), 0L)))
              .map(Map.Entry::getValue);
      if (idlest.isEmpty()) {
        return false;
      }
      LocalSandbox sandbox = idlest.get().pollLast();
      if (sandbox != null) {
        discard(sandbox);
        return true;
      }
    }
  }

  /** Sandboxes this replica runs, in use, warm or starting for a provision. */
  private int running() {
    return sandboxes.size() + warm.values().stream().mapToInt(Deque::size).sum() + starting.get();
  }

  /** Sandboxes starting (or running their setup) for a provision, not yet assigned. */
  private final java.util.concurrent.atomic.AtomicInteger starting =
      new java.util.concurrent.atomic.AtomicInteger();

  /** Ends a sandbox and frees its user id and cgroup. */
  private void discard(LocalSandbox sandbox) {
    egress.stop(sandbox.id());
    sandbox.kill("it was released");
    sandbox.egress().ifPresent(EgressProxy::removeDirectory);
    freeUid(sandbox.uid());
    sandbox.cgroup().ifPresent(this::removeLater);
  }

  /** Removes a cgroup once its processes are gone (they die at once, but not in no time). */
  private void removeLater(SandboxCgroup cgroup) {
    removeLater(cgroup, 50);
  }

  private void removeLater(SandboxCgroup cgroup, int attempts) {
    if (cgroup.remove() || attempts <= 0 || timer.isShutdown()) {
      return;
    }
    timer.schedule(() -> removeLater(cgroup, attempts - 1), 20, TimeUnit.MILLISECONDS);
  }

  private synchronized int allocateUid() {
    int count = config.local().uidCount();
    int start = ThreadLocalRandom.current().nextInt(count);
    boolean hostHeld = false;
    java.util.function.LongPredicate heldByHost = hostIds.now(); // the files read once a call
    for (int i = 0; i < count; i++) {
      int slot = (start + i) % count;
      if (usedUids.get(slot)) {
        continue;
      }
      if (heldByHost.test((long) config.local().uidBase() + slot)) {
        hostHeld = true; // a user of the host holds it (or may map it): never a sandbox's
        continue;
      }
      usedUids.set(slot);
      return config.local().uidBase() + slot;
    }
    if (hostHeld) {
      throw new FailedPreconditionException(
          "no sandbox user id is free: the host's users, groups and their subordinate ids"
              + " (/etc/subuid, /etc/subgid) hold the rest of corral.sandbox.local.uid-base and"
              + " uid-count; move the range past them");
    }
    throw new ResourceExhaustedException("no sandbox user id is free");
  }

  private final HostIds hostIds = new HostIds();

  private synchronized void freeUid(int uid) {
    if (uid >= 0) {
      usedUids.clear(uid - config.local().uidBase());
    }
  }

  private static String randomSuffix() {
    byte[] bytes = new byte[6];
    RANDOM.nextBytes(bytes);
    return HexFormat.of().formatHex(bytes);
  }

  private static Optional<Path> syscallFilterFile() {
    Optional<byte[]> program = SyscallFilter.forThisMachine();
    if (program.isEmpty()) {
      LOGGER.warnf(
          "no syscall filter is known for %s: local sandboxes run without one",
          System.getProperty("os.arch"));
      return Optional.empty();
    }
    try {
      Path file = Files.createTempFile("corral-syscalls-", ".bpf");
      file.toFile().deleteOnExit();
      Files.write(file, program.get());
      return Optional.of(file);
    } catch (IOException e) {
      throw new UncheckedIOException("the sandboxes' syscall filter could not be written", e);
    }
  }

  private static String launcherScript() {
    try (InputStream in = LocalDriver.class.getResourceAsStream("launcher.pl")) {
      if (in == null) {
        throw new IllegalStateException("launcher.pl is missing from the build");
      }
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
