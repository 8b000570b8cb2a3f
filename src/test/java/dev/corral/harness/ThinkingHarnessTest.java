package dev.corral.harness;

import static dev.corral.testing.Fixtures.userMessage;
import static dev.corral.testing.SessionLogs.awaitIdle;
import static dev.corral.testing.SessionLogs.log;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.PermissionPolicy;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StopReasonType;
import dev.corral.proto.v1.UserInterrupt;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.Fixtures;
import dev.corral.testing.HarnessTestProfile;
import dev.corral.testing.InjectFakeAnthropic;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.Test;

/**
 * Whole turns with extended thinking on, against the fake API, which answers with signed thinking
 * and refuses a thinking block sent back changed, a tool loop whose last assistant turn does not
 * begin with its thinking, and a prefill.
 */
@QuarkusTest
@TestProfile(ThinkingHarnessTest.Profile.class)
class ThinkingHarnessTest {

  /** The harness profile with a thinking budget (under its max_tokens of 2,048). */
  public static class Profile extends HarnessTestProfile {
    @Override
    public Map<String, String> getConfigOverrides() {
      return overriddenWith("corral.model.thinking-budget-tokens", "1024");
    }
  }

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @InjectFakeAnthropic FakeAnthropic model;

  @Test
  void aToolLoopAnInterruptAndTheNextTurnSendTheThinkingBackAsItCame() {
    model.reset();
    String marker = "think-" + UUID.randomUUID();
    String thought = "List the files first.";
    model.enqueue(
        Reply.stream()
            .thinking(thought)
            .toolUse("toolu_t1", "bash", "{\"command\":\"echo listed\"}")
            .stop("tool_use"),
        Reply.stream().thinking("The files are listed.").text("Done.").stop("end_turn"));
    String agent =
        agents
            .createAgent(
                CreateAgentRequest.newBuilder()
                    .setName("thinking")
                    .setModel("claude-test")
                    .addTools(Fixtures.bashToolset(PermissionPolicy.PERMISSION_POLICY_ALWAYS_ALLOW))
                    .build())
            .getAgent()
            .getId();
    String session =
        sessions
            .createSession(
                CreateSessionRequest.newBuilder()
                    .setAgentId(agent)
                    .addInitialEvents(userMessage(marker))
                    .build())
            .getSession()
            .getId();

    // When a turn thinks, calls a tool and answers
    awaitIdle(sessions, session, StopReasonType.STOP_REASON_TYPE_END_TURN);
    // then the next one thinks and calls a tool that the client interrupts
    model.enqueue(
        Reply.stream()
            .thinking("Wait for it.")
            .toolUse("toolu_t2", "bash", "{\"command\":\"sleep 30\"}")
            .stop("tool_use"));
    sessions.emitEvent(Fixtures.emit(session, "second " + marker));
    await()
        .atMost(Duration.ofSeconds(20))
        .until(() -> log(sessions, session).stream().filter(Event::hasAgentToolUse).count() == 2);
    sessions.emitEvent(
        EmitEventRequest.newBuilder()
            .setSessionId(session)
            .setEvent(Event.newBuilder().setUserInterrupt(UserInterrupt.getDefaultInstance()))
            .build());
    awaitIdle(sessions, session, StopReasonType.STOP_REASON_TYPE_INTERRUPTED);
    // and a third message is answered
    model.enqueue(Reply.stream().thinking("Back to it.").text("Back.").stop("end_turn"));
    sessions.emitEvent(Fixtures.emit(session, "third " + marker));
    awaitIdle(sessions, session, StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then the API's rules held at every request: the loop's assistant turn began with its
    // thinking, signed as it came
    List<FakeAnthropic.Received> requests = model.requestsMentioning(marker);
    assertThat(requests).hasSize(4);
    assertThat(model.violations()).isEmpty();
    JsonNode messages = requests.get(1).body().path("messages");
    JsonNode loop = messages.get(messages.size() - 2);
    assertThat(loop.path("role").asText()).isEqualTo("assistant");
    assertThat(loop.path("content").get(0).path("type").asText()).isEqualTo("thinking");
    assertThat(loop.path("content").get(0).path("thinking").asText()).isEqualTo(thought);
    assertThat(loop.path("content").get(0).path("signature").asText())
        .isEqualTo("sig-" + thought.length());
    assertThat(requests.get(3).body().path("messages").toString()).contains("third " + marker);
  }
}
