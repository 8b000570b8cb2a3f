package dev.corral.sandbox;

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

  public SandboxCommand {
    args = List.copyOf(args);
  }
}
