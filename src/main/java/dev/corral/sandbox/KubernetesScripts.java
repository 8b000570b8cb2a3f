package dev.corral.sandbox;

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

  static List<String> exec(SandboxCommand command) {
    String script =
        command.inShell()
            ? "__corral_a=(\"$@\"); S="
                + SHELL_STATE
                + "; mkdir -p \"$S\"\n"
                + "cd \"$(cat \"$S/cwd\" 2>/dev/null || echo /workspace)\" 2>/dev/null || cd /workspace\n"
                + "[ -f \"$S/env\" ] && . \"$S/env\" 2>/dev/null\n"
                + "{ "
                + command.script()
                + "\n} </dev/null 2>&1\n"
                + "__corral_rc=$?; pwd > \"$S/cwd\"; export -p > \"$S/env\"; exit $__corral_rc"
            : "__corral_a=(\"$@\"); ( " + command.script() + "\n) </dev/null 2>&1";
    List<String> argv = new ArrayList<>(List.of("/bin/bash", "-c", script, "corral"));
    command.args().forEach(arg -> argv.add(new String(arg, StandardCharsets.UTF_8)));
    return argv;
  }
}
