package dev.corral.sandbox.driver;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.corral.common.FailedPreconditionException;
import dev.corral.proto.v1.Environment;
import dev.corral.proto.v1.SandboxResources;
import io.smallrye.mutiny.Uni;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class SandboxSetupTest {

  /** A sandbox whose commands each take {@code takes}, or time out at their timeout if shorter. */
  private static final class Sandbox {
    final List<Duration> timeouts = new ArrayList<>();
    final Duration takes;

    Sandbox(Duration takes) {
      this.takes = takes;
    }

    Uni<ExecResult> run(SandboxCommand command) {
      timeouts.add(command.timeout());
      boolean timedOut = command.timeout().compareTo(takes) < 0;
      return Uni.createFrom()
          .item(new ExecResult(timedOut ? -1 : 0, new byte[0], 0, timedOut, false))
          .onItem()
          .delayIt()
          .by(timedOut ? command.timeout() : takes);
    }
  }

  private static SandboxDriver.SandboxSpec spec(long callTimeoutMs, String... commands) {
    return new SandboxDriver.SandboxSpec(
        "sbx_setup",
        "",
        Environment.newBuilder().addAllSetupCommands(List.of(commands)).build(),
        SandboxResources.newBuilder().setCallTimeoutMs(callTimeoutMs).build());
  }

  @Test
  void setupCommandsTogetherStopAtTheSetupTimeoutThoughEachCouldRunLonger() {
    // Given three commands of 300 ms each, in a sandbox whose calls may run for a day
    Sandbox sandbox = new Sandbox(Duration.ofMillis(300));

    // When the setup may take 500 ms in all
    Throwable failure =
        catchThrowable(
            () ->
                SandboxSetup.run(
                        spec(86_400_000, "one", "two", "three"),
                        Duration.ofMillis(500),
                        sandbox::run)
                    .await()
                    .atMost(Duration.ofSeconds(10)));

    // Then the second is cut at what was left of the 500 ms, and the third never runs
    assertThat(failure)
        .isInstanceOf(FailedPreconditionException.class)
        .hasMessageContaining("setup command 2")
        .hasMessageContaining("500 ms together (corral.sandbox.setup-timeout)");
    assertThat(sandbox.timeouts).hasSize(2);
    assertThat(sandbox.timeouts.get(0)).isBetween(Duration.ofMillis(400), Duration.ofMillis(500));
    assertThat(sandbox.timeouts.get(1)).isLessThanOrEqualTo(Duration.ofMillis(200));
  }

  @Test
  void eachCommandIsHeldToTheCallTimeoutWhenItIsShorter() {
    // Given a command of 300 ms in a sandbox whose calls may run for 100 ms
    Sandbox sandbox = new Sandbox(Duration.ofMillis(300));

    // When the setup may take ten minutes
    Throwable failure =
        catchThrowable(
            () ->
                SandboxSetup.run(spec(100, "slow"), Duration.ofMinutes(10), sandbox::run)
                    .await()
                    .atMost(Duration.ofSeconds(10)));

    // Then the command times out at the call timeout
    assertThat(failure)
        .isInstanceOf(FailedPreconditionException.class)
        .hasMessageContaining("setup command 1 timed out");
    assertThat(sandbox.timeouts).containsExactly(Duration.ofMillis(100));
  }

  @Test
  void commandsWithinBothLimitsAllRun() {
    Sandbox sandbox = new Sandbox(Duration.ofMillis(10));

    SandboxSetup.run(spec(1_000, "a", "b", "c"), Duration.ofSeconds(5), sandbox::run)
        .await()
        .atMost(Duration.ofSeconds(10));

    assertThat(sandbox.timeouts).hasSize(3).allMatch(timeout -> timeout.toMillis() == 1_000);
  }
}
