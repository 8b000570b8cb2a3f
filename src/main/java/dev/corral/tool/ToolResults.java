package dev.corral.tool;

import dev.corral.sandbox.driver.ExecResult;
import dev.corral.sandbox.driver.SandboxCommand;
import java.nio.charset.StandardCharsets;

/** How the outcome of a built-in tool's command is worded for the model. */
final class ToolResults {

  private ToolResults() {}

  /**
   * @param memoryBytes the sandbox's memory limit, for the note when it ran out
   */
  static ToolOutcome outcome(
      ToolInput input, SandboxCommand command, ExecResult result, long memoryBytes) {
    StringBuilder text = new StringBuilder(new String(result.output(), StandardCharsets.UTF_8));
    if (result.truncated()) {
      text.insert(
          0,
          command.keepTail()
              ? "[output truncated: "
                  + result.totalBytes()
                  + " bytes, showing the last "
                  + result.output().length
                  + "]\n"
              : "");
      if (!command.keepTail()) {
        text.append("\n[output truncated: ")
            .append(result.totalBytes())
            .append(" bytes, showing the first ")
            .append(result.output().length)
            .append("]");
      }
    }
    if (result.memory() == ExecResult.OutOfMemory.SANDBOX_LIMIT) {
      text.append("\n[the sandbox ran out of memory (its limit is ")
          .append(memoryBytes >> 20)
          .append(" MiB for all its processes and files in /tmp and /workspace): the kernel")
          .append(" stopped a process]");
    } else if (result.memory() == ExecResult.OutOfMemory.SHARED) {
      text.append("\n[the host's memory for sandboxes ran out, which this sandbox shares with")
          .append(" others (its own limit of ")
          .append(memoryBytes >> 20)
          .append(" MiB was not reached): the kernel stopped a process; the same call may")
          .append(" work later]");
    }
    if (result.timedOut()) {
      text.append(text.isEmpty() ? "" : "\n")
          .append("[killed: the call ran longer than ")
          .append(command.timeout().toMillis())
          .append(" ms; every process it started was stopped")
          .append(whatNow(input));
      return ToolOutcome.error(text.toString().stripTrailing());
    }
    if (result.refused()) {
      // nothing ran: whatever the tool, the call failed
      return ToolOutcome.error(text.toString().strip());
    }
    // A file tool is one process of its own: one that exited 0 was not the one the kernel
    // stopped (a job an earlier call left running was), and did its work. A bash command's own
    // processes are what usually runs out: its call fails, whatever its last command's code.
    if (result.outOfMemory() && (input instanceof ToolInput.Bash || result.exitCode() != 0)) {
      if (result.exitCode() != 0) {
        text.append("\n[exit code ").append(result.exitCode()).append("]");
      }
      return ToolOutcome.error(text.toString().strip());
    }
    if (input instanceof ToolInput.Bash) {
      if (result.exitCode() != 0) {
        text.append("\n[exit code ").append(result.exitCode()).append("]");
      }
      String output = text.toString().stripTrailing();
      return ToolOutcome.ok(output.isEmpty() ? "(no output)" : output);
    }
    String output = text.toString().stripTrailing();
    return result.exitCode() == 0
        ? ToolOutcome.ok(output)
        : ToolOutcome.error(output.replaceFirst("^corral: ", ""));
  }

  /** The end of the note on a call stopped at its time limit: what was kept, or what to change. */
  private static String whatNow(ToolInput input) {
    if (input instanceof ToolInput.Bash) {
      return ", and the shell keeps its directory and variables from before this call]";
    }
    if (input instanceof ToolInput.Glob) {
      return "; narrow the pattern or the path]";
    }
    if (input instanceof ToolInput.Grep) {
      return "; narrow the path, or simplify the pattern: one that backtracks can take forever]";
    }
    return "]";
  }
}
