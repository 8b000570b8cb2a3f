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
   * @param run runs one command in the sandbox being set up
   */
  public static Uni<Void> run(
      SandboxDriver.SandboxSpec spec, Function<SandboxCommand, Uni<ExecResult>> run) {
    List<String> commands = spec.environment().getSetupCommandsList();
    Duration timeout = Duration.ofMillis(spec.resources().getCallTimeoutMs());
    return Multi.createFrom()
        .range(0, commands.size())
        .onItem()
        .transformToUniAndConcatenate(
            index ->
                run.apply(SandboxCommand.shell(commands.get(index), timeout, OUTPUT_CAP))
                    .invoke(result -> requireSuccess(index, result)))
        .collect()
        .last()
        .replaceWithVoid();
  }

  private static void requireSuccess(int index, ExecResult result) {
    if (result.exitCode() != 0 || result.timedOut()) {
      throw new FailedPreconditionException(
          "setup command "
              + (index + 1)
              + " failed (exit "
              + result.exitCode()
              + "): "
              + new String(result.output(), StandardCharsets.UTF_8).strip());
    }
  }
}
