package dev.corral.sandbox;

import dev.corral.agent.EnvironmentRepository;
import dev.corral.common.DaemonThreads;
import dev.corral.proto.v1.Environment;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SandboxState;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.jboss.logging.Logger;

/**
 * Converges what runs with what the records say, from whatever state it finds (operator-style), at
 * start and then every {@code corral.sandbox.reconcile-interval}, on its own thread:
 *
 * <ul>
 *   <li>a sandbox whose session ended, or whose lifetime is over, is released;
 *   <li>a local sandbox of this replica that no longer runs is recorded as lost, and a local
 *       process whose record ended (released through another replica) is killed;
 *   <li>with the kubernetes driver: a sandbox pod whose record ended or that no record owns is
 *       deleted, a ready record whose pod is gone is lost, pool pods of an archived environment, of
 *       an older spec or beyond the pool's size are deleted, and pools are refilled.
 * </ul>
 *
 * Replicas reconcile independently: every step is idempotent, and a pool overfilled by two replicas
 * at once is trimmed on the next pass.
 */
@ApplicationScoped
public class SandboxReconciler {

  private static final Logger LOGGER = Logger.getLogger(SandboxReconciler.class);
  private static final Duration STEP = Duration.ofSeconds(60);

  private final SandboxRepository repository;
  private final EnvironmentRepository environments;
  private final Sandboxes sandboxes;
  private final LocalDriver local;
  private final WarmPools pools;
  private final KubernetesClient client;
  private final SandboxConfig config;
  private ScheduledExecutorService timer;

  SandboxReconciler(
      SandboxRepository repository,
      EnvironmentRepository environments,
      Sandboxes sandboxes,
      LocalDriver local,
      WarmPools pools,
      KubernetesClient client,
      SandboxConfig config) {
    this.repository = repository;
    this.environments = environments;
    this.sandboxes = sandboxes;
    this.local = local;
    this.pools = pools;
    this.client = client;
    this.config = config;
  }

  void start(@Observes StartupEvent event) {
    timer =
        Executors.newSingleThreadScheduledExecutor(
            DaemonThreads.named("corral-sandbox-reconciler"));
    long interval = config.reconcileInterval().toMillis();
    timer.scheduleWithFixedDelay(this::reconcileQuietly, 0, interval, TimeUnit.MILLISECONDS);
  }

  void stop(@Observes ShutdownEvent event) {
    if (timer != null) {
      timer.shutdownNow();
    }
  }

  /** What one pass changed. */
  public record Report(
      int released, int lost, int processesKilled, int podsDeleted, int podsCreated) {}

  /** One pass. Blocking: call it off the event loop. */
  public synchronized Report reconcile() {
    Counts counts = new Counts();
    // One read of the live records per pass, taken before any pod is listed, so that a sandbox
    // that becomes ready during the pass is judged on the next one.
    List<Sandbox> live = releaseEnded(repository.live().await().atMost(STEP), counts);
    reconcileLocal(live, counts);
    if (config.kubernetes().enabled()) {
      reconcilePods(live, counts);
    }
    Report report =
        new Report(
            counts.released,
            counts.lost,
            counts.processesKilled,
            counts.podsDeleted,
            counts.podsCreated);
    if (!report.equals(new Report(0, 0, 0, 0, 0))) {
      LOGGER.infof("sandbox reconciler: %s", report);
    }
    return report;
  }

  private void reconcileQuietly() {
    try {
      reconcile();
    } catch (RuntimeException failure) {
      LOGGER.warnf("sandbox reconciler pass failed (retried next pass): %s", failure.getMessage());
    }
  }

  private static final class Counts {
    int released;
    int lost;
    int processesKilled;
    int podsDeleted;
    int podsCreated;
  }

  /**
   * Sandboxes whose session ended or whose lifetime is over are released; returns the live ones
   * that are left.
   */
  private List<Sandbox> releaseEnded(List<Sandbox> live, Counts counts) {
    Set<String> ended = new HashSet<>(repository.orphaned().await().atMost(STEP));
    Instant now = Instant.now();
    for (Sandbox sandbox : live) {
      Instant expires =
          Instant.ofEpochSecond(sandbox.getCreatedAt().getSeconds())
              .plusSeconds(sandbox.getResources().getLifetimeSeconds());
      if (sandbox.getResources().getLifetimeSeconds() > 0 && expires.isBefore(now)) {
        ended.add(sandbox.getId());
      }
    }
    for (String id : ended) {
      sandboxes.release(id).await().atMost(STEP);
      counts.released++;
    }
    return live.stream().filter(sandbox -> !ended.contains(sandbox.getId())).toList();
  }

  /** Local records of this replica match the processes it runs. */
  private void reconcileLocal(List<Sandbox> live, Counts counts) {
    for (Sandbox sandbox : live) {
      if (sandbox.getDriver() != dev.corral.proto.v1.SandboxDriver.SANDBOX_DRIVER_KUBERNETES
          && sandbox.getHost().equals(local.host())
          && sandbox.getState() == SandboxState.SANDBOX_STATE_READY
          && !local.hosts(sandbox.getId())) {
        markLost(sandbox, "its process on " + local.host() + " ended", counts);
      }
    }
    Map<String, Instant> hosted = local.hosted();
    if (hosted.isEmpty()) {
      return;
    }
    Map<String, Sandbox> records =
        byId(repository.byIds(List.copyOf(hosted.keySet())).await().atMost(STEP));
    // A local sandbox is recorded just after it starts: give a missing record time to appear.
    Instant unrecordedBefore = Instant.now().minus(STEP);
    for (Map.Entry<String, Instant> entry : hosted.entrySet()) {
      Sandbox record = records.get(entry.getKey());
      boolean orphan = record == null && entry.getValue().isBefore(unrecordedBefore);
      if (orphan || (record != null && !isLive(record))) {
        local.release(entry.getKey(), local.host()).await().atMost(STEP);
        counts.processesKilled++;
      }
    }
  }

  private void reconcilePods(List<Sandbox> live, Counts counts) {
    String namespace = config.kubernetes().namespace();
    List<Pod> pods =
        client
            .pods()
            .inNamespace(namespace)
            .withLabel(SandboxLabels.MANAGED_BY, SandboxLabels.CORRAL)
            .list()
            .getItems();
    List<Pod> sandboxPods = new ArrayList<>();
    List<Pod> poolPods = new ArrayList<>();
    for (Pod pod : pods) {
      Map<String, String> labels = pod.getMetadata().getLabels();
      if (labels.containsKey(SandboxLabels.SANDBOX)) {
        sandboxPods.add(pod);
      } else if ("warm".equals(labels.get(SandboxLabels.POOL))) {
        poolPods.add(pod);
      }
    }
    reconcileSandboxPods(sandboxPods, live, counts);
    reconcilePools(poolPods, counts);
  }

  /** Pods of ended or unknown sandboxes go; ready kubernetes records without a pod are lost. */
  private void reconcileSandboxPods(List<Pod> sandboxPods, List<Sandbox> live, Counts counts) {
    List<String> ids =
        sandboxPods.stream()
            .map(pod -> pod.getMetadata().getLabels().get(SandboxLabels.SANDBOX))
            .toList();
    Map<String, Sandbox> records =
        ids.isEmpty() ? Map.of() : byId(repository.byIds(ids).await().atMost(STEP));
    Set<String> podNames = new HashSet<>();
    for (Pod pod : sandboxPods) {
      Sandbox record = records.get(pod.getMetadata().getLabels().get(SandboxLabels.SANDBOX));
      if (isLive(record)) {
        podNames.add(pod.getMetadata().getName());
      } else {
        delete(pod);
        counts.podsDeleted++;
      }
    }
    for (Sandbox sandbox : live) {
      if (sandbox.getDriver() == dev.corral.proto.v1.SandboxDriver.SANDBOX_DRIVER_KUBERNETES
          && sandbox.getState() == SandboxState.SANDBOX_STATE_READY
          && !podNames.contains(sandbox.getHost())) {
        markLost(sandbox, "its pod was deleted", counts);
      }
    }
  }

  /** Pool pods match their environment's current spec and pool size; pools are refilled. */
  private void reconcilePools(List<Pod> poolPods, Counts counts) {
    Map<String, Environment> active =
        environments.active().await().atMost(STEP).stream()
            .filter(
                environment ->
                    environment.getDriver()
                        == dev.corral.proto.v1.SandboxDriver.SANDBOX_DRIVER_KUBERNETES)
            .collect(Collectors.toMap(Environment::getId, Function.identity()));
    Map<String, List<Pod>> kept = new HashMap<>();
    for (Pod pod : poolPods) {
      Map<String, String> labels = pod.getMetadata().getLabels();
      Environment environment = active.get(labels.get(SandboxLabels.ENVIRONMENT));
      String phase = pod.getStatus() == null ? "" : pod.getStatus().getPhase();
      boolean current =
          environment != null
              && labels
                  .get(SandboxLabels.SPEC)
                  .equals(SandboxPodFactory.specHash(pools.poolSpec(environment)))
              && !"Failed".equals(phase)
              && !"Succeeded".equals(phase);
      if (current) {
        kept.computeIfAbsent(environment.getId(), id -> new ArrayList<>()).add(pod);
      } else {
        delete(pod);
        counts.podsDeleted++;
      }
    }
    for (Environment environment : active.values()) {
      List<Pod> pool = kept.getOrDefault(environment.getId(), List.of());
      int excess = pool.size() - Math.max(0, environment.getWarmPoolSize());
      if (excess > 0) {
        // Keep the ready ones: drop pods still starting first.
        pool.stream()
            .sorted(
                Comparator.comparing(
                    (Pod pod) ->
                        "true".equals(pod.getMetadata().getLabels().get(SandboxLabels.READY))))
            .limit(excess)
            .forEach(
                pod -> {
                  delete(pod);
                  counts.podsDeleted++;
                });
      } else if (environment.getWarmPoolSize() > 0) {
        counts.podsCreated += pools.fill(environment);
      }
    }
  }

  private void delete(Pod pod) {
    client
        .pods()
        .inNamespace(config.kubernetes().namespace())
        .withName(pod.getMetadata().getName())
        .withGracePeriod(0)
        .delete();
  }

  private void markLost(Sandbox sandbox, String reason, Counts counts) {
    if (repository
        .end(sandbox.getId(), SandboxState.SANDBOX_STATE_LOST, reason)
        .await()
        .atMost(STEP)
        .isPresent()) {
      counts.lost++;
    }
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
