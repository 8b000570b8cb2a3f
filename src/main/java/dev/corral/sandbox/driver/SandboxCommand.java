package dev.corral.sandbox.driver;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;

/**
 * A script a driver runs inside a sandbox, as a bash process of its own, with stdin from /dev/null
 * and stderr into stdout. The script text is fixed per kind of command and holds no input; the
 * inputs travel as {@code args}, which the script finds in the bash array {@code __corral_a}
 * (argument strings of the process: never parsed as shell code). A call that runs out of time, is
 * interrupted or whose sandbox is released ends with every process it started.
 *
 * @param outputCap bytes of output the result keeps at most
 * @param keepTail when output exceeds the cap, keep its end (bash) rather than its start
 */
public record SandboxCommand(
    String script, List<byte[]> args, Duration timeout, int outputCap, boolean keepTail) {

  public SandboxCommand {
    args = List.copyOf(args);
  }

  /**
   * {@code command} as shell code in the sandbox's persistent shell ({@link ShellScripts}): its
   * working directory and variables carry over to the next one. Keeps the tail of its output when
   * it exceeds {@code outputCap}.
   */
  public static SandboxCommand shell(String command, Duration timeout, int outputCap) {
    return new SandboxCommand(
        ShellScripts.PERSISTENT,
        List.of(command.getBytes(StandardCharsets.UTF_8)),
        timeout,
        outputCap,
        true);
  }

  /** The bytes of its script and arguments, which it holds until it has run. */
  public long bytes() {
    long bytes = script.length();
    for (byte[] arg : args) {
      bytes += arg.length;
    }
    return bytes;
  }

  /**
   * Most bytes of input the calls waiting for one sandbox may hold together: a call that finds none
   * waiting is taken whatever its size.
   */
  public static final long MAX_WAITING_BYTES = 2L << 20;

  /** Forgets the persistent shell's state (after every process of the sandbox was stopped). */
  public static SandboxCommand resetShell() {
    return new SandboxCommand(ShellScripts.RESET, List.of(), Duration.ofSeconds(10), 4096, false);
  }
}
