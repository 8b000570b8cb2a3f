package dev.corral.sandbox.kubernetes;

import dev.corral.sandbox.driver.SandboxConfig;
import java.util.List;
import java.util.Optional;

/**
 * The operator's image and RuntimeClass policy for sandbox pods ({@code
 * corral.sandbox.kubernetes.allowed-image-prefixes}, {@code runtime-class-name}, {@code
 * allowed-runtime-class-names}). Each check answers why a value is refused, or nothing.
 */
public final class PodPolicy {

  private PodPolicy() {}

  /** Why an environment may not name {@code image} (a non-default image), if it may not. */
  public static Optional<String> imageRefusal(SandboxConfig.Kubernetes kubernetes, String image) {
    List<String> prefixes = kubernetes.allowedImagePrefixes().orElse(List.of());
    if (prefixes.isEmpty() || prefixes.stream().anyMatch(image::startsWith)) {
      return Optional.empty();
    }
    return Optional.of("is not allowed here; images must start with one of " + prefixes);
  }

  /**
   * Why a pod may not run under {@code runtimeClass} ("": the cluster's default), if it may not.
   */
  public static Optional<String> runtimeClassRefusal(
      SandboxConfig.Kubernetes kubernetes, String runtimeClass) {
    List<String> allowed =
        kubernetes
            .allowedRuntimeClassNames()
            .orElse(kubernetes.runtimeClassName().map(List::of).orElse(List.of()));
    if (allowed.isEmpty() || allowed.contains(runtimeClass)) {
      return Optional.empty();
    }
    return Optional.of("is not allowed here; allowed: " + allowed);
  }
}
