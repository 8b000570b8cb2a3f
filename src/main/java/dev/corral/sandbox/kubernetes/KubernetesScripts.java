package dev.corral.sandbox.kubernetes;

import dev.corral.sandbox.driver.SandboxCommand;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * How a {@link SandboxCommand} becomes an exec in a sandbox pod: {@code bash -c <script> corral
 * <args...>} (the arguments travel as exec arguments, never as code). Each exec is a new process,
 * so the bash tool's "persistent shell" keeps its working directory and exported variables in
 * /tmp/.corral-shell between calls.
 */
final class KubernetesScripts {

  static final String SHELL_STATE = "/tmp/.corral-shell";

  /** Run after a timed-out call: kill everything the sandbox user runs (but the pod's pid 1). */
  static final List<String> KILL_ALL =
      List.of("/bin/bash", "-c", "kill -KILL -1 2>/dev/null; true");

  static final List<String> RESET_SHELL =
      List.of("/bin/bash", "-c", "kill -KILL -1 2>/dev/null; rm -rf " + SHELL_STATE + "; true");

  private KubernetesScripts() {}

  static final String INPUTS = "/tmp/.corral-in";

  /** Appends its second argument to the input file named by its first (one upload chunk). */
  static final String APPEND_CHUNK =
      "umask 077; mkdir -p " + INPUTS + " && printf '%s' \"$2\" >> " + INPUTS + "/\"$1\"";

  /** Reads the arguments from uploaded files named by "$@", and removes them. */
  private static final String FROM_FILES =
      "__corral_a=(); for __f in \"$@\"; do __v=$(cat -- "
          + INPUTS
          + "/\"$__f\"; printf .); __corral_a+=(\"${__v%.}\"); rm -f -- "
          + INPUTS
          + "/\"$__f\"; done; unset __f __v; ";

  private static final String INLINE = "__corral_a=(\"$@\"); ";

  /**
   * Whether {@code command}'s arguments must be uploaded before it runs: exec arguments travel in
   * the request URL, which API servers and proxies limit, so more than {@code limit} bytes go in
   * chunks.
   */
  static boolean uploads(SandboxCommand command, int limit) {
    return command.args().stream().mapToInt(arg -> arg.length).sum() > limit;
  }

  /** The exec that runs {@code command} with its arguments inline. */
  static List<String> exec(SandboxCommand command) {
    List<String> argv =
        new ArrayList<>(List.of("/bin/bash", "-c", script(INLINE, command), "corral"));
    command.args().forEach(arg -> argv.add(new String(arg, StandardCharsets.UTF_8)));
    return argv;
  }

  /** The exec that runs {@code command} with its arguments read from uploaded {@code files}. */
  static List<String> exec(SandboxCommand command, List<String> files) {
    List<String> argv =
        new ArrayList<>(List.of("/bin/bash", "-c", script(FROM_FILES, command), "corral"));
    argv.addAll(files);
    return argv;
  }

  /**
   * The execs that upload {@code argument} into the input file {@code name}, in chunks of at most
   * {@code chunkBytes} UTF-8 bytes (never splitting a character).
   */
  static List<List<String>> upload(String name, byte[] argument, int chunkBytes) {
    String text = new String(argument, StandardCharsets.UTF_8);
    List<List<String>> execs = new ArrayList<>();
    int start = 0;
    do { // at least once, so that an empty argument still gets its file
      int end = start;
      int bytes = 0;
      while (end < text.length()) {
        int codePoint = text.codePointAt(end);
        int size = new String(Character.toChars(codePoint)).getBytes(StandardCharsets.UTF_8).length;
        if (bytes + size > chunkBytes && end > start) {
          break;
        }
        bytes += size;
        end += Character.charCount(codePoint);
      }
      execs.add(
          List.of("/bin/bash", "-c", APPEND_CHUNK, "corral", name, text.substring(start, end)));
      start = end;
    } while (start < text.length());
    return execs;
  }

  private static String script(String prologue, SandboxCommand command) {
    return command.inShell()
        ? prologue
            + "S="
            + SHELL_STATE
            + "; mkdir -p \"$S\"\n"
            + "cd \"$(cat \"$S/cwd\" 2>/dev/null || echo /workspace)\" 2>/dev/null || cd /workspace\n"
            + "[ -f \"$S/env\" ] && . \"$S/env\" 2>/dev/null\n"
            + "{ "
            + command.script()
            + "\n} </dev/null 2>&1\n"
            + "__corral_rc=$?; pwd > \"$S/cwd\"; export -p > \"$S/env\"; exit $__corral_rc"
        : prologue + "( " + command.script() + "\n) </dev/null 2>&1";
  }
}
