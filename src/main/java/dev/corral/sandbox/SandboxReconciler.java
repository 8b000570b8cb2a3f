package dev.corral.sandbox;

import dev.corral.common.DaemonThreads;
import dev.corral.common.ProtoTime;
import dev.corral.identity.TenantDisabled;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SandboxState;
import dev.corral.sandbox.driver.SandboxConfig;
import dev.corral.sandbox.kubernetes.KubernetesDriver;
import dev.corral.sandbox.local.LocalDriver;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import java.util.function.Supplier;
import org.jboss.logging.Logger;

/**
 * Converges what runs with what the records say, from whatever state it finds (operator-style), at
 * start and then every {@code corral.sandbox.reconcile-interval}:
 *
 * <ul>
 *   <li>a sandbox whose session ended, or whose lifetime is over, is released;
 *   <li>a local sandbox of this replica that no longer runs is recorded as lost, and a local
 *       process whose record ended (released through another replica) is killed;
 *   <li>with the kubernetes driver: a sandbox pod whose record ended or that no record owns is
 *       deleted, a ready record whose pod is gone is lost, and the warm pools are brought to their
 *       environments' spec and size.
 * </ul>
 *
 * A pass never blocks a thread; passes run one after another. Replicas reconcile independently:
 * every step is idempotent, and a pool overfilled by two replicas at once is trimmed on the next
 * pass.
 */
@ApplicationScoped
public class SandboxReconciler {

  private static final Logger LOGGER = Logger.getLogger(SandboxReconciler.class);

  /**
   * A local sandbox is recorded just after it starts: a missing record gets this long to appear.
   */
  private static final Duration RECORDING_GRACE = Duration.ofSeconds(60);

  private static final Report NOTHING = new Report(0, 0, 0, 0, 0);

  static final String TENANT_DISABLED = "its tenant was disabled";

  /** Beyond a pod's start and the setup timeout, what a provisioning may take (clones, egress). */
  static final Duration PROVISIONING_MARGIN = Duration.ofMinutes(5);

  private final SandboxRepository repository;
  private final Sandboxes sandboxes;
  private final LocalDriver local;
  private final KubernetesDriver kubernetes;
  private final SandboxConfig config;
  private final Clock clock;
  private ScheduledExecutorService timer;
  private Uni<Report> last = Uni.createFrom().item(NOTHING);

  SandboxReconciler(
      SandboxRepository repository,
      Sandboxes sandboxes,
      LocalDriver local,
      KubernetesDriver kubernetes,
      SandboxConfig config,
      Clock clock) {
    this.repository = repository;
    this.sandboxes = sandboxes;
    this.local = local;
    this.kubernetes = kubernetes;
    this.config = config;
    this.clock = clock;
  }

  void start(@Observes StartupEvent event) {
    timer =
        Executors.newSingleThreadScheduledExecutor(
            DaemonThreads.named("corral-sandbox-reconciler"));
    long interval = config.reconcileInterval().toMillis();
    timer.scheduleWithFixedDelay(this::tick, 0, interval, TimeUnit.MILLISECONDS);
    timer.scheduleWithFixedDelay(
        this::stopEndedElsewhere,
        ENDED_CHECK_INTERVAL.toMillis(),
        ENDED_CHECK_INTERVAL.toMillis(),
        TimeUnit.MILLISECONDS);
  }

  /**
   * How often a replica asks whether a sandbox it runs was released or lost through another replica
   * (a ReleaseSandbox, a session ended there), to stop it and its call under way: the full pass
   * comes only every reconcile interval.
   */
  static final Duration ENDED_CHECK_INTERVAL = Duration.ofSeconds(1);

  private final java.util.concurrent.atomic.AtomicBoolean checkingEnded =
      new java.util.concurrent.atomic.AtomicBoolean();

  /**
   * Stops the local sandboxes whose records ended, by the pass's own rule ({@link #killUnowned}),
   * in one query for all of them, if any run.
   */
  private void stopEndedElsewhere() {
    Map<String, Instant> hosted = local.hosted();
    if (hosted.isEmpty() || !checkingEnded.compareAndSet(false, true)) {
      return;
    }
    repository
        .byIds(List.copyOf(hosted.keySet()))
        .flatMap(records -> killUnowned(hosted, byId(records), new Counts()))
        .onTermination()
        .invoke(() -> checkingEnded.set(false))
        .subscribe()
        .with(
            done -> {},
            failure ->
                LOGGER.debugf("checking for sandboxes ended elsewhere: %s", failure.getMessage()));
  }

  /** A tenant disabled here: its sandboxes end now, not at the next pass. */
  void tenantDisabled(@Observes TenantDisabled event) {
    if (timer != null) {
      timer.execute(this::tick);
    }
  }

  void stop(@Observes ShutdownEvent event) {
    if (timer != null) {
      timer.shutdownNow();
    }
  }

  /** What one pass changed. */
  public record Report(
      int released, int lost, int processesKilled, int podsDeleted, int podsCreated) {}

  /** One pass, after the one under way (if any) has ended. */
  public synchronized Uni<Report> reconcile() {
    Uni<Report> previous = last;
    Uni<Report> next =
        previous
            .onItemOrFailure()
            .transformToUni((report, failure) -> pass())
            .memoize()
            .indefinitely();
    last = next;
    return next;
  }

  private void tick() {
    reconcile()
        .subscribe()
        .with(
            report -> {},
            failure ->
                LOGGER.warnf(
                    "sandbox reconciler pass failed (retried next pass): %s",
                    failure.getMessage()));
  }

  private Uni<Report> pass() {
    Counts counts = new Counts();
    // One read of the live records per pass, taken before any pod is listed, so that a sandbox
    // that becomes ready during the pass is judged on the next one.
    return repository
        .live()
        .flatMap(live -> releaseEnded(live, counts))
        .call(live -> reconcileLocal(live, counts))
        .call(
            live ->
                config.kubernetes().enabled()
                    ? reconcilePods(live, counts)
                    : Uni.createFrom().voidItem())
        .map(ignored -> counts.report())
        .invoke(
            report -> {
              if (!report.equals(NOTHING)) {
                LOGGER.infof("sandbox reconciler: %s", report);
              }
            });
  }

  private static final class Counts {
    final AtomicInteger released = new AtomicInteger();
    final AtomicInteger lost = new AtomicInteger();
    final AtomicInteger processesKilled = new AtomicInteger();
    final AtomicInteger podsDeleted = new AtomicInteger();
    final AtomicInteger podsCreated = new AtomicInteger();

    Report report() {
      return new Report(
          released.get(), lost.get(), processesKilled.get(), podsDeleted.get(), podsCreated.get());
    }
  }

  /**
   * Sandboxes whose session ended, whose tenant was disabled or whose lifetime is over are
   * released; returns the live ones that are left.
   */
  private Uni<List<Sandbox>> releaseEnded(List<Sandbox> live, Counts counts) {
    Instant now = clock.instant();
    return repository
        .orphaned()
        .flatMap(
            orphaned ->
                repository
                    .ofDisabledTenants()
                    .map(disabled -> endings(live, orphaned, disabled, now)))
        .flatMap(
            endings ->
                each(
                        endings.values(),
                        ending -> ending.get().invoke(ended -> counts.released.incrementAndGet()))
                    .map(
                        done ->
                            live.stream()
                                .filter(sandbox -> !endings.containsKey(sandbox.getId()))
                                .toList()));
  }

  /** How each sandbox that must end is ended, by id: each for the first reason that applies. */
  private Map<String, Supplier<Uni<Sandbox>>> endings(
      List<Sandbox> live, List<String> orphaned, List<String> disabled, Instant now) {
    Map<String, Supplier<Uni<Sandbox>>> endings = new LinkedHashMap<>();
    orphaned.forEach(id -> endings.put(id, () -> sandboxes.release(id, Sandboxes.SESSION_ENDED)));
    disabled.forEach(id -> endings.putIfAbsent(id, () -> sandboxes.release(id, TENANT_DISABLED)));
    Instant provisioningSince =
        now.minus(config.kubernetes().readyTimeout())
            .minus(config.setupTimeout())
            .minus(PROVISIONING_MARGIN);
    for (Sandbox sandbox : live) {
      if (sandbox.getState() == SandboxState.SANDBOX_STATE_PROVISIONING
          && sandbox.hasCreatedAt()
          && ProtoTime.toInstant(sandbox.getCreatedAt()).isBefore(provisioningSince)) {
        // no provisioning runs this long: the replica making it stopped (its pod and any setup
        // running in it would otherwise stay, counted against the tenant, until its lifetime)
        endings.putIfAbsent(
            sandbox.getId(),
            () ->
                sandboxes.release(
                    sandbox.getId(),
                    "its provisioning never finished: the replica making it may have stopped"));
      }
      if (expired(sandbox, now)) {
        endings.putIfAbsent(
            sandbox.getId(),
            () ->
                sandbox.hasExpiresAt()
                    ? sandboxes.endIfExpired(sandbox)
                    : sandboxes.release(
                        sandbox.getId(),
                        "its lifetime of "
                            + sandbox.getResources().getLifetimeSeconds()
                            + " s ended"));
      }
    }
    return endings;
  }

  /** Whether its lifetime is over: by expires_at, or (records from before it) by its creation. */
  private static boolean expired(Sandbox sandbox, Instant now) {
    if (sandbox.hasExpiresAt()) {
      return !ProtoTime.toInstant(sandbox.getExpiresAt()).isAfter(now);
    }
    long lifetime = sandbox.getResources().getLifetimeSeconds();
    return lifetime > 0
        && Instant.ofEpochSecond(sandbox.getCreatedAt().getSeconds())
            .plusSeconds(lifetime)
            .isBefore(now);
  }

  /** Local records of this replica match the processes it runs. */
  private Uni<Void> reconcileLocal(List<Sandbox> live, Counts counts) {
    List<Sandbox> gone =
        live.stream()
            .filter(
                sandbox ->
                    sandbox.getDriver()
                            != dev.corral.proto.v1.SandboxDriver.SANDBOX_DRIVER_KUBERNETES
                        && sandbox.getHost().equals(local.host())
                        && sandbox.getState() == SandboxState.SANDBOX_STATE_READY
                        && !local.hosts(sandbox.getId()))
            .toList();
    Map<String, Instant> hosted = local.hosted();
    return each(
            gone, sandbox -> markLost(sandbox, "its process on " + local.host() + " ended", counts))
        .flatMap(
            ignored ->
                hosted.isEmpty()
                    ? Uni.createFrom().voidItem()
                    : repository
                        .byIds(List.copyOf(hosted.keySet()))
                        .flatMap(records -> killUnowned(hosted, byId(records), counts)));
  }

  /** Kills local sandboxes whose record ended, or that never got one. */
  private Uni<Void> killUnowned(
      Map<String, Instant> hosted, Map<String, Sandbox> records, Counts counts) {
    Instant unrecordedBefore = clock.instant().minus(RECORDING_GRACE);
    List<String> unowned =
        hosted.entrySet().stream()
            .filter(
                entry -> {
                  Sandbox record = records.get(entry.getKey());
                  return record == null
                      ? entry.getValue().isBefore(unrecordedBefore)
                      : !isLive(record);
                })
            .map(Map.Entry::getKey)
            .toList();
    return each(
        unowned,
        id ->
            local
                .release(id, local.host())
                .invoke(killed -> counts.processesKilled.incrementAndGet()));
  }

  /** Pods of ended or unknown sandboxes go; ready kubernetes records without a pod are lost. */
  private Uni<Void> reconcilePods(List<Sandbox> live, Counts counts) {
    return kubernetes
        .sandboxPods()
        .flatMap(pods -> recordsOf(pods).flatMap(records -> judgePods(pods, records, live, counts)))
        .flatMap(ignored -> kubernetes.reconcilePools())
        .invoke(
            pools -> {
              counts.podsDeleted.addAndGet(pools.podsDeleted());
              counts.podsCreated.addAndGet(pools.podsCreated());
            })
        .replaceWithVoid();
  }

  private Uni<Map<String, Sandbox>> recordsOf(List<KubernetesDriver.SandboxPod> pods) {
    if (pods.isEmpty()) {
      return Uni.createFrom().item(Map.of());
    }
    return repository
        .byIds(pods.stream().map(KubernetesDriver.SandboxPod::sandboxId).toList())
        .map(SandboxReconciler::byId);
  }

  private Uni<Void> judgePods(
      List<KubernetesDriver.SandboxPod> pods,
      Map<String, Sandbox> records,
      List<Sandbox> live,
      Counts counts) {
    Set<String> kept = new HashSet<>();
    List<KubernetesDriver.SandboxPod> unowned =
        pods.stream()
            .filter(
                pod -> {
                  boolean owned = isLive(records.get(pod.sandboxId()));
                  if (owned) {
                    kept.add(pod.name());
                  }
                  return !owned;
                })
            .toList();
    List<Sandbox> podless =
        live.stream()
            .filter(
                sandbox ->
                    sandbox.getDriver()
                            == dev.corral.proto.v1.SandboxDriver.SANDBOX_DRIVER_KUBERNETES
                        && sandbox.getState() == SandboxState.SANDBOX_STATE_READY
                        && !kept.contains(sandbox.getHost()))
            .toList();
    return each(
            unowned,
            pod ->
                kubernetes
                    .delete(pod.name())
                    .invoke(deleted -> counts.podsDeleted.incrementAndGet()))
        .flatMap(
            ignored -> each(podless, sandbox -> markLost(sandbox, "its pod was deleted", counts)));
  }

  private Uni<Void> markLost(Sandbox sandbox, String reason, Counts counts) {
    return repository
        .end(sandbox.getId(), SandboxState.SANDBOX_STATE_LOST, reason)
        .invoke(
            ended -> {
              if (ended.isPresent()) {
                counts.lost.incrementAndGet();
              }
            })
        .replaceWithVoid();
  }

  /** Runs {@code step} for each item, one after another. */
  private static <T> Uni<Void> each(java.util.Collection<T> items, Function<T, Uni<?>> step) {
    return Multi.createFrom()
        .iterable(List.copyOf(items))
        .onItem()
        .transformToUniAndConcatenate(item -> step.apply(item).replaceWith(Boolean.TRUE))
        .collect()
        .asList()
        .replaceWithVoid();
  }

  private static boolean isLive(Sandbox record) {
    return record != null
        && (record.getState() == SandboxState.SANDBOX_STATE_READY
            || record.getState() == SandboxState.SANDBOX_STATE_PROVISIONING);
  }

  private static Map<String, Sandbox> byId(List<Sandbox> sandboxes) {
    Map<String, Sandbox> byId = new HashMap<>();
    sandboxes.forEach(sandbox -> byId.put(sandbox.getId(), sandbox));
    return byId;
  }
}
