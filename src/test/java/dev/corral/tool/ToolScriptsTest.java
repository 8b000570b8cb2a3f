package dev.corral.tool;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.sandbox.driver.ExecResult;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** How a tool call becomes a sandbox command (its time limit), and what its timeout says. */
class ToolScriptsTest {

  @Test
  void aFileToolRunsAtMostAMinuteWhateverTheCallLimitButBashGetsTheWholeLimit() {
    Duration day = Duration.ofHours(24);

    assertThat(ToolScripts.of(new ToolInput.Grep("(a|aa)*\\1", ""), day).timeout())
        .isEqualTo(ToolScripts.FILE_TOOL_TIMEOUT)
        .isEqualTo(Duration.ofSeconds(60));
    assertThat(ToolScripts.of(new ToolInput.Glob("**/*", ""), day).timeout())
        .isEqualTo(ToolScripts.FILE_TOOL_TIMEOUT);
    assertThat(ToolScripts.of(new ToolInput.Read("a", 1, 0), Duration.ofSeconds(5)).timeout())
        .isEqualTo(Duration.ofSeconds(5));
    assertThat(ToolScripts.of(new ToolInput.Bash("make", false, null), day).timeout())
        .isEqualTo(day);
  }

  @Test
  void aGrepOrGlobStoppedAtItsLimitSaysWhatToChange() {
    ToolInput grep = new ToolInput.Grep("(a|aa)*\\1", "");
    ToolInput glob = new ToolInput.Glob("**/*", "");
    ExecResult killed = new ExecResult(137, new byte[0], 0, true, false);

    ToolOutcome grepOutcome =
        ToolResults.outcome(grep, ToolScripts.of(grep, Duration.ofHours(1)), killed, 1 << 30);
    ToolOutcome globOutcome =
        ToolResults.outcome(glob, ToolScripts.of(glob, Duration.ofHours(1)), killed, 1 << 30);

    assertThat(grepOutcome.isError()).isTrue();
    assertThat(grepOutcome.output())
        .isEqualTo(
            "[killed: the call ran longer than 60000 ms; every process it started was stopped;"
                + " narrow the path, or simplify the pattern: one that backtracks can take"
                + " forever]");
    assertThat(globOutcome.output()).endsWith("; narrow the pattern or the path]");
  }

  @Test
  void aFileToolThatDidItsWorkIsNotFailedByAnotherProcessRunningOutOfMemory() {
    // Given a write that exited 0 while the kernel stopped some process of the sandbox, and one
    // that was itself stopped
    ToolInput write = new ToolInput.Write("a.txt", new byte[] {'a'});
    ExecResult wrote = new ExecResult(0, "Wrote 1 bytes to a.txt".getBytes(), 22, false, true);
    ExecResult killed = new ExecResult(137, new byte[0], 0, false, true);
    ToolInput bash = new ToolInput.Bash("make", false, null);
    ExecResult made = new ExecResult(0, "done".getBytes(), 4, false, true);

    // When their outcomes are worded
    ToolOutcome kept = ToolResults.outcome(write, ToolScripts.of(write, HOUR), wrote, 1 << 28);
    ToolOutcome lost = ToolResults.outcome(write, ToolScripts.of(write, HOUR), killed, 1 << 28);
    ToolOutcome built = ToolResults.outcome(bash, ToolScripts.of(bash, HOUR), made, 1 << 28);

    // Then the write that did its work is no error (the note stays), the one stopped is, and a
    // bash command whose processes ran out still is
    assertThat(kept.isError()).isFalse();
    assertThat(kept.output()).startsWith("Wrote 1 bytes").contains("ran out of memory");
    assertThat(lost.isError()).isTrue();
    assertThat(built.isError()).isTrue();
  }

  private static final Duration HOUR = Duration.ofHours(1);
}
