package dev.corral.sandbox.driver;

import dev.corral.common.FailedPreconditionException;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.Uni;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.function.Function;

/**
 * Runs an environment's setup commands in a new sandbox, in order, in its persistent shell (what
 * they change in the directory and variables stays for the tools). The first that fails or runs out
 * of time fails the provisioning. Every driver sets up its sandboxes through this one routine.
 */
public final class SandboxSetup {

  /** Output kept of a failing setup command, for its error message. */
  private static final int OUTPUT_CAP = 8 * 1024;

  private SandboxSetup() {}

  /**
   * @param total the longest the commands may run together ({@code corral.sandbox.setup-timeout})
   * @param run runs one command in the sandbox being set up
   */
  public static Uni<Void> run(
      SandboxDriver.SandboxSpec spec,
      Duration total,
      Function<SandboxCommand, Uni<ExecResult>> run) {
    List<String> commands = spec.environment().getSetupCommandsList();
    Duration perCall = Duration.ofMillis(spec.resources().getCallTimeoutMs());
    long deadline = System.nanoTime() + total.toNanos();
    return Multi.createFrom()
        .range(0, commands.size())
        .onItem()
        .transformToUniAndConcatenate(
            index ->
                Uni.createFrom()
                    .deferred(
                        () -> {
                          Duration left = Duration.ofNanos(deadline - System.nanoTime());
                          if (left.compareTo(Duration.ofMillis(1)) < 0) {
                            throw pastDeadline(index, total);
                          }
                          boolean cutByTotal = left.compareTo(perCall) < 0;
                          return run.apply(
                                  SandboxCommand.shell(
                                      commands.get(index), cutByTotal ? left : perCall, OUTPUT_CAP))
                              .invoke(
                                  result -> {
                                    if (result.timedOut() && cutByTotal) {
                                      throw pastDeadline(index, total);
                                    }
                                    requireSuccess(index, result);
                                  });
                        }))
        .collect()
        .last()
        .replaceWithVoid();
  }

  private static FailedPreconditionException pastDeadline(int index, Duration total) {
    return new FailedPreconditionException(
        "setup command "
            + (index + 1)
            + " was still running when the environment's setup commands had run for "
            + (total.toMillis() % 1000 == 0 ? total.toSeconds() + " s" : total.toMillis() + " ms")
            + " together (corral.sandbox.setup-timeout)");
  }

  private static void requireSuccess(int index, ExecResult result) {
    if (result.exitCode() != 0 || result.timedOut()) {
      throw new FailedPreconditionException(
          "setup command "
              + (index + 1)
              + (result.timedOut() ? " timed out" : " failed")
              + " (exit "
              + result.exitCode()
              + "): "
              + new String(result.output(), StandardCharsets.UTF_8).strip());
    }
  }
}
