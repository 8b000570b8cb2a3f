package dev.corral.harness;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.corral.model.ModelResponse;
import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.AgentToolset;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.ModelUsage;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.Tool;
import dev.corral.proto.v1.ToolConfig;
import dev.corral.session.NewEvent;
import dev.corral.testing.Fixtures;
import java.util.List;
import org.junit.jupiter.api.Test;

class ProjectionTest {

  private static final Agent AGENT =
      Agent.newBuilder()
          .setModel("claude-test")
          .setSystem("Be brief.")
          .addTools(
              Tool.newBuilder()
                  .setToolset(
                      AgentToolset.newBuilder()
                          .addConfigs(ToolConfig.newBuilder().setName("grep").setEnabled(false))))
          .build();

  private final SessionState state =
      new SessionState(Session.newBuilder().setId("sesn_x").setAgent(AGENT).build());
  private long seq;

  @Test
  void aReplyOfBlankTextAloneIsNoTurnAndTheRequestStaysValid() {
    // Given a model reply that held only an empty text (a block corral does not know reads so)
    fold(NewEvent.of(Fixtures.userMessage("hello")));
    fold(EventsFactory.spanStart("sevt_span0000000000000000000000", "claude-test"));
    fold(EventsFactory.block("sevt_text0000000000000000000000", new ModelResponse.Text(""), AGENT));
    fold(
        EventsFactory.spanEnd(
            "sevt_span0000000000000000000000",
            new ModelResponse("m", List.of(), "end_turn", ModelUsage.getDefaultInstance())));
    fold(NewEvent.of(Fixtures.userMessage("are you there?")));

    // When
    JsonNode messages = Projection.request(state, 1000, 0).path("messages");

    // Then no blank text goes out, and the roles still alternate (one user turn)
    assertThat(messages).hasSize(1);
    assertThat(messages.get(0).path("role").asText()).isEqualTo("user");
    assertThat(messages.toString()).doesNotContain("\"text\":\"\"");
  }

  @Test
  void toolResultsLeadTheUserTurnThatFollowsTheirCalls() {
    fold(NewEvent.of(Fixtures.userMessage("list files")));
    NewEvent call =
        EventsFactory.block(
            "sevt_call0000000000000000000000",
            new ModelResponse.ToolUse("toolu_1", "bash", "{\"command\":\"ls\"}"),
            AGENT);
    fold(EventsFactory.spanStart("sevt_span0000000000000000000000", "claude-test"));
    fold(
        EventsFactory.block(
            "sevt_text0000000000000000000000", new ModelResponse.Text("Listing."), AGENT));
    fold(call);
    fold(
        EventsFactory.spanEnd(
            "sevt_span0000000000000000000000",
            new ModelResponse("m", List.of(), "tool_use", ModelUsage.getDefaultInstance())));
    fold(NewEvent.of(Fixtures.userMessage("also show sizes")));
    fold(EventsFactory.toolResult(call.id(), "a.txt", false));

    JsonNode request = Projection.request(state, 1000, 0);

    JsonNode messages = request.path("messages");
    assertThat(messages).hasSize(3);
    assertThat(messages.get(1).path("role").asText()).isEqualTo("assistant");
    assertThat(messages.get(1).path("content").get(1).path("input").path("command").asText())
        .isEqualTo("ls");
    JsonNode user = messages.get(2).path("content");
    assertThat(user.get(0).path("type").asText()).isEqualTo("tool_result");
    assertThat(user.get(0).path("tool_use_id").asText()).isEqualTo("toolu_1");
    assertThat(user.get(1).path("text").asText()).isEqualTo("also show sizes");
    assertThat(user.get(1).path("cache_control").path("type").asText()).isEqualTo("ephemeral");
  }

  @Test
  void aLargeToolResultIsSentTrimmedWithANoteSayingWhereTheRestIs() {
    // Given a tool result of 250 000 characters
    fold(NewEvent.of(Fixtures.userMessage("dump it")));
    NewEvent call =
        EventsFactory.block(
            "sevt_call1000000000000000000000",
            new ModelResponse.ToolUse("toolu_9", "bash", "{\"command\":\"cat big\"}"),
            AGENT);
    fold(EventsFactory.spanStart("sevt_span1000000000000000000000", "claude-test"));
    fold(call);
    fold(
        EventsFactory.spanEnd(
            "sevt_span1000000000000000000000",
            new ModelResponse("m", List.of(), "tool_use", ModelUsage.getDefaultInstance())));
    String big = "HEAD" + "x".repeat(250_000) + "TAIL";
    NewEvent result = EventsFactory.toolResult(call.id(), big, false);
    fold(result);

    // When
    String sent =
        Projection.request(state, 1000, 0)
            .path("messages")
            .get(2)
            .path("content")
            .get(0)
            .path("content")
            .get(0)
            .path("text")
            .asText();

    // Then the model gets the head, the tail and a note; the event itself stays whole
    assertThat(sent.length()).isLessThan(Projection.MAX_RESULT_CHARS);
    assertThat(sent).startsWith("HEAD").endsWith("TAIL").contains("250008 characters");
    assertThat(sent).contains("event " + result.id());
    assertThat(
            state
                .conversation()
                .get(state.conversation().size() - 1)
                .getAgentToolResult()
                .getContent(0)
                .getText()
                .getText())
        .isEqualTo(big);
  }

  @Test
  void onlyEnabledToolsAreOfferedAndTheLastCarriesACacheBreakpoint() {
    fold(NewEvent.of(Fixtures.userMessage("hi")));

    JsonNode tools = Projection.request(state, 1000, 0).path("tools");

    List<String> names = new java.util.ArrayList<>();
    tools.forEach(tool -> names.add(tool.path("name").asText()));
    assertThat(names).containsExactly("bash", "read", "write", "edit", "glob", "session_log");
    assertThat(tools.get(tools.size() - 1).path("cache_control").path("type").asText())
        .isEqualTo("ephemeral");
    assertThat(tools.get(0).path("cache_control").isMissingNode()).isTrue();
  }

  private void fold(NewEvent event) {
    Event stored =
        event.payload().toBuilder()
            .setId(event.id())
            .setType(event.type().wireName())
            .setSeq(++seq)
            .build();
    state.apply(stored);
  }
}
