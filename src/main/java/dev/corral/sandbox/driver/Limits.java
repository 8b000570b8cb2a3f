package dev.corral.sandbox.driver;

import dev.corral.common.FailedPreconditionException;
import dev.corral.common.InvalidArgumentException;
import dev.corral.proto.v1.SandboxResources;
import jakarta.enterprise.context.ApplicationScoped;

/** Fills the limits an environment (or a provision request) leaves unset with the defaults. */
@ApplicationScoped
public class Limits {

  private final SandboxConfig config;

  public Limits(SandboxConfig config) {
    this.config = config;
  }

  /**
   * {@code first}'s limits, then {@code fallback}'s where unset, then the defaults.
   *
   * @throws InvalidArgumentException naming {@code field} if {@code first} asks for more than the
   *     server's ceilings
   * @throws FailedPreconditionException if {@code fallback} (an environment) does
   */
  public SandboxResources resolve(String field, SandboxResources first, SandboxResources fallback) {
    SandboxResources resolved = resolve(first, fallback);
    check(field, resolved, first);
    return resolved;
  }

  /**
   * Checks the limits {@code asked} sets (not 0) against the server's ceilings.
   *
   * @throws InvalidArgumentException naming {@code field} and the limit above its ceiling
   */
  public void withinCeilings(String field, SandboxResources asked) {
    check(field, asked, asked);
  }

  private void check(String field, SandboxResources values, SandboxResources asked) {
    SandboxConfig.Ceilings ceilings = config.ceilings();
    check(field, "cpu_millis", values.getCpuMillis(), ceilings.cpuMillis(), asked.getCpuMillis());
    check(
        field,
        "memory_bytes",
        values.getMemoryBytes(),
        ceilings.memoryBytes(),
        asked.getMemoryBytes());
    check(field, "disk_bytes", values.getDiskBytes(), ceilings.diskBytes(), asked.getDiskBytes());
    check(
        field,
        "max_processes",
        values.getMaxProcesses(),
        ceilings.maxProcesses(),
        asked.getMaxProcesses());
    check(
        field,
        "call_timeout_ms",
        values.getCallTimeoutMs(),
        ceilings.callTimeout().toMillis(),
        asked.getCallTimeoutMs());
    check(
        field,
        "lifetime_seconds",
        values.getLifetimeSeconds(),
        ceilings.lifetime().toSeconds(),
        asked.getLifetimeSeconds());
  }

  /** One limit against its ceiling; {@code asked} is what the request itself set (0: nothing). */
  private static void check(String field, String name, long value, long ceiling, long asked) {
    if (value <= ceiling) {
      return;
    }
    String limit =
        "this server allows at most "
            + ceiling
            + " (corral.sandbox.ceilings."
            + name.replace("_ms", "").replace("_seconds", "").replace('_', '-')
            + ")";
    if (asked != 0) {
      throw new InvalidArgumentException(field + "." + name, "is " + value + "; " + limit);
    }
    throw new FailedPreconditionException(
        "the sandbox's "
            + name
            + " (from its environment, or the server's default) is "
            + value
            + "; "
            + limit);
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
