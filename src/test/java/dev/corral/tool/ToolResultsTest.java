package dev.corral.tool;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.sandbox.driver.ExecResult;
import dev.corral.sandbox.driver.SandboxCommand;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** How a command's outcome is worded for the model. */
class ToolResultsTest {

  private static final Duration LIMIT = Duration.ofSeconds(5);

  @Test
  void aBashCallTheSandboxRefusedIsAnErrorThatSaysNothingRan() {
    // Given a call the sandbox refused before anything ran (a job kept stopping its shell)
    byte[] said =
        "corral: the call could not start: its shell took none of its script for 2 s; nothing ran"
            .getBytes(StandardCharsets.UTF_8);
    ExecResult refused =
        new ExecResult(126, said, said.length, false, ExecResult.OutOfMemory.NO, true);

    // Then a bash call, like a file tool's, is an error, worded as the sandbox said it
    ToolOutcome bash =
        ToolResults.outcome(
            new ToolInput.Bash("echo hi", false, LIMIT),
            SandboxCommand.shell("echo hi", LIMIT, 1024),
            refused,
            256L << 20);
    assertThat(bash.isError()).isTrue();
    assertThat(bash.output()).contains("nothing ran").doesNotContain("[exit code");

    // while a command that ran and exited 126 itself is the command's own answer
    byte[] own = "bash: ./x: Permission denied".getBytes(StandardCharsets.UTF_8);
    ToolOutcome ran =
        ToolResults.outcome(
            new ToolInput.Bash("./x", false, LIMIT),
            SandboxCommand.shell("./x", LIMIT, 1024),
            new ExecResult(126, own, own.length, false, false),
            256L << 20);
    assertThat(ran.isError()).isFalse();
    assertThat(ran.output()).endsWith("[exit code 126]");
  }
}
