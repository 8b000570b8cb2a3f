package dev.corral.harness;

import static dev.corral.testing.SessionLogs.awaitIdle;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StopReasonType;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.Fixtures;
import dev.corral.testing.InjectFakeAnthropic;
import dev.corral.testing.ObservabilityTestProfile;
import dev.corral.testing.SessionLogs;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.sdk.testing.exporter.InMemorySpanExporter;
import io.opentelemetry.sdk.trace.data.SpanData;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import jakarta.inject.Inject;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import org.junit.jupiter.api.Test;

/**
 * A session's turns as traces and its log lines as JSON: each turn is one trace whose spans are the
 * model calls (GenAI attributes, token usage), the tool call with the provisioning it caused, and
 * the appends; span.model_request_start names the trace; JSON log lines carry the session's fixed
 * keys and none of its payloads.
 */
@QuarkusTest
@TestProfile(ObservabilityTestProfile.class)
class ObservabilityTest {

  private static final AttributeKey<String> SESSION = AttributeKey.stringKey("corral.session.id");

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @InjectFakeAnthropic FakeAnthropic model;

  @Inject InMemorySpanExporter spans;

  @Test
  void eachTurnIsOneTraceAndTheLogNamesIt() throws Exception {
    // Given a turn that calls a tool (a new sandbox), then a second turn
    model.reset();
    String secret = "payload-" + UUID.randomUUID();
    model.enqueue(
        Reply.toolUse("toolu_o", "bash", "{\"command\":\"echo " + secret + "-out\"}"),
        Reply.text("Done."),
        Reply.text("Again."));
    Session session = Fixtures.startWithTools(agents, sessions, "trace this " + secret);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    sessions.emitEvent(Fixtures.emit(session.getId(), "and again " + secret));
    await()
        .atMost(Duration.ofSeconds(20))
        .until(
            () ->
                SessionLogs.log(sessions, session.getId()).stream()
                        .filter(Event::hasSessionStatusIdle)
                        .count()
                    == 2);

    // When the turns' root spans are exported
    List<SpanData> turns = new ArrayList<>();
    await()
        .atMost(Duration.ofSeconds(10))
        .until(
            () -> {
              turns.clear();
              spans.getFinishedSpanItems().stream()
                  .filter(span -> span.getName().equals("corral.turn"))
                  .filter(span -> session.getId().equals(span.getAttributes().get(SESSION)))
                  .forEach(turns::add);
              return turns.size() == 2;
            });

    // Then each turn is a root span of a trace of its own
    assertThat(turns).allMatch(turn -> !turn.getParentSpanContext().isValid());
    assertThat(turns.get(0).getTraceId()).isNotEqualTo(turns.get(1).getTraceId());
    assertThat(turns)
        .allMatch(turn -> "end_turn".equals(turn.getAttributes().get(TurnTrace.STOP_REASON)));
    SpanData first =
        turns.stream()
            .min((a, b) -> Long.compare(a.getStartEpochNanos(), b.getStartEpochNanos()))
            .orElseThrow();
    List<SpanData> inFirst = inTrace(first.getTraceId());

    // with its model calls, following the GenAI conventions
    List<SpanData> chats = named(inFirst, "chat claude-test");
    assertThat(chats).hasSize(2);
    for (SpanData chat : chats) {
      assertThat(chat.getParentSpanId()).isEqualTo(first.getSpanId());
      assertThat(chat.getAttributes().get(GenAi.SYSTEM)).isEqualTo("anthropic");
      assertThat(chat.getAttributes().get(GenAi.OPERATION)).isEqualTo("chat");
      assertThat(chat.getAttributes().get(GenAi.REQUEST_MODEL)).isEqualTo("claude-test");
      assertThat(chat.getAttributes().get(GenAi.USAGE_OUTPUT)).isPositive();
      assertThat(chat.getAttributes().get(GenAi.USAGE_INPUT)).isNotNull();
      assertThat(chat.getAttributes().get(GenAi.FINISH_REASONS)).isNotEmpty();
    }
    // its tool call, and under it the sandbox the call provisioned
    SpanData tool = named(inFirst, "execute_tool bash").get(0);
    assertThat(tool.getParentSpanId()).isEqualTo(first.getSpanId());
    assertThat(tool.getAttributes().get(GenAi.TOOL_NAME)).isEqualTo("bash");
    SpanData provision = named(inFirst, "corral.sandbox.provision").get(0);
    assertThat(provision.getParentSpanId()).isEqualTo(tool.getSpanId());
    assertThat(provision.getEndEpochNanos()).isGreaterThan(provision.getStartEpochNanos());
    // and its appends
    assertThat(named(inFirst, "corral.append"))
        .hasSizeGreaterThanOrEqualTo(3)
        .allMatch(append -> append.getParentSpanId().equals(first.getSpanId()));
    // The second turn has no tool call and provisioned nothing
    List<SpanData> inSecond =
        inTrace(
            turns.stream().filter(turn -> turn != first).findFirst().orElseThrow().getTraceId());
    assertThat(named(inSecond, "chat claude-test")).hasSize(1);
    assertThat(named(inSecond, "corral.sandbox.provision")).isEmpty();

    // And every span.model_request_start in the log names its turn's trace
    List<String> recorded =
        SessionLogs.log(sessions, session.getId()).stream()
            .filter(Event::hasSpanModelRequestStart)
            .map(event -> event.getSpanModelRequestStart().getTraceId())
            .toList();
    assertThat(recorded)
        .containsExactly(first.getTraceId(), first.getTraceId(), inSecond.get(0).getTraceId());
    assertThat(recorded.get(2)).isNotEqualTo(first.getTraceId());

    // And the JSON log has lines with the session's fixed keys, and none of its payloads
    List<JsonNode> lines = new ArrayList<>();
    ObjectMapper json = new ObjectMapper();
    for (String line : Files.readAllLines(Path.of(ObservabilityTestProfile.JSON_LOG))) {
      assertThat(line).doesNotContain(secret);
      lines.add(json.readTree(line));
    }
    Optional<JsonNode> harnessLine =
        lines.stream()
            .filter(line -> session.getId().equals(line.path("mdc").path("sessionId").asText()))
            .filter(line -> line.path("mdc").has("epoch"))
            .findFirst();
    assertThat(harnessLine).isPresent();
    assertThat(harnessLine.get().path("mdc").path("epoch").asLong()).isPositive();
    assertThat(harnessLine.get().path("level").asText()).isNotEmpty();
    assertThat(harnessLine.get().path("message").asText()).contains(session.getId());
  }

  private List<SpanData> inTrace(String traceId) {
    return spans.getFinishedSpanItems().stream()
        .filter(span -> span.getTraceId().equals(traceId))
        .toList();
  }

  private static List<SpanData> named(List<SpanData> spans, String name) {
    return spans.stream().filter(span -> span.getName().equals(name)).toList();
  }
}
