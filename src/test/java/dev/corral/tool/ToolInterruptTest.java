package dev.corral.tool;

import static dev.corral.testing.SessionLogs.awaitIdle;
import static dev.corral.testing.SessionLogs.log;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.ListSandboxesRequest;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.proto.v1.SandboxState;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StopReasonType;
import dev.corral.proto.v1.UserInterrupt;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.Fixtures;
import dev.corral.testing.HarnessTestProfile;
import dev.corral.testing.InjectFakeAnthropic;
import dev.corral.testing.Processes;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * {@code user.interrupt} stops a running built-in tool where it runs: its processes end at once,
 * the result records the interrupt, and the next call on the sandbox starts without waiting.
 */
@QuarkusTest
@TestProfile(HarnessTestProfile.class)
class ToolInterruptTest {

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @GrpcClient("corral")
  SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes;

  @InjectFakeAnthropic FakeAnthropic model;

  @BeforeEach
  void reset() {
    model.reset();
  }

  @Test
  void anInterruptStopsTheRunningCommandInTheSandbox() {
    // Given a turn whose bash call would run for 30 s and then change the workspace
    String marker = "interrupt-" + UUID.randomUUID();
    model.enqueue(
        Reply.toolUse(
            "toolu_slow", "bash", "{\"command\":\"echo begun; sleep 29.7; touch late\"}"));
    Session session = start(marker);
    await().atMost(Duration.ofSeconds(10)).until(() -> Processes.running("sleep 29.7"));

    // When the user interrupts
    long start = System.nanoTime();
    sessions.emitEvent(
        EmitEventRequest.newBuilder()
            .setSessionId(session.getId())
            .setEvent(Event.newBuilder().setUserInterrupt(UserInterrupt.getDefaultInstance()))
            .build());
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_INTERRUPTED);

    // Then the command's processes are gone within a second, and its result says why
    await().atMost(Duration.ofSeconds(1)).until(() -> !Processes.running("sleep 29.7"));
    long stoppedMs = (System.nanoTime() - start) / 1_000_000;
    assertThat(stoppedMs).isLessThan(1_500);
    List<Event> results =
        log(sessions, session.getId()).stream()
            .filter(event -> event.getType().equals("agent.tool_result"))
            .toList();
    assertThat(results).hasSize(1);
    assertThat(text(results.get(0))).contains("interrupted");

    // And the next call on the same sandbox starts at once and finds no trace of the stopped one
    model.enqueue(
        Reply.toolUse("toolu_next", "bash", "{\"command\":\"ls -A; echo listed\"}"),
        Reply.text("Done."));
    long next = System.nanoTime();
    sessions.emitEvent(Fixtures.emit(session.getId(), "again " + marker));
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    assertThat((System.nanoTime() - next) / 1_000_000).isLessThan(5_000);
    List<Event> after =
        log(sessions, session.getId()).stream()
            .filter(event -> event.getType().equals("agent.tool_result"))
            .toList();
    assertThat(text(after.get(1))).isEqualTo("listed");
    assertThat(
            sandboxes
                .listSandboxes(
                    ListSandboxesRequest.newBuilder()
                        .setSessionId(session.getId())
                        .setIncludeEnded(true)
                        .build())
                .getSandboxesList())
        .singleElement()
        .extracting(Sandbox::getState)
        .isEqualTo(SandboxState.SANDBOX_STATE_READY);
  }

  private static String text(Event result) {
    return result.getAgentToolResult().getContent(0).getText().getText();
  }

  private Session start(String marker) {
    return Fixtures.startWithTools(agents, sessions, marker);
  }
}
