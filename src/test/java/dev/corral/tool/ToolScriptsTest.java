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
}
