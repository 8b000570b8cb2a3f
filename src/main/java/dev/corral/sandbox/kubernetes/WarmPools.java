package dev.corral.sandbox.kubernetes;

import dev.corral.agent.EnvironmentRepository;
import dev.corral.common.FailedPreconditionException;
import dev.corral.proto.v1.Environment;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.sandbox.driver.Limits;
import dev.corral.sandbox.driver.SandboxConfig;
import dev.corral.sandbox.driver.SandboxDriver;
import dev.corral.sandbox.driver.SandboxSetup;
import io.fabric8.kubernetes.api.model.Pod;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.jboss.logging.Logger;

/**
 * Ready pods kept per environment so that provisioning claims one instead of waiting for a new pod.
 * A pool pod has run its environment's setup commands before it may be claimed; claiming relabels
 * it with the sandbox (optimistically, on its resource version, so two replicas never claim one
 * pod).
 */
@ApplicationScoped
public class WarmPools {

  private static final Logger LOGGER = Logger.getLogger(WarmPools.class);
  private static final SecureRandom RANDOM = new SecureRandom();

  private final KubernetesGateway gateway;
  private final PodExec exec;
  private final EnvironmentRepository environments;
  private final SandboxConfig config;
  private final Limits limits;

  private final io.micrometer.core.instrument.MeterRegistry metrics;

  private final String replicaId;

  WarmPools(
      KubernetesGateway gateway,
      PodExec exec,
      EnvironmentRepository environments,
      SandboxConfig config,
      Limits limits,
      io.micrometer.core.instrument.MeterRegistry metrics,
      dev.corral.common.Replica replica) {
    this.metrics = metrics;
    this.replicaId = replica.id();
    this.gateway = gateway;
    this.exec = exec;
    this.environments = environments;
    this.config = config;
    this.limits = limits;
  }

  /** What one pass over the pools changed. */
  public record Report(int podsDeleted, int podsCreated) {

    Report plus(Report other) {
      return new Report(podsDeleted + other.podsDeleted, podsCreated + other.podsCreated);
    }
  }

  /**
   * The pod spec of {@code environment}, under the operator's image and RuntimeClass policy.
   *
   * @throws FailedPreconditionException if the policy does not allow the environment's image or
   *     RuntimeClass
   */
  SandboxPodFactory.PodSpec podSpec(
      Environment environment, SandboxResources resources, String name) {
    SandboxConfig.Kubernetes kubernetes = config.kubernetes();
    String image =
        environment.getImage().isEmpty() ? kubernetes.defaultImage() : environment.getImage();
    if (!environment.getImage().isEmpty()) {
      PodPolicy.imageRefusal(kubernetes, image)
          .ifPresent(
              refusal -> {
                throw new FailedPreconditionException(
                    "environment " + environment.getId() + ": its image " + image + " " + refusal);
              });
    }
    String runtimeClass =
        environment.getRuntimeClassName().isEmpty()
            ? kubernetes.runtimeClassName().orElse("")
            : environment.getRuntimeClassName();
    PodPolicy.runtimeClassRefusal(kubernetes, runtimeClass)
        .ifPresent(
            refusal -> {
              throw new FailedPreconditionException(
                  "environment "
                      + environment.getId()
                      + ": its runtime_class_name "
                      + (runtimeClass.isEmpty() ? "(the cluster's default)" : runtimeClass)
                      + " "
                      + refusal);
            });
    return new SandboxPodFactory.PodSpec(
        kubernetes.namespace(),
        name,
        environment,
        resources,
        image,
        !image.equals(kubernetes.defaultImage()),
        runtimeClass,
        kubernetes.runAsUser());
  }

  /** Whether the operator's policy allows pods of {@code environment}. */
  private boolean allowed(Environment environment) {
    try {
      podSpec(environment, environment.getResources(), "check");
      return true;
    } catch (FailedPreconditionException refused) {
      return false;
    }
  }

  /** The pool's pod spec: the environment with its own limits (no per-sandbox override). */
  SandboxPodFactory.PodSpec poolSpec(Environment environment) {
    return podSpec(
        environment, limits.resolve(environment.getResources()), "corral-pool-" + randomSuffix());
  }

  /** Claims a ready pool pod for {@code spec}, if the pool has one made from the same spec. */
  Uni<Optional<String>> claim(SandboxDriver.SandboxSpec spec) {
    if (spec.environment().getWarmPoolSize() <= 0) {
      return Uni.createFrom().item(Optional.empty());
    }
    String hash =
        SandboxPodFactory.specHash(podSpec(spec.environment(), spec.resources(), "claim"));
    return poolPods(spec.environment().getId(), hash)
        .flatMap(pool -> claimFirst(readyOnly(pool), spec))
        .invoke(
            claimed ->
                metrics
                    .counter(
                        "corral.sandbox.warm_claims",
                        "driver",
                        "kubernetes",
                        "outcome",
                        claimed.isPresent() ? "hit" : "miss")
                    .increment());
  }

  private static List<Pod> readyOnly(List<Pod> pool) {
    return pool.stream()
        .filter(pod -> "true".equals(pod.getMetadata().getLabels().get(SandboxLabels.READY)))
        .filter(KubernetesGateway::running)
        .toList();
  }

  /** Tries the pods in turn until one is claimed. */
  private Uni<Optional<String>> claimFirst(List<Pod> candidates, SandboxDriver.SandboxSpec spec) {
    if (candidates.isEmpty()) {
      return Uni.createFrom().item(Optional.empty());
    }
    Pod pod = candidates.get(0);
    return gateway
        .update(pod, claimed -> relabel(claimed, spec))
        .flatMap(
            won ->
                won
                    ? Uni.createFrom().item(Optional.of(pod.getMetadata().getName()))
                    : claimFirst(candidates.subList(1, candidates.size()), spec));
  }

  private static io.fabric8.kubernetes.api.model.PodBuilder relabel(
      io.fabric8.kubernetes.api.model.PodBuilder pod, SandboxDriver.SandboxSpec spec) {
    pod.editMetadata()
        .removeFromLabels(SandboxLabels.POOL)
        .addToLabels(SandboxLabels.SANDBOX, spec.sandboxId())
        .endMetadata();
    if (!spec.sessionId().isEmpty()) {
      pod.editMetadata().addToLabels(SandboxLabels.SESSION, spec.sessionId()).endMetadata();
    }
    return pod;
  }

  /**
   * Pool pods match their environment's current spec and pool size, and pools are refilled: pods of
   * an archived environment, of an older spec, ended ones and those beyond the size are deleted
   * (pods still starting first).
   */
  Uni<Report> reconcile() {
    return Uni.combine()
        .all()
        .unis(
            activeKubernetesEnvironments(),
            gateway.list(Map.of(SandboxLabels.POOL, "warm")),
            gateway.list(Map.of(SandboxLabels.POOL, RETIRED)))
        .asTuple()
        .flatMap(
            found ->
                reconcile(found.getItem1(), found.getItem2())
                    .flatMap(
                        report ->
                            deleteRetired(found.getItem3())
                                .map(deleted -> report.plus(new Report(deleted, 0)))));
  }

  /** {@code step} of each of {@code items}, one after the other; their outcomes in order. */
  private static <T, R> Uni<List<R>> eachInTurn(
      List<T> items, java.util.function.Function<T, Uni<R>> step) {
    return Multi.createFrom()
        .iterable(items)
        .onItem()
        .<R>transformToUniAndConcatenate(item -> step.apply(item))
        .collect()
        .asList();
  }

  /** The pool label's value on a pool pod that left its pool to be deleted. */
  static final String RETIRED = "retired";

  /**
   * Deletes retired pool pods, read at the start of the pass: those whose deletion failed (or whose
   * replica stopped) after they left their pool.
   */
  private Uni<Integer> deleteRetired(List<Pod> retired) {
    return eachInTurn(
            retired,
            pod ->
                gateway
                    .delete(pod.getMetadata().getName())
                    .replaceWith(1)
                    .onFailure()
                    .recoverWithItem(0))
        .map(deleted -> deleted.stream().mapToInt(Integer::intValue).sum());
  }

  private Uni<List<EnvironmentRepository.Owned>> activeKubernetesEnvironments() {
    return environments
        .active()
        .map(
            active ->
                active.stream()
                    .filter(
                        owned ->
                            owned.environment().getDriver()
                                == dev.corral.proto.v1.SandboxDriver.SANDBOX_DRIVER_KUBERNETES)
                    .toList());
  }

  /**
   * How many warm pods each environment gets: its {@code warm_pool_size}, but a tenant's pools
   * together hold at most {@code perTenant} pods, given to its oldest environments first. Without
   * that, a tenant could ask for a hundred pods per environment in as many environments as it
   * likes, and the cluster would run them all for nobody.
   */
  static Map<String, Integer> poolSizes(List<EnvironmentRepository.Owned> active, int perTenant) {
    Map<String, Integer> left = new HashMap<>();
    Map<String, Integer> sizes = new LinkedHashMap<>();
    for (EnvironmentRepository.Owned owned : active) {
      int room = left.getOrDefault(owned.tenantId(), Math.max(0, perTenant));
      int size = Math.min(room, Math.max(0, owned.environment().getWarmPoolSize()));
      left.put(owned.tenantId(), room - size);
      sizes.put(owned.environment().getId(), size);
    }
    return sizes;
  }

  private Uni<Report> reconcile(List<EnvironmentRepository.Owned> owned, List<Pod> poolPods) {
    // Pools of environments the operator's policy refuses are emptied, not filled, and take no
    // share of their tenant's warm pods.
    List<EnvironmentRepository.Owned> allowed =
        owned.stream().filter(each -> allowed(each.environment())).toList();
    Map<String, Environment> active = new LinkedHashMap<>();
    allowed.forEach(each -> active.put(each.environment().getId(), each.environment()));
    Map<String, Integer> sizes = poolSizes(allowed, config.maxLivePerTenant());
    List<Pod> stale = new ArrayList<>();
    Map<String, List<Pod>> kept = new HashMap<>();
    for (Pod pod : poolPods) {
      Map<String, String> labels = pod.getMetadata().getLabels();
      if (!SandboxLabels.CORRAL.equals(labels.get(SandboxLabels.MANAGED_BY))) {
        continue;
      }
      Environment environment = active.get(labels.get(SandboxLabels.ENVIRONMENT));
      if (environment != null && current(pod, environment)) {
        kept.computeIfAbsent(environment.getId(), id -> new ArrayList<>()).add(pod);
      } else {
        stale.add(pod);
      }
    }
    List<Uni<Report>> steps = new ArrayList<>();
    steps.add(deleteAll(stale));
    for (Environment environment : active.values()) {
      List<Pod> pool = kept.getOrDefault(environment.getId(), List.of());
      int size = sizes.get(environment.getId());
      int excess = pool.size() - size;
      if (excess > 0) {
        steps.add(deleteAll(startingFirst(pool).subList(0, excess)));
      } else if (size > 0) {
        steps.add(fill(environment, size, pool));
      }
    }
    return eachInTurn(steps, step -> step)
        .map(reports -> reports.stream().reduce(new Report(0, 0), Report::plus));
  }

  private boolean current(Pod pod, Environment environment) {
    String phase = pod.getStatus() == null ? "" : pod.getStatus().getPhase();
    return pod.getMetadata()
            .getLabels()
            .get(SandboxLabels.SPEC)
            .equals(SandboxPodFactory.specHash(poolSpec(environment)))
        && !"Failed".equals(phase)
        && !"Succeeded".equals(phase);
  }

  /** Pods still starting come before ready ones. */
  private static List<Pod> startingFirst(List<Pod> pool) {
    return pool.stream()
        .sorted(
            Comparator.comparing(
                (Pod pod) -> "true".equals(pod.getMetadata().getLabels().get(SandboxLabels.READY))))
        .toList();
  }

  private Uni<Report> deleteAll(List<Pod> pods) {
    return eachInTurn(pods, this::retire)
        .map(
            retired -> new Report((int) retired.stream().filter(Boolean::booleanValue).count(), 0));
  }

  /**
   * Deletes a pool pod as it was read, unless it changed since: it leaves the pool first, marked
   * {@link #RETIRED} (on its resource version, as a claim relabels it), so that a pod a provision
   * claimed meanwhile is never deleted under its session, and a retired pod whose deletion fails is
   * deleted at a later pass. False if it changed, or is gone; the next pass looks again.
   */
  private Uni<Boolean> retire(Pod pod) {
    return gateway
        .update(
            pod,
            builder ->
                builder.editMetadata().addToLabels(SandboxLabels.POOL, RETIRED).endMetadata())
        .flatMap(
            unpooled ->
                unpooled
                    ? gateway.delete(pod.getMetadata().getName()).replaceWith(Boolean.TRUE)
                    : Uni.createFrom().item(Boolean.FALSE));
  }

  /** As {@link #retire(Pod)}, for a pool pod known by name (read now). */
  private Uni<Void> retire(String name) {
    return gateway
        .get(name)
        .flatMap(
            pod ->
                pod.isPresent()
                        && "warm"
                            .equals(pod.get().getMetadata().getLabels().get(SandboxLabels.POOL))
                    ? retire(pod.get()).replaceWithVoid()
                    : Uni.createFrom().voidItem());
  }

  /**
   * Brings one environment's pool to {@code size}: creates the missing pods, and (apart from the
   * pass) waits for the ones still starting, runs the environment's setup commands in them and
   * marks them ready to claim. A pod that fails to start or to set up is deleted (the next pass
   * replaces it).
   */
  private Uni<Report> fill(Environment environment, int size, List<Pod> pool) {
    try {
      limits.resolve(
          "resources",
          dev.corral.proto.v1.SandboxResources.getDefaultInstance(),
          environment.getResources());
    } catch (dev.corral.common.FailedPreconditionException beyond) {
      // no sandbox of it could be provisioned either
      LOGGER.warnf(
          "environment %s gets no warm pool: %s", environment.getId(), beyond.getMessage());
      return Uni.createFrom().item(new Report(0, 0));
    }
    List<String> mine = new ArrayList<>();
    List<Pod> unclaimed = new ArrayList<>();
    List<Pod> abandoned = new ArrayList<>();
    java.time.Instant now = java.time.Instant.now();
    java.time.Duration silence = config.reconcileInterval().multipliedBy(SILENT_PASSES);
    java.time.Instant abandonedBefore =
        now.minus(silence.compareTo(LEAST_SILENCE) > 0 ? silence : LEAST_SILENCE);
    for (Pod pod : pool) {
      switch (preparation(pod, replicaId, abandonedBefore)) {
        case MINE -> mine.add(pod.getMetadata().getName());
        case ABANDONED -> abandoned.add(pod);
        case UNCLAIMED -> unclaimed.add(pod);
        case READY, THEIRS -> {}
      }
    }
    // this replica is still at work on its own (queued ones too): the others hear of it
    List<String> seen = List.copyOf(mine);
    List<Pod> missing = new ArrayList<>();
    for (int i = pool.size(); i < size; i++) {
      missing.add(
          new io.fabric8.kubernetes.api.model.PodBuilder(
                  SandboxPodFactory.warm(poolSpec(environment)))
              .editMetadata()
              .addToAnnotations(SandboxLabels.PREPARER, replicaId)
              .addToAnnotations(SandboxLabels.PREPARER_SEEN, now.toString())
              .endMetadata()
              .build());
    }
    missing.forEach(pod -> mine.add(pod.getMetadata().getName()));
    // The pods start together; waiting for each in turn costs about one start.
    return eachInTurn(
            seen,
            name ->
                gateway
                    .annotate(name, SandboxLabels.PREPARER_SEEN, now.toString())
                    .onFailure()
                    .recoverWithNull())
        .flatMap(ignored -> eachInTurn(missing, gateway::create))
        .flatMap(
            created ->
                eachInTurn(unclaimed, this::claimToPrepare)
                    .map(
                        claimed -> {
                          claimed.stream().flatMap(Optional::stream).forEach(mine::add);
                          mine.forEach(name -> prepareApart(name, environment));
                          return created.size();
                        }))
        .flatMap(
            created ->
                deleteAll(abandoned).map(retired -> new Report(retired.podsDeleted(), created)));
  }

  /**
   * Reconciler passes after which a replica not heard of for an unready pool pod it prepares is
   * taken to have stopped (and at least {@link #LEAST_SILENCE}).
   */
  static final int SILENT_PASSES = 5;

  static final java.time.Duration LEAST_SILENCE = java.time.Duration.ofMinutes(2);

  /** Where a pool pod is in its preparation, seen from one replica. */
  enum Preparation {
    /** Set up: it may be claimed. */
    READY,
    /** This replica prepares it. */
    MINE,
    /** Another replica prepares it. */
    THEIRS,
    /** Unready, and its preparer not heard of for a while: it stopped. */
    ABANDONED,
    /** No replica prepares it (a replica of an older version made it). */
    UNCLAIMED
  }

  static Preparation preparation(Pod pod, String replicaId, java.time.Instant abandonedBefore) {
    if ("true".equals(pod.getMetadata().getLabels().get(SandboxLabels.READY))) {
      return Preparation.READY;
    }
    Map<String, String> annotations = pod.getMetadata().getAnnotations();
    String preparer = annotations == null ? null : annotations.get(SandboxLabels.PREPARER);
    if (replicaId.equals(preparer)) {
      return Preparation.MINE;
    }
    String seen = annotations == null ? null : annotations.get(SandboxLabels.PREPARER_SEEN);
    if (KubernetesGateway.before(
        seen != null ? seen : pod.getMetadata().getCreationTimestamp(), abandonedBefore)) {
      return Preparation.ABANDONED;
    }
    return preparer == null ? Preparation.UNCLAIMED : Preparation.THEIRS;
  }

  /**
   * Takes an unready pool pod no replica prepares (one a replica of an older version left) for this
   * one, on its resource version: the name if this replica won it.
   */
  private Uni<Optional<String>> claimToPrepare(Pod pod) {
    return gateway
        .update(
            pod,
            builder ->
                builder
                    .editMetadata()
                    .addToAnnotations(SandboxLabels.PREPARER, replicaId)
                    .addToAnnotations(
                        SandboxLabels.PREPARER_SEEN, java.time.Instant.now().toString())
                    .endMetadata())
        .map(won -> won ? Optional.of(pod.getMetadata().getName()) : Optional.<String>empty());
  }

  /** Pool pods one replica prepares at once. */
  static final int MAX_PREPARING = 8;

  /** Pool pods this replica is preparing now, by name. */
  private final java.util.Set<String> preparing =
      java.util.concurrent.ConcurrentHashMap.newKeySet();

  /**
   * Prepares a pool pod apart from the pass, unless it is being prepared already: a pod's start and
   * setup may take minutes (an image that never pulls, a long install), and the pass that waited
   * for each in turn held up every tenant's reconciliation (orphans, lost pods, other pools).
   */
  private void prepareApart(String name, Environment environment) {
    // a few at once: each polls the API server until its pod runs (the rest wait for a pass)
    if (preparing.size() >= MAX_PREPARING || !preparing.add(name)) {
      return;
    }
    prepare(name, environment)
        .onTermination()
        .invoke(() -> preparing.remove(name))
        .subscribe()
        .with(ready -> {}, failure -> {});
  }

  private Uni<Void> prepare(String name, Environment environment) {
    SandboxDriver.SandboxSpec spec =
        new SandboxDriver.SandboxSpec(
            "pool:" + name, "", environment, limits.resolve(environment.getResources()));
    return gateway
        .awaitRunning(name, config.kubernetes().readyTimeout())
        .flatMap(
            running ->
                SandboxSetup.run(
                    spec,
                    config.setupTimeout(),
                    command -> exec.run(spec.sandboxId(), name, command)))
        .flatMap(setUp -> gateway.label(name, SandboxLabels.READY, "true"))
        .onFailure()
        .recoverWithUni(
            failure -> {
              LOGGER.warnf(
                  "pool pod %s of %s failed to start or set up and is removed: %s",
                  name, environment.getId(), failure.getMessage());
              // unless a provision claimed it meanwhile (its ready label may have been set by a
              // call whose answer was lost)
              return retire(name).onFailure().recoverWithNull();
            });
  }

  private Uni<List<Pod>> poolPods(String environmentId, String hash) {
    return gateway.list(
        Map.of(
            SandboxLabels.MANAGED_BY,
            SandboxLabels.CORRAL,
            SandboxLabels.ENVIRONMENT,
            environmentId,
            SandboxLabels.POOL,
            "warm",
            SandboxLabels.SPEC,
            hash));
  }

  private static String randomSuffix() {
    byte[] bytes = new byte[5];
    RANDOM.nextBytes(bytes);
    return HexFormat.of().formatHex(bytes);
  }
}
