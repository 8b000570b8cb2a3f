package dev.corral.sandbox.kubernetes;

import dev.corral.proto.v1.Environment;
import dev.corral.proto.v1.SandboxResources;
import io.fabric8.kubernetes.api.model.ContainerBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.Quantity;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;
import java.util.TreeMap;

/**
 * The pod of a sandbox, derived from its environment and limits by a pure function: the same inputs
 * always give the same pod. Hardened by default: non-root, seccomp RuntimeDefault, all capabilities
 * dropped, no privilege escalation, no service-account token, no service links (their environment
 * variables), a read-only root filesystem with emptyDir /workspace and /tmp, resource requests and
 * limits, and the optional RuntimeClass. No secret and no per-session data goes into a pod, so a
 * warm pod can serve any session.
 */
public final class SandboxPodFactory {

  private SandboxPodFactory() {}

  /** The inputs of {@link #desired}. */
  /**
   * @param image the image, allowed by the operator
   * @param pullAlways the image is pulled at each start, with the pod's own pull rights, rather
   *     than taken from the node's cache, which may hold another tenant's private image
   * @param runtimeClassName the pod's RuntimeClass (the environment's or the operator's default);
   *     empty: the cluster's default
   */
  public record PodSpec(
      String namespace,
      String name,
      Environment environment,
      SandboxResources resources,
      String image,
      boolean pullAlways,
      String runtimeClassName,
      long runAsUser) {}

  /** A warm pod of the environment's pool (no sandbox yet). */
  public static Pod warm(PodSpec spec) {
    return new PodBuilder(desired(spec))
        .editMetadata()
        .addToLabels(SandboxLabels.POOL, "warm")
        .endMetadata()
        .build();
  }

  /** The pod of sandbox {@code sandboxId}, serving {@code sessionId} (may be empty). */
  public static Pod forSandbox(PodSpec spec, String sandboxId, String sessionId) {
    PodBuilder pod = new PodBuilder(desired(spec));
    pod.editMetadata().addToLabels(SandboxLabels.SANDBOX, sandboxId).endMetadata();
    if (!sessionId.isEmpty()) {
      pod.editMetadata().addToLabels(SandboxLabels.SESSION, sessionId).endMetadata();
    }
    return pod.build();
  }

  /** The pod every sandbox of {@code spec} starts as. */
  public static Pod desired(PodSpec spec) {
    SandboxResources resources = spec.resources();
    // Sorted, so that the same inputs always serialize the same way.
    Map<String, Quantity> limits = new TreeMap<>();
    limits.put("cpu", new Quantity(resources.getCpuMillis() + "m"));
    limits.put("memory", new Quantity(Long.toString(resources.getMemoryBytes())));
    limits.put("ephemeral-storage", new Quantity(Long.toString(2 * resources.getDiskBytes())));
    PodBuilder pod =
        new PodBuilder()
            .withNewMetadata()
            .withName(spec.name())
            .withNamespace(spec.namespace())
            .withLabels(SandboxLabels.common(spec.environment().getId(), specHash(spec)))
            .endMetadata()
            .withNewSpec()
            .withRestartPolicy("Never")
            .withAutomountServiceAccountToken(false)
            .withEnableServiceLinks(false)
            .withTerminationGracePeriodSeconds(2L)
            .withNewSecurityContext()
            .withRunAsNonRoot(true)
            .withRunAsUser(spec.runAsUser())
            .withRunAsGroup(spec.runAsUser())
            .withFsGroup(spec.runAsUser())
            .withNewSeccompProfile()
            .withType("RuntimeDefault")
            .endSeccompProfile()
            .endSecurityContext()
            .addToContainers(
                new ContainerBuilder()
                    .withName("sandbox")
                    .withImage(spec.image())
                    .withImagePullPolicy(spec.pullAlways() ? "Always" : "IfNotPresent")
                    .withCommand(
                        "/bin/sh",
                        "-c",
                        "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done")
                    .withWorkingDir("/workspace")
                    .addNewEnv()
                    .withName("HOME")
                    .withValue("/workspace")
                    .endEnv()
                    .withNewResources()
                    .withRequests(limits)
                    .withLimits(limits)
                    .endResources()
                    .withNewSecurityContext()
                    .withAllowPrivilegeEscalation(false)
                    .withReadOnlyRootFilesystem(true)
                    .withPrivileged(false)
                    .withNewCapabilities()
                    .withDrop("ALL")
                    .endCapabilities()
                    .endSecurityContext()
                    .addNewVolumeMount()
                    .withName("workspace")
                    .withMountPath("/workspace")
                    .endVolumeMount()
                    .addNewVolumeMount()
                    .withName("tmp")
                    .withMountPath("/tmp")
                    .endVolumeMount()
                    .build())
            .addNewVolume()
            .withName("workspace")
            .withNewEmptyDir()
            // in memory, as a local sandbox's: a size the kernel enforces at once, where a disk
            // emptyDir's sizeLimit is only checked by the kubelet's eviction, every ten seconds or
            // so, after one fallocate has filled the node's disk for every pod on it
            .withMedium("Memory")
            .withSizeLimit(new Quantity(Long.toString(resources.getDiskBytes())))
            .endEmptyDir()
            .endVolume()
            .addNewVolume()
            .withName("tmp")
            .withNewEmptyDir()
            // in memory, as a local sandbox's: a size the kernel enforces at once, where a disk
            // emptyDir's sizeLimit is only checked by the kubelet's eviction, every ten seconds or
            // so, after one fallocate has filled the node's disk for every pod on it
            .withMedium("Memory")
            .withSizeLimit(new Quantity(Long.toString(resources.getDiskBytes())))
            .endEmptyDir()
            .endVolume()
            .endSpec();
    if (!spec.runtimeClassName().isEmpty()) {
      pod.editSpec().withRuntimeClassName(spec.runtimeClassName()).endSpec();
    }
    return pod.build();
  }

  /** A short hash of what the pod is made from (not its name or the sandbox it serves). */
  static String specHash(PodSpec spec) {
    try {
      MessageDigest digest = MessageDigest.getInstance("SHA-256");
      digest.update(spec.image().getBytes(StandardCharsets.UTF_8));
      digest.update(spec.resources().toByteArray());
      digest.update(spec.runtimeClassName().getBytes(StandardCharsets.UTF_8));
      digest.update((byte) (spec.pullAlways() ? 1 : 0));
      spec.environment()
          .getSetupCommandsList()
          .forEach(
              command -> {
                digest.update(command.getBytes(StandardCharsets.UTF_8));
                digest.update((byte) 0);
              });
      digest.update(Long.toString(spec.runAsUser()).getBytes(StandardCharsets.UTF_8));
      return HexFormat.of().formatHex(digest.digest(), 0, 8);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
