package dev.corral.sandbox.driver;

import dev.corral.proto.v1.SandboxResources;
import jakarta.enterprise.context.ApplicationScoped;

/** Fills the limits an environment (or a provision request) leaves unset with the defaults. */
@ApplicationScoped
public class Limits {

  private final SandboxConfig config;

  public Limits(SandboxConfig config) {
    this.config = config;
  }

  /** {@code first}'s limits, then {@code fallback}'s where unset, then the defaults. */
  public SandboxResources resolve(SandboxResources first, SandboxResources fallback) {
    SandboxConfig.Defaults defaults = config.defaults();
    return SandboxResources.newBuilder()
        .setCpuMillis(pick(first.getCpuMillis(), fallback.getCpuMillis(), defaults.cpuMillis()))
        .setMemoryBytes(
            pick(first.getMemoryBytes(), fallback.getMemoryBytes(), defaults.memoryBytes()))
        .setDiskBytes(pick(first.getDiskBytes(), fallback.getDiskBytes(), defaults.diskBytes()))
        .setCallTimeoutMs(
            pick(
                first.getCallTimeoutMs(),
                fallback.getCallTimeoutMs(),
                defaults.callTimeout().toMillis()))
        .setLifetimeSeconds(
            pick(
                first.getLifetimeSeconds(),
                fallback.getLifetimeSeconds(),
                defaults.lifetime().toSeconds()))
        .setMaxProcesses(
            pick(first.getMaxProcesses(), fallback.getMaxProcesses(), defaults.maxProcesses()))
        .build();
  }

  public SandboxResources resolve(SandboxResources resources) {
    return resolve(resources, SandboxResources.getDefaultInstance());
  }

  private static long pick(long first, long second, long fallback) {
    return first != 0 ? first : second != 0 ? second : fallback;
  }

  private static int pick(int first, int second, int fallback) {
    return first != 0 ? first : second != 0 ? second : fallback;
  }
}
