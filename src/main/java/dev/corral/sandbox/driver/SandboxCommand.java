package dev.corral.sandbox.driver;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;

/**
 * A script a driver runs inside a sandbox. The script text is fixed per tool and holds no input;
 * the inputs travel as {@code args}, which the script finds in the bash array {@code __corral_a}
 * (quoted by the local driver, exec arguments in a pod: never parsed as shell code).
 *
 * @param inShell run in the sandbox's persistent shell, so that cd and exported variables survive
 *     (the bash tool); otherwise in a subshell that leaves the shell untouched
 * @param keepTail when output exceeds the cap, keep its end (bash) rather than its start
 */
public record SandboxCommand(
    String script,
    List<byte[]> args,
    boolean inShell,
    Duration timeout,
    int outputCap,
    boolean keepTail) {

  /** Runs its one argument as shell code in the persistent shell. */
  static final String SHELL = "eval \"${__corral_a[0]}\"";

  public SandboxCommand {
    args = List.copyOf(args);
  }

  /**
   * {@code command} as shell code in the sandbox's persistent shell (its directory and variables
   * carry over to the next one), keeping the tail of its output when it exceeds {@code outputCap}.
   */
  public static SandboxCommand shell(String command, Duration timeout, int outputCap) {
    return new SandboxCommand(
        SHELL, List.of(command.getBytes(StandardCharsets.UTF_8)), true, timeout, outputCap, true);
  }
}
