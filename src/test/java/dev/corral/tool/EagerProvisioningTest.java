package dev.corral.tool;

import static dev.corral.testing.Fixtures.userMessage;
import static dev.corral.testing.SessionLogs.awaitIdle;
import static dev.corral.testing.SessionLogs.log;
import static dev.corral.testing.SessionLogs.types;
import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.AgentToolset;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StopReasonType;
import dev.corral.proto.v1.Tool;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.HarnessTestProfile;
import dev.corral.testing.InjectFakeAnthropic;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.Test;

/**
 * With {@code corral.sandbox.provisioning=eager} the harness provisions the session's sandbox
 * before its first model call (the baseline the lazy default is measured against), and the first
 * tool call uses it.
 */
@QuarkusTest
@TestProfile(EagerProvisioningTest.Eager.class)
class EagerProvisioningTest {

  public static class Eager extends HarnessTestProfile {
    @Override
    public Map<String, String> getConfigOverrides() {
      return overriddenWith("corral.sandbox.provisioning", "eager");
    }
  }

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @InjectFakeAnthropic FakeAnthropic model;

  @Test
  void theSandboxIsProvisionedBeforeTheFirstModelCallAndUsedByTheFirstToolCall() {
    // Given
    model.reset();
    model.enqueue(Reply.toolUse("toolu_1", "bash", "{\"command\":\"echo hi\"}"), Reply.text("ok"));
    String agent =
        agents
            .createAgent(
                CreateAgentRequest.newBuilder()
                    .setName("eager")
                    .setModel("claude-test")
                    .addTools(Tool.newBuilder().setToolset(AgentToolset.getDefaultInstance()))
                    .build())
            .getAgent()
            .getId();

    // When
    Session session =
        sessions
            .createSession(
                CreateSessionRequest.newBuilder()
                    .setAgentId(agent)
                    .addInitialEvents(userMessage("eager-" + UUID.randomUUID()))
                    .build())
            .getSession();
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then
    List<Event> events = log(sessions, session.getId());
    List<String> types = types(events);
    assertThat(types).containsOnlyOnce("sandbox.provisioned");
    assertThat(types.indexOf("sandbox.provisioned"))
        .isLessThan(types.indexOf("span.model_request_start"));
    Event result =
        events.stream()
            .filter(e -> e.getType().equals("agent.tool_result"))
            .findFirst()
            .orElseThrow();
    assertThat(result.getAgentToolResult().getContent(0).getText().getText()).isEqualTo("hi");
  }
}
