package dev.corral.tool;

import dev.corral.common.IdKind;
import dev.corral.common.Tenant;
import dev.corral.proto.v1.Sandbox;
import dev.corral.sandbox.SandboxReleasedException;
import dev.corral.sandbox.Sandboxes;
import dev.corral.sandbox.driver.SandboxCommand;
import dev.corral.sandbox.driver.SandboxLostException;
import dev.corral.sandbox.driver.ShellNotResetException;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import java.time.Duration;

/**
 * Runs built-in tool calls in a sandbox: {@code execute(name, input) -> result}, for the harness
 * (through {@link SessionTools}) and for {@code SandboxService.Execute}. A tool call becomes a
 * script ({@link ToolScripts}); its result is worded by {@link ToolResults}.
 */
@ApplicationScoped
public class BuiltInTools {

  private final Sandboxes sandboxes;

  BuiltInTools(Sandboxes sandboxes) {
    this.sandboxes = sandboxes;
  }

  /**
   * Runs a tool call given through the API in a sandbox of {@code tenant}; a sandbox lost during
   * the call is an error answer.
   */
  public Uni<ToolOutcome> execute(Tenant tenant, String sandboxId, String name, String inputJson) {
    return Uni.createFrom()
        .item(() -> IdKind.SANDBOX.require("sandbox_id", sandboxId))
        .map(id -> ToolInput.parse("name", name, "input_json", inputJson))
        .invoke(
            input -> {
              if (!input.tool().needsSandbox()) {
                throw new dev.corral.common.InvalidArgumentException(
                    "name",
                    "'" + name + "' reads a session's log and runs only in a session's turn");
              }
            })
        .flatMap(input -> sandboxes.get(tenant, sandboxId).flatMap(sandbox -> run(sandbox, input)))
        .onFailure(
            failure ->
                failure instanceof SandboxLostException
                    || failure instanceof SandboxReleasedException)
        .recoverWithItem(ended -> ToolOutcome.error(ended.getMessage()));
  }

  private static String capitalized(String message) {
    return Character.toUpperCase(message.charAt(0)) + message.substring(1);
  }

  /**
   * Runs {@code input} in {@code sandbox}.
   *
   * @throws SandboxLostException (in the Uni) if the sandbox died; it is then recorded as lost
   */
  public Uni<ToolOutcome> run(Sandbox sandbox, ToolInput input) {
    if (!input.tool().needsSandbox()) {
      return Uni.createFrom()
          .item(ToolOutcome.error("The " + input.tool().toolName() + " tool runs in no sandbox."));
    }
    Duration timeout = Duration.ofMillis(sandbox.getResources().getCallTimeoutMs());
    if (input instanceof ToolInput.Bash bash && bash.restart()) {
      Uni<Void> restarted = sandboxes.restartShell(sandbox);
      Uni<ToolOutcome> outcome;
      if (bash.command().isEmpty()) {
        outcome = restarted.map(ignored -> ToolOutcome.ok("The shell was restarted."));
      } else {
        ToolInput.Bash command = new ToolInput.Bash(bash.command(), false, bash.timeout());
        outcome =
            restarted
                .flatMap(ignored -> run(sandbox, command))
                .map(ran -> ran.prefixed("The shell was restarted."));
      }
      // the sandbox undid it itself: the model learns why, and its command did not run
      return outcome
          .onFailure(ShellNotResetException.class)
          .recoverWithItem(failed -> ToolOutcome.error(capitalized(failed.getMessage())));
    }
    SandboxCommand command = ToolScripts.of(input, timeout);
    return sandboxes
        .run(sandbox, command)
        .map(
            result ->
                ToolResults.outcome(
                    input, command, result, sandbox.getResources().getMemoryBytes()));
  }
}
