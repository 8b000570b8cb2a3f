package dev.corral.sandbox;

import dev.corral.proto.v1.Environment;
import dev.corral.proto.v1.SandboxResources;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import jakarta.enterprise.context.ApplicationScoped;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.jboss.logging.Logger;

/**
 * Ready pods kept per environment so that provisioning claims one instead of waiting for a new pod.
 * A pool pod has run its environment's setup commands before it may be claimed; claiming relabels
 * it with the sandbox (optimistically, on its resource version, so two replicas never claim one
 * pod). Blocking: called on the driver's threads.
 */
@ApplicationScoped
public class WarmPools {

  private static final Logger LOGGER = Logger.getLogger(WarmPools.class);
  private static final SecureRandom RANDOM = new SecureRandom();

  private final KubernetesClient client;
  private final SandboxConfig config;
  private final Limits limits;
  private final KubernetesDriver driver;

  WarmPools(KubernetesClient client, SandboxConfig config, Limits limits, KubernetesDriver driver) {
    this.client = client;
    this.config = config;
    this.limits = limits;
    this.driver = driver;
  }

  SandboxPodFactory.PodSpec podSpec(
      Environment environment, SandboxResources resources, String name) {
    String image =
        environment.getImage().isEmpty()
            ? config.kubernetes().defaultImage()
            : environment.getImage();
    return new SandboxPodFactory.PodSpec(
        config.kubernetes().namespace(),
        name,
        environment,
        resources,
        image,
        config.kubernetes().runAsUser());
  }

  /** The pool's pod spec: the environment with its own limits (no per-sandbox override). */
  SandboxPodFactory.PodSpec poolSpec(Environment environment) {
    return podSpec(
        environment, limits.resolve(environment.getResources()), "corral-pool-" + randomSuffix());
  }

  /** Claims a ready pool pod for {@code spec}, if the pool has one made from the same spec. */
  Optional<String> claim(SandboxDriver.SandboxSpec spec) {
    if (spec.environment().getWarmPoolSize() <= 0) {
      return Optional.empty();
    }
    String hash =
        SandboxPodFactory.specHash(podSpec(spec.environment(), spec.resources(), "claim"));
    List<Pod> pool = poolPods(spec.environment().getId(), hash);
    for (Pod pod : pool) {
      if ("true".equals(pod.getMetadata().getLabels().get(SandboxLabels.READY))
          && KubernetesDriver.running(pod)
          && claim(pod, spec)) {
        return Optional.of(pod.getMetadata().getName());
      }
    }
    return Optional.empty();
  }

  private boolean claim(Pod pod, SandboxDriver.SandboxSpec spec) {
    PodBuilder claimed = new PodBuilder(pod);
    claimed
        .editMetadata()
        .removeFromLabels(SandboxLabels.POOL)
        .addToLabels(SandboxLabels.SANDBOX, spec.sandboxId())
        .endMetadata();
    if (!spec.sessionId().isEmpty()) {
      claimed.editMetadata().addToLabels(SandboxLabels.SESSION, spec.sessionId()).endMetadata();
    }
    try {
      client
          .pods()
          .inNamespace(config.kubernetes().namespace())
          .resource(claimed.build())
          .lockResourceVersion(pod.getMetadata().getResourceVersion())
          .update();
      return true;
    } catch (KubernetesClientException conflict) {
      LOGGER.debugf(
          "pool pod %s was claimed elsewhere: %s",
          pod.getMetadata().getName(), conflict.getMessage());
      return false;
    }
  }

  /**
   * Brings one environment's pool to its size: creates the missing pods, waits for the ones still
   * starting, runs the environment's setup commands in them and marks them ready to claim. A pod
   * that fails to start or to set up is deleted (the next pass replaces it). Returns how many pods
   * it created.
   */
  int fill(Environment environment) {
    SandboxPodFactory.PodSpec spec = poolSpec(environment);
    String hash = SandboxPodFactory.specHash(spec);
    List<String> unready = new java.util.ArrayList<>();
    List<Pod> pool = poolPods(environment.getId(), hash);
    for (Pod pod : pool) {
      if (!"true".equals(pod.getMetadata().getLabels().get(SandboxLabels.READY))) {
        unready.add(pod.getMetadata().getName());
      }
    }
    int created = 0;
    for (int missing = environment.getWarmPoolSize() - pool.size(); missing > 0; missing--) {
      Pod pod = SandboxPodFactory.warm(poolSpec(environment));
      client.pods().inNamespace(config.kubernetes().namespace()).resource(pod).create();
      unready.add(pod.getMetadata().getName());
      created++;
    }
    // The pods start together; waiting for each in turn costs about one start.
    for (String name : unready) {
      prepare(name, environment);
    }
    return created;
  }

  private void prepare(String name, Environment environment) {
    try {
      driver.awaitRunning(name, config.kubernetes().readyTimeout());
      driver.setUp(
          name,
          new SandboxDriver.SandboxSpec(
              "pool:" + name, "", environment, limits.resolve(environment.getResources())));
      client
          .pods()
          .inNamespace(config.kubernetes().namespace())
          .withName(name)
          .edit(
              current ->
                  new PodBuilder(current)
                      .editMetadata()
                      .addToLabels(SandboxLabels.READY, "true")
                      .endMetadata()
                      .build());
    } catch (RuntimeException failure) {
      LOGGER.warnf(
          "pool pod %s of %s failed to start or set up and is removed: %s",
          name, environment.getId(), failure.getMessage());
      client
          .pods()
          .inNamespace(config.kubernetes().namespace())
          .withName(name)
          .withGracePeriod(0)
          .delete();
    }
  }

  List<Pod> poolPods(String environmentId, String hash) {
    return client
        .pods()
        .inNamespace(config.kubernetes().namespace())
        .withLabels(
            Map.of(
                SandboxLabels.MANAGED_BY,
                SandboxLabels.CORRAL,
                SandboxLabels.ENVIRONMENT,
                environmentId,
                SandboxLabels.POOL,
                "warm",
                SandboxLabels.SPEC,
                hash))
        .list()
        .getItems();
  }

  private static String randomSuffix() {
    byte[] bytes = new byte[5];
    RANDOM.nextBytes(bytes);
    return HexFormat.of().formatHex(bytes);
  }
}
