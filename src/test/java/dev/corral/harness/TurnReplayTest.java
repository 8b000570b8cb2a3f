package dev.corral.harness;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.corral.model.ModelResponse;
import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.ConfirmationResult;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.ModelUsage;
import dev.corral.proto.v1.PermissionPolicy;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.UserToolConfirmation;
import dev.corral.session.NewEvent;
import dev.corral.testing.Fixtures;
import dev.corral.testing.MessagesRules;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Replays a turn the way the harness drives it (its {@link Decision}s, the events it appends) while
 * user messages arrive at every point of the turn, one or two at a time: before a model call's span
 * starts, while the model streams, between a tool_use and its result, while a tool runs, while a
 * confirmation is awaited, and after the turn. Every request built on the way must follow the
 * Messages API's rules (with extended thinking on, as strict as it gets), carry every message that
 * arrived exactly once and in order, and the turn must end with every message answered.
 */
class TurnReplayTest {

  /** Where in a turn a message may arrive. */
  enum Moment {
    BEFORE_SPAN,
    MID_STREAM,
    BEFORE_TOOL,
    DURING_TOOL,
    DURING_CONFIRMATION,
    AFTER_IDLE
  }

  /** A message arriving at the {@code occurrence}-th time the turn passes {@code moment}. */
  record Arrival(Moment moment, int occurrence) {
    @Override
    public String toString() {
      return moment + "#" + occurrence;
    }
  }

  private static final int MAX_TOKENS = 4096;
  private static final int THINKING_BUDGET = 1024;

  static Stream<Arguments> arrivals() {
    List<Arrival> points = new ArrayList<>();
    for (Moment moment : Moment.values()) {
      for (int occurrence = 0; occurrence < 2; occurrence++) {
        points.add(new Arrival(moment, occurrence));
      }
    }
    List<Arguments> cases = new ArrayList<>();
    for (PermissionPolicy policy :
        EnumSet.of(
            PermissionPolicy.PERMISSION_POLICY_ALWAYS_ALLOW,
            PermissionPolicy.PERMISSION_POLICY_ALWAYS_ASK)) {
      for (int i = 0; i < points.size(); i++) {
        cases.add(Arguments.of(policy, List.of(points.get(i))));
        for (int j = i; j < points.size(); j++) {
          cases.add(Arguments.of(policy, List.of(points.get(i), points.get(j))));
        }
      }
    }
    return cases.stream();
  }

  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("arrivals")
  void everyRequestFollowsTheApiAndCarriesEveryMessageInOrder(
      PermissionPolicy policy, List<Arrival> arrivals) {
    Replay replay = new Replay(policy, arrivals);

    replay.run();

    assertThat(replay.violations).isEmpty();
    assertThat(replay.requests).isNotEmpty();
    List<String> sent = replay.messageTexts();
    for (JsonNode request : replay.requests) {
      List<String> seen = userTexts(request);
      assertThat(seen).as("messages in %s", request).doesNotHaveDuplicates();
      assertThat(sent).as("order").containsSubsequence(seen);
    }
    assertThat(userTexts(replay.requests.get(replay.requests.size() - 1)))
        .as("the last request carries every message")
        .containsExactlyElementsOf(sent);
    assertThat(replay.state.hasUnansweredInput()).as("every message answered").isFalse();
  }

  private static List<String> userTexts(JsonNode request) {
    List<String> texts = new ArrayList<>();
    for (JsonNode message : request.path("messages")) {
      if (message.path("role").asText().equals("user")) {
        for (JsonNode block : message.path("content")) {
          if (block.path("type").asText().equals("text")) {
            texts.add(block.path("text").asText());
          }
        }
      }
    }
    return texts;
  }

  /** The harness's loop, without I/O: decisions folded into events, arrivals interleaved. */
  private static final class Replay {
    private final Agent agent;
    private final SessionState state;
    private final Map<Arrival, Integer> pending = new LinkedHashMap<>();
    private final Map<Moment, Integer> passed = new LinkedHashMap<>();
    private final List<String> arrived = new ArrayList<>();
    private final List<JsonNode> requests = new ArrayList<>();
    private final List<String> violations = new ArrayList<>();
    private long seq;
    private int modelCalls;
    private int messages;

    Replay(PermissionPolicy policy, List<Arrival> arrivals) {
      agent =
          Agent.newBuilder().setModel("claude-test").addTools(Fixtures.bashToolset(policy)).build();
      state = new SessionState(Session.newBuilder().setId("sesn_replay").setAgent(agent).build());
      arrivals.forEach(arrival -> pending.merge(arrival, 1, Integer::sum));
    }

    List<String> messageTexts() {
      return arrived;
    }

    void run() {
      say("first");
      for (int steps = 0; steps < 100; steps++) {
        Step step = Decision.next(state, Set.of(), Set.of(), false, 3);
        if (step instanceof Step.CallModel) {
          callModel();
        } else if (step instanceof Step.RunTools run) {
          pass(Moment.DURING_TOOL);
          for (ToolCallState tool : run.calls()) {
            fold(EventsFactory.toolResult(tool.eventId(), "a.txt", false));
          }
        } else if (step instanceof Step.Idle idle) {
          fold(EventsFactory.idle(idle.reason()));
          List<ToolCallState> waiting =
              state.unansweredCalls().stream().filter(ToolCallState::waitingForClient).toList();
          if (!waiting.isEmpty()) {
            pass(Moment.DURING_CONFIRMATION);
            waiting.forEach(this::allow);
          } else if (!pass(Moment.AFTER_IDLE) && pending.isEmpty()) {
            return;
          }
        } else if (step instanceof Step.Done) {
          if (!pass(Moment.AFTER_IDLE) && pending.isEmpty()) {
            return;
          }
        } else {
          throw new AssertionError("unexpected step " + step);
        }
      }
      throw new AssertionError("the turn did not end");
    }

    private void callModel() {
      pass(Moment.BEFORE_SPAN);
      JsonNode request = Projection.request(state, MAX_TOKENS, THINKING_BUDGET);
      requests.add(request);
      MessagesRules.violation(request)
          .ifPresent(violation -> violations.add(violation + " in " + request));
      String span = "sevt_span" + modelCalls;
      if (state.status() != dev.corral.proto.v1.SessionStatus.SESSION_STATUS_RUNNING) {
        fold(EventsFactory.running());
      }
      fold(EventsFactory.spanStart(span, "claude-test"));
      pass(Moment.MID_STREAM);
      // The first answer thinks and calls a tool; later ones answer in text.
      List<ModelResponse.Block> blocks =
          modelCalls == 0
              ? List.of(
                  new ModelResponse.Thinking(
                      "I should list the files", "sig-" + "I should list the files".length()),
                  new ModelResponse.ToolUse("toolu_" + modelCalls, "bash", "{\"command\":\"ls\"}"))
              : List.of(new ModelResponse.Text("answer " + modelCalls));
      for (int i = 0; i < blocks.size(); i++) {
        fold(EventsFactory.block("sevt_blk" + modelCalls + "_" + i, blocks.get(i), agent));
      }
      fold(
          EventsFactory.spanEnd(
              span,
              new ModelResponse(
                  "msg_" + modelCalls,
                  blocks,
                  modelCalls == 0 ? "tool_use" : "end_turn",
                  ModelUsage.getDefaultInstance())));
      modelCalls++;
      pass(Moment.BEFORE_TOOL);
    }

    /** Passes a moment: the messages due then arrive. True if any did. */
    private boolean pass(Moment moment) {
      int occurrence = passed.merge(moment, 1, Integer::sum) - 1;
      Integer count = pending.remove(new Arrival(moment, occurrence));
      for (int i = 0; count != null && i < count; i++) {
        say("message " + (++messages) + " at " + moment + "#" + occurrence);
      }
      if (occurrence >= 2) {
        pending.clear(); // moments that never come again
      }
      return count != null;
    }

    private void say(String text) {
      arrived.add(text);
      fold(NewEvent.of(Fixtures.userMessage(text)));
    }

    private void allow(ToolCallState call) {
      fold(
          NewEvent.of(
              Event.newBuilder()
                  .setUserToolConfirmation(
                      UserToolConfirmation.newBuilder()
                          .setToolUseId(call.eventId())
                          .setResult(ConfirmationResult.CONFIRMATION_RESULT_ALLOW))
                  .build()));
    }

    private void fold(NewEvent event) {
      state.apply(
          event.payload().toBuilder()
              .setId(event.id())
              .setType(event.type().wireName())
              .setSeq(++seq)
              .build());
    }
  }
}
