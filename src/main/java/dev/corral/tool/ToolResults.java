package dev.corral.tool;

import dev.corral.sandbox.driver.ExecResult;
import dev.corral.sandbox.driver.SandboxCommand;
import java.nio.charset.StandardCharsets;

/** How the outcome of a built-in tool's command is worded for the model. */
final class ToolResults {

  private ToolResults() {}

  static ToolOutcome outcome(ToolInput input, SandboxCommand command, ExecResult result) {
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
    if (result.timedOut()) {
      text.append("\n[killed: the call ran longer than ")
          .append(command.timeout().toMillis())
          .append(" ms]");
      return ToolOutcome.error(text.toString().stripTrailing());
    }
    if (result.shellExited()) {
      text.append("\n[the shell exited with code ")
          .append(result.exitCode())
          .append("; a fresh shell took its place: the directory and variables were reset]");
      return ToolOutcome.ok(text.toString().stripTrailing());
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
}
