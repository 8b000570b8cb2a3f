package dev.corral.sandbox;

import dev.corral.agent.EnvironmentAdmission;
import dev.corral.common.InvalidArgumentException;
import dev.corral.proto.v1.Environment;
import dev.corral.proto.v1.SandboxDriver;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.sandbox.driver.Limits;
import dev.corral.sandbox.driver.SandboxConfig;
import dev.corral.sandbox.kubernetes.PodPolicy;
import jakarta.enterprise.context.ApplicationScoped;

/** Refuses environments that ask for more than the server's ceilings or its pod policy allow. */
@ApplicationScoped
class EnvironmentPolicy implements EnvironmentAdmission {

  private final Limits limits;
  private final SandboxConfig config;

  EnvironmentPolicy(Limits limits, SandboxConfig config) {
    this.limits = limits;
    this.config = config;
  }

  @Override
  public void check(Environment previous, Environment next) {
    limits.withinCeilings("resources", changed(previous.getResources(), next.getResources()));
    if (next.getDriver() != SandboxDriver.SANDBOX_DRIVER_KUBERNETES) {
      return;
    }
    boolean driverChanged = previous.getDriver() != next.getDriver();
    SandboxConfig.Kubernetes kubernetes = config.kubernetes();
    String image = next.getImage();
    if (!image.isEmpty() && (driverChanged || !image.equals(previous.getImage()))) {
      PodPolicy.imageRefusal(kubernetes, image)
          .ifPresent(
              refusal -> {
                throw new InvalidArgumentException("image", image + " " + refusal);
              });
    }
    String runtimeClass = next.getRuntimeClassName();
    if (!runtimeClass.isEmpty()
        && (driverChanged || !runtimeClass.equals(previous.getRuntimeClassName()))) {
      PodPolicy.runtimeClassRefusal(kubernetes, runtimeClass)
          .ifPresent(
              refusal -> {
                throw new InvalidArgumentException(
                    "runtime_class_name", runtimeClass + " " + refusal);
              });
    }
  }

  /** The limits {@code next} sets to a value {@code previous} did not have; 0 elsewhere. */
  private static SandboxResources changed(SandboxResources previous, SandboxResources next) {
    return SandboxResources.newBuilder()
        .setCpuMillis(next.getCpuMillis() != previous.getCpuMillis() ? next.getCpuMillis() : 0)
        .setMemoryBytes(
            next.getMemoryBytes() != previous.getMemoryBytes() ? next.getMemoryBytes() : 0)
        .setDiskBytes(next.getDiskBytes() != previous.getDiskBytes() ? next.getDiskBytes() : 0)
        .setMaxProcesses(
            next.getMaxProcesses() != previous.getMaxProcesses() ? next.getMaxProcesses() : 0)
        .setCallTimeoutMs(
            next.getCallTimeoutMs() != previous.getCallTimeoutMs() ? next.getCallTimeoutMs() : 0)
        .setLifetimeSeconds(
            next.getLifetimeSeconds() != previous.getLifetimeSeconds()
                ? next.getLifetimeSeconds()
                : 0)
        .build();
  }
}
