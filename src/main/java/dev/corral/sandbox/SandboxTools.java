package dev.corral.sandbox;

import dev.corral.tool.ToolInput;
import dev.corral.tool.ToolOutcome;
import io.smallrye.mutiny.Uni;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/**
 * Runs one built-in tool call in a sandbox through its driver and words the outcome for the model.
 */
final class SandboxTools {

  private SandboxTools() {}

  static Uni<ToolOutcome> run(
      SandboxDriver driver, String sandboxId, String host, ToolInput input, Duration timeout) {
    if (input instanceof ToolInput.Bash bash && bash.restart()) {
      Uni<Void> restarted = driver.restartShell(sandboxId, host);
      if (bash.command().isEmpty()) {
        return restarted.map(ignored -> ToolOutcome.ok("The shell was restarted."));
      }
      ToolInput.Bash command = new ToolInput.Bash(bash.command(), false, bash.timeout());
      return restarted
          .flatMap(ignored -> run(driver, sandboxId, host, command, timeout))
          .map(outcome -> outcome.prefixed("The shell was restarted."));
    }
    SandboxCommand command = ToolScripts.of(input, timeout);
    return driver.run(sandboxId, host, command).map(result -> outcome(input, command, result));
  }

  private static ToolOutcome outcome(ToolInput input, SandboxCommand command, ExecResult result) {
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
